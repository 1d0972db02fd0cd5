"""Modbus read planning and register decoding: pure functions, no sockets, no clocks.

Planning merges the configured tags of one table into as few requests as the protocol allows
(Modbus Application Protocol v1.1b3 §6: at most 125 registers per FC3/FC4 read and 2,000 bits
per FC1/FC2 read), bridging gaps of up to ``max_gap`` unused addresses — reading a few unused
registers costs far less than another round trip.

Decoding is vectorised with numpy: the registers of a whole poll are laid out in one buffer and
every tag of one (data type, word order, byte order) group is decoded with one gather and one
dtype view, whatever the number of tags. Word order says which register holds the most
significant word of a 32/64-bit value (``big``: the first, the Modbus convention; ``little``: the
last). Byte order says how the two bytes of each register are arranged (``big``: high byte first,
as the protocol sends them; ``little``: swapped). The four combinations are often written
ABCD (big/big), CDAB (little word/big byte), BADC (big word/little byte) and DCBA (little/little).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

from connectors import apply_scaling, range_arrays
from connectors.base import Quality
from connectors.modbus_config import REGISTER_WIDTH, ModbusTag

Table = Literal["holding", "input", "coil", "discrete"]
Order = Literal["big", "little"]

#: The only function codes kilnwatch ever sends: read coils, discrete inputs, holding, input registers.
FUNCTION_CODES: Final[dict[str, int]] = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
BIT_TABLES: Final = frozenset({"coil", "discrete"})
_TABLES: Final[tuple[Table, ...]] = ("holding", "input", "coil", "discrete")
#: Protocol limits per request (Modbus Application Protocol v1.1b3 §6.1-6.4).
MAX_REGISTERS: Final = 125
MAX_BITS: Final = 2000

#: numpy dtype character and register width of each numeric data type.
_NUMERIC: Final[dict[str, tuple[str, int]]] = {
    "int16": ("i2", 1),
    "uint16": ("u2", 1),
    "int32": ("i4", 2),
    "uint32": ("u4", 2),
    "float32": ("f4", 2),
    "float64": ("f8", 4),
}
DATA_TYPES: Final = (*_NUMERIC, "bool")
#: The four byte/word orders of a 32/64-bit value, by their usual names.
ORDERS: Final[dict[str, tuple[Order, Order]]] = {
    "ABCD": ("big", "big"),
    "CDAB": ("little", "big"),
    "BADC": ("big", "little"),
    "DCBA": ("little", "little"),
}


def tag_width(tag: ModbusTag) -> int:
    """Addresses a tag occupies in its table (bits for coil/discrete, registers otherwise)."""
    return 1 if tag.table in BIT_TABLES else REGISTER_WIDTH[tag.data_type]


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One read request: ``count`` addresses of ``table`` from ``start``, covering ``tags``."""

    table: Table
    start: int
    count: int
    tags: tuple[ModbusTag, ...]

    @property
    def function_code(self) -> int:
        return FUNCTION_CODES[self.table]

    @property
    def is_bits(self) -> bool:
        return self.table in BIT_TABLES

    def split(self) -> tuple[ReadBlock, ReadBlock]:
        """Two tight blocks with the first and second half of the tags (for fault isolation)."""
        if len(self.tags) < 2:
            raise ValueError("a block of one tag cannot be split")
        half = len(self.tags) // 2
        return block_of(self.tags[:half]), block_of(self.tags[half:])

    def describe(self) -> str:
        return f"{self.table} {self.start}..{self.start + self.count - 1} (FC{self.function_code})"


def block_of(tags: Sequence[ModbusTag]) -> ReadBlock:
    """The smallest block covering ``tags`` (all of one table)."""
    if not tags:
        raise ValueError("a block needs at least one tag")
    table = tags[0].table
    if any(t.table != table for t in tags):
        raise ValueError("a block reads one table")
    start = min(t.address for t in tags)
    end = max(t.address + tag_width(t) for t in tags)
    ordered = tuple(sorted(tags, key=lambda t: (t.address, -tag_width(t))))
    return ReadBlock(table, start, end - start, ordered)


def plan_reads(
    tags: Iterable[ModbusTag],
    *,
    max_gap: int,
    max_registers: int = MAX_REGISTERS,
    max_bits: int = MAX_BITS,
) -> list[ReadBlock]:
    """Merge tags into read blocks, table by table, in address order.

    Two neighbouring tags share a request when at most ``max_gap`` unused addresses lie between
    them and the request stays within ``max_registers`` registers (``max_bits`` bits for coils and
    discrete inputs, where the gap is counted in bits times 16: one register's worth of payload).
    Overlapping tags (the same registers read as two types) share a request.
    """
    if max_gap < 0:
        raise ValueError("max_gap must be >= 0")
    if not 1 <= max_registers <= MAX_REGISTERS or not 1 <= max_bits <= MAX_BITS:
        raise ValueError("request size outside the Modbus limits (125 registers, 2000 bits)")
    by_table: dict[str, list[ModbusTag]] = {}
    for tag in tags:
        by_table.setdefault(tag.table, []).append(tag)
    blocks: list[ReadBlock] = []
    for table in _TABLES:
        group = sorted(by_table.get(table, ()), key=lambda t: (t.address, -tag_width(t)))
        if not group:
            continue
        bits = table in BIT_TABLES
        limit = max_bits if bits else max_registers
        gap = max_gap * 16 if bits else max_gap
        current: list[ModbusTag] = [group[0]]
        start, end = group[0].address, group[0].address + tag_width(group[0])
        for tag in group[1:]:
            t_end = tag.address + tag_width(tag)
            new_end = max(end, t_end)
            if tag.address - end <= gap and new_end - start <= limit:
                current.append(tag)
                end = new_end
            else:
                blocks.append(ReadBlock(table, start, end - start, tuple(current)))
                current, start, end = [tag], tag.address, t_end
        blocks.append(ReadBlock(table, start, end - start, tuple(current)))
    return blocks


# --------------------------------------------------------------------------- decoding
def decode_values(
    registers: NDArray[np.uint16],
    offsets: NDArray[np.intp],
    data_type: str,
    word_order: Order = "big",
    byte_order: Order = "big",
) -> NDArray[np.float64]:
    """Decode one value of ``data_type`` at each of ``offsets`` into ``registers``, as float64.

    Vectorised: one fancy-index gather of shape (n, width) and one dtype view, whatever n is.
    ``bool`` stored in a register is true when the register is non-zero.
    """
    regs = np.asarray(registers, dtype=np.uint16)
    offs = np.asarray(offsets, dtype=np.intp)
    if data_type == "bool":
        flags: NDArray[np.float64] = (regs[offs] != 0).astype(np.float64)
        return flags
    code, width = _NUMERIC[data_type]
    cols = np.arange(width, dtype=np.intp)
    if word_order == "little":
        cols = cols[::-1]
    gathered = regs[offs[:, None] + cols]  # (n, width), most significant word first
    # Writing each register big-endian gives the wire byte order; little-endian swaps the two
    # bytes of every register. Viewing the rows as one big-endian value then decodes them.
    wire = np.ascontiguousarray(gathered, dtype=">u2" if byte_order == "big" else "<u2")
    return wire.view(">" + code).reshape(-1).astype(np.float64)


def decode_all_orders(
    registers: Sequence[int] | NDArray[np.uint16], data_type: str
) -> dict[str, NDArray[np.float64]]:
    """Every start offset of ``registers`` decoded as ``data_type`` in each of the four orders.

    Entry ``i`` of each array is the value starting at register ``i``; NaN where the value would
    run past the end. For 16-bit types only the byte order matters (ABCD = CDAB, BADC = DCBA).
    Used by ``kilnwatch probe modbus`` to show an unknown device's registers every possible way.
    """
    regs = np.asarray(registers, dtype=np.uint16)
    width = 1 if data_type == "bool" else _NUMERIC[data_type][1]
    n_fit = max(0, len(regs) - width + 1)
    offsets = np.arange(n_fit, dtype=np.intp)
    out: dict[str, NDArray[np.float64]] = {}
    for name, (word, byte) in ORDERS.items():
        values = np.full(len(regs), np.nan)
        if n_fit:
            values[:n_fit] = decode_values(regs, offsets, data_type, word, byte)
        out[name] = values
    return out


@dataclass(frozen=True, slots=True)
class _Group:
    data_type: str
    word_order: Order
    byte_order: Order
    rows: NDArray[np.intp]  # positions in plan order
    offsets: NDArray[np.intp]  # offsets into the register (or bit) buffer


class CompiledPlan:
    """Everything needed to decode a poll of ``blocks`` in a few numpy operations.

    Built once per plan (and again only when the plan changes after a fault). The registers of
    all register blocks are laid out back to back in one uint16 buffer, the bits of all bit blocks
    in one bool buffer; :meth:`block_slots` says where each block's payload goes.
    ``positions[i]`` is the index (in ``tag_index``) of the i-th tag in plan order.
    """

    def __init__(self, blocks: Sequence[ReadBlock], tag_index: Mapping[str, int]) -> None:
        self.blocks: tuple[ReadBlock, ...] = tuple(blocks)
        slots: list[tuple[bool, int]] = []
        n_regs = n_bits = 0
        positions: list[int] = []
        tag_block: list[int] = []
        keys: dict[tuple[str, Order, Order], tuple[list[int], list[int]]] = {}
        bit_rows: list[int] = []
        bit_offsets: list[int] = []
        plan_tags: list[ModbusTag] = []
        for b, block in enumerate(self.blocks):
            base = n_bits if block.is_bits else n_regs
            slots.append((block.is_bits, base))
            for tag in block.tags:
                row = len(positions)
                positions.append(tag_index[tag.name])
                tag_block.append(b)
                plan_tags.append(tag)
                offset = base + tag.address - block.start
                if block.is_bits:
                    bit_rows.append(row)
                    bit_offsets.append(offset)
                else:
                    key = (tag.data_type, tag.word_order, tag.byte_order)
                    rows, offs = keys.setdefault(key, ([], []))
                    rows.append(row)
                    offs.append(offset)
            if block.is_bits:
                n_bits += block.count
            else:
                n_regs += block.count
        self.n_registers = n_regs
        self.n_bits = n_bits
        self._slots = slots
        self.positions = np.array(positions, dtype=np.intp)
        self.tag_block = np.array(tag_block, dtype=np.intp)
        self._groups = [
            _Group(dt, wo, bo, np.array(rows, dtype=np.intp), np.array(offs, dtype=np.intp))
            for (dt, wo, bo), (rows, offs) in keys.items()
        ]
        self._bit_rows = np.array(bit_rows, dtype=np.intp)
        self._bit_offsets = np.array(bit_offsets, dtype=np.intp)
        self._scale, self._offset, self._lo, self._hi = range_arrays(plan_tags)

    def __len__(self) -> int:
        return len(self.positions)

    def block_slots(self) -> list[tuple[bool, int]]:
        """(is_bits, offset into the matching buffer) for each block, in plan order."""
        return list(self._slots)

    def new_buffers(self) -> tuple[NDArray[np.uint16], NDArray[np.bool_]]:
        return np.zeros(self.n_registers, dtype=np.uint16), np.zeros(self.n_bits, dtype=np.bool_)

    def decode(
        self,
        registers: NDArray[np.uint16],
        bits: NDArray[np.bool_],
        block_ok: NDArray[np.bool_],
    ) -> tuple[NDArray[np.float64], NDArray[np.object_]]:
        """Values and qualities of every tag in plan order.

        A tag of a block that failed this poll gets null and ``bad``; a value outside the tag's
        ``min``/``max`` (or not finite) keeps its value and gets ``bad`` (docs/auditors.md qualities).
        """
        raw = np.zeros(len(self.positions), dtype=np.float64)
        for g in self._groups:
            raw[g.rows] = decode_values(registers, g.offsets, g.data_type, g.word_order, g.byte_order)
        if len(self._bit_rows):
            raw[self._bit_rows] = bits[self._bit_offsets]
        values, out_of_range = apply_scaling(raw, self._scale, self._offset, self._lo, self._hi)
        failed = ~np.asarray(block_ok, dtype=np.bool_)[self.tag_block]
        values[failed] = np.nan
        quality = np.full(len(values), Quality.GOOD.value, dtype=object)
        quality[out_of_range | failed] = Quality.BAD.value
        return values, quality
