"""Pure, vectorised conversion between engineering values and the PLC's register image.

The simulated PLC holds each value in its Modbus representation (float32, scaled int16/uint16,
uint32 counters, bits); :meth:`RegisterCodec.quantize` returns exactly the value an agent decodes
from the registers (``raw * scale``), so Modbus, OPC UA and :meth:`PlantModel.values` agree bit for
bit. Groups of tags sharing a data type and word order are converted with one numpy operation each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulator.tagmap import TagMap

FloatArray = npt.NDArray[np.float64]
U16Array = npt.NDArray[np.uint16]
BoolArray = npt.NDArray[np.bool_]

REGISTER_TABLES = ("holding", "input")
BIT_TABLES = ("coil", "discrete")


@dataclass(frozen=True, slots=True)
class _Group:
    table: str
    data_type: str
    word_order: str
    idx: npt.NDArray[np.intp]  # positions in the value vector
    addr: npt.NDArray[np.intp]  # first register (or bit) address
    scale: FloatArray


class RegisterCodec:
    """Encodes a value vector (tag-map order) into register/bit images, and quantizes values."""

    def __init__(self, tagmap: TagMap) -> None:
        self.tagmap = tagmap
        self.sizes = {table: tagmap.table_size(table) for table in REGISTER_TABLES + BIT_TABLES}
        keyed: dict[tuple[str, str, str], list[int]] = {}
        for t in tagmap.tags:
            order = t.word_order if t.width > 1 else "big"
            keyed.setdefault((t.table, t.data_type, order), []).append(t.index)
        self._groups: list[_Group] = []
        for (table, data_type, order), members in keyed.items():
            tags = [tagmap.tags[i] for i in members]
            self._groups.append(
                _Group(
                    table,
                    data_type,
                    order,
                    np.array(members, dtype=np.intp),
                    np.array([t.address for t in tags], dtype=np.intp),
                    np.array([t.scale for t in tags], dtype=np.float64),
                )
            )

    def quantize(self, values: FloatArray) -> FloatArray:
        """The values as the PLC holds them: float32-rounded, scaled-integer-rounded, clipped."""
        out = values.astype(np.float64, copy=True)
        for g in self._groups:
            v = values[g.idx]
            if g.data_type == "float32":
                out[g.idx] = v.astype(np.float32).astype(np.float64)
            elif g.data_type == "bool":
                out[g.idx] = (v > 0.5).astype(np.float64)
            else:
                out[g.idx] = _raw_int(v, g.scale, g.data_type).astype(np.float64) * g.scale
        return out

    def encode(self, values: FloatArray) -> dict[str, U16Array | BoolArray]:
        """Register images (uint16) for holding/input and bit images for coil/discrete."""
        images: dict[str, U16Array | BoolArray] = {}
        for table in REGISTER_TABLES:
            images[table] = np.zeros(self.sizes[table], dtype=np.uint16)
        for table in BIT_TABLES:
            images[table] = np.zeros(self.sizes[table], dtype=np.bool_)
        for g in self._groups:
            v = values[g.idx]
            img = images[g.table]
            if g.data_type == "bool":
                img[g.addr] = v > 0.5
                continue
            if g.data_type == "float32":
                words = v.astype(">f4").view(">u2").reshape(-1, 2).astype(np.uint16)
            elif g.data_type == "uint32":
                raw = _raw_int(v, g.scale, "uint32").astype(np.uint64)
                words = np.stack([(raw >> 16) & 0xFFFF, raw & 0xFFFF], axis=1).astype(np.uint16)
            else:  # int16 / uint16: one register
                raw16 = _raw_int(v, g.scale, g.data_type)
                img[g.addr] = (
                    raw16.astype(np.int64).astype(np.uint16)
                    if g.data_type == "uint16"
                    else (raw16.astype(np.int16).view(np.uint16))
                )
                continue
            if g.word_order == "little":
                words = words[:, ::-1]
            img[g.addr] = words[:, 0]
            img[g.addr + 1] = words[:, 1]
        return images


def _raw_int(v: FloatArray, scale: FloatArray, data_type: str) -> npt.NDArray[np.int64]:
    """Raw integer register value for ``v = raw * scale``: counters floor, measurements round."""
    x = v / scale
    x[np.isnan(x)] = 0.0
    if data_type == "uint32":
        return np.floor(np.minimum(np.maximum(x, 0.0), 2.0**32 - 1)).astype(np.int64)
    lo, hi = (0.0, 65535.0) if data_type == "uint16" else (-32768.0, 32767.0)
    return np.rint(np.minimum(np.maximum(x, lo), hi)).astype(np.int64)
