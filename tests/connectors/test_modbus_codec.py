"""Pure Modbus planning and decoding: scripted registers, property round-trips, no sockets."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.client import AsyncModbusTcpClient

from connectors.modbus_codec import (
    MAX_BITS,
    MAX_REGISTERS,
    CompiledPlan,
    block_of,
    decode_all_orders,
    decode_values,
    plan_reads,
)
from connectors.modbus_config import ModbusTag

STRUCT = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f", "float64": "d"}


def tag(name: str, address: int, data_type: str = "float32", **kw: Any) -> ModbusTag:
    return ModbusTag.model_validate({"name": f"t.{name}", "register": address, "data_type": data_type, **kw})


def encode(value: float, data_type: str, word_order: str = "big", byte_order: str = "big") -> list[int]:
    """Reference encoder with struct: big-endian bytes, then the device's word/byte order."""
    raw = struct.pack(">" + STRUCT[data_type], value)
    words = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    if word_order == "little":
        words.reverse()
    if byte_order == "little":
        words = [((w >> 8) | (w << 8)) & 0xFFFF for w in words]
    return words


def decode_one(words: list[int], data_type: str, word_order: str = "big", byte_order: str = "big") -> float:
    out = decode_values(np.array(words, dtype=np.uint16), np.array([0]), data_type, word_order, byte_order)  # type: ignore[arg-type]
    return float(out[0])


# ------------------------------------------------------------------------ scripted registers
@pytest.mark.parametrize(
    ("words", "data_type", "word_order", "byte_order", "expected"),
    [
        ([0xFFFF], "int16", "big", "big", -1),
        ([0xFFFF], "uint16", "big", "big", 65535),
        ([0x0100], "uint16", "big", "little", 1),
        ([0x0001, 0x0000], "int32", "big", "big", 65536),
        ([0x0000, 0x0001], "int32", "little", "big", 65536),
        ([0xFFFF, 0xFFFE], "int32", "big", "big", -2),
        ([0xFFFF, 0xFFFF], "uint32", "big", "big", 4294967295),
        # 123.456 as float32 is 0x42F6E979: ABCD, CDAB, BADC and DCBA layouts of the same value
        ([0x42F6, 0xE979], "float32", "big", "big", 123.456),
        ([0xE979, 0x42F6], "float32", "little", "big", 123.456),
        ([0xF642, 0x79E9], "float32", "big", "little", 123.456),
        ([0x79E9, 0xF642], "float32", "little", "little", 123.456),
        # 1.0 as float64 is 0x3FF0000000000000
        ([0x3FF0, 0, 0, 0], "float64", "big", "big", 1.0),
        ([0, 0, 0, 0x3FF0], "float64", "little", "big", 1.0),
        ([0x0000], "bool", "big", "big", 0.0),
        ([0x0004], "bool", "big", "big", 1.0),
    ],
)
def test_scripted_registers_decode_to_known_values(
    words: list[int], data_type: str, word_order: str, byte_order: str, expected: float
) -> None:
    assert decode_one(words, data_type, word_order, byte_order) == pytest.approx(expected, rel=1e-7)


def test_decoding_gathers_many_tags_at_their_offsets() -> None:
    regs = np.array([0, 0x42F6, 0xE979, 7, 0x3F80, 0x0000], dtype=np.uint16)
    out = decode_values(regs, np.array([1, 4]), "float32")
    assert out.tolist() == pytest.approx([123.456, 1.0], rel=1e-7)
    assert decode_values(regs, np.array([3, 0]), "uint16").tolist() == [7.0, 0.0]


def test_all_orders_view_shows_each_interpretation_at_each_offset() -> None:
    words = [*encode(123.456, "float32", "little", "big"), 0]
    views = decode_all_orders(words, "float32")
    assert set(views) == {"ABCD", "CDAB", "BADC", "DCBA"}
    assert views["CDAB"][0] == pytest.approx(123.456, rel=1e-7)
    assert views["ABCD"][0] != pytest.approx(123.456, rel=1e-3)
    assert math.isnan(views["ABCD"][2])  # a float32 cannot start at the last register


# ------------------------------------------------------------------------ property round trips
FLOAT32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
ORDERS = st.sampled_from(["big", "little"])


@given(value=FLOAT32, word_order=ORDERS, byte_order=ORDERS)
def test_float32_round_trips_in_every_order(value: float, word_order: str, byte_order: str) -> None:
    words = encode(value, "float32", word_order, byte_order)
    assert decode_one(words, "float32", word_order, byte_order) == value


@given(value=st.floats(allow_nan=False, allow_infinity=False), word_order=ORDERS, byte_order=ORDERS)
def test_float64_round_trips_in_every_order(value: float, word_order: str, byte_order: str) -> None:
    words = encode(value, "float64", word_order, byte_order)
    assert decode_one(words, "float64", word_order, byte_order) == value


@pytest.mark.parametrize(
    ("data_type", "lo", "hi"),
    [
        ("int16", -(2**15), 2**15 - 1),
        ("uint16", 0, 2**16 - 1),
        ("int32", -(2**31), 2**31 - 1),
        ("uint32", 0, 2**32 - 1),
    ],
)
@given(data=st.data(), word_order=ORDERS, byte_order=ORDERS)
def test_integers_round_trip_in_every_order(
    data: st.DataObject, data_type: str, lo: int, hi: int, word_order: str, byte_order: str
) -> None:
    value = data.draw(st.integers(lo, hi))
    words = encode(value, data_type, word_order, byte_order)
    assert decode_one(words, data_type, word_order, byte_order) == value


@given(values=st.lists(FLOAT32, min_size=1, max_size=50))
def test_vectorised_decode_equals_one_by_one_decode(values: list[float]) -> None:
    words = [w for v in values for w in encode(v, "float32")]
    out = decode_values(np.array(words, dtype=np.uint16), np.arange(len(values)) * 2, "float32")
    assert out.tolist() == values


@given(value=FLOAT32)
def test_float32_agrees_with_pymodbus_convert_from_registers(value: float) -> None:
    words = AsyncModbusTcpClient.convert_to_registers(
        value, AsyncModbusTcpClient.DATATYPE.FLOAT32, word_order="big"
    )
    assert words == encode(value, "float32")
    theirs = AsyncModbusTcpClient.convert_from_registers(
        words, AsyncModbusTcpClient.DATATYPE.FLOAT32, word_order="big"
    )
    assert decode_one(words, "float32") == theirs


@given(value=st.integers(-(2**31), 2**31 - 1))
def test_int32_agrees_with_pymodbus_convert_from_registers(value: int) -> None:
    words = encode(value, "int32")
    theirs = AsyncModbusTcpClient.convert_from_registers(
        words, AsyncModbusTcpClient.DATATYPE.INT32, word_order="big"
    )
    assert decode_one(words, "int32") == theirs == value


# ------------------------------------------------------------------------ planning
def test_neighbouring_tags_share_one_request() -> None:
    tags = [tag(f"v{i}", 2 * i) for i in range(50)]  # 100 contiguous registers
    blocks = plan_reads(tags, max_gap=0)
    assert [(b.table, b.start, b.count, b.function_code) for b in blocks] == [("holding", 0, 100, 3)]
    assert len(blocks[0].tags) == 50


def test_gap_larger_than_max_gap_starts_a_new_request() -> None:
    tags = [tag("a", 0), tag("b", 12)]  # 10 unused registers between them
    assert [(b.start, b.count) for b in plan_reads(tags, max_gap=10)] == [(0, 14)]
    assert [(b.start, b.count) for b in plan_reads(tags, max_gap=9)] == [(0, 2), (12, 2)]


def test_requests_never_exceed_the_protocol_limits() -> None:
    regs = [tag(f"r{i}", i, "uint16") for i in range(300)]
    bits = [tag(f"c{i}", i, "bool", table="coil") for i in range(4500)]
    blocks = plan_reads(regs + bits, max_gap=10)
    reg_blocks = [b for b in blocks if b.table == "holding"]
    bit_blocks = [b for b in blocks if b.table == "coil"]
    assert [b.count for b in reg_blocks] == [MAX_REGISTERS, MAX_REGISTERS, 50]
    assert [b.count for b in bit_blocks] == [MAX_BITS, MAX_BITS, 500]
    assert sum(len(b.tags) for b in blocks) == 4800
    assert [b.count for b in plan_reads(regs, max_gap=10, max_registers=100)] == [100, 100, 100]


def test_a_value_is_never_split_across_two_requests() -> None:
    tags = [tag(f"d{i}", 4 * i, "float64") for i in range(40)]  # 160 registers
    blocks = plan_reads(tags, max_gap=0)
    assert [b.count for b in blocks] == [124, 36]  # 31 float64 fit in 125 registers, not 31.25


def test_tables_are_planned_separately_with_their_function_codes() -> None:
    tags = [
        tag("h", 0),
        tag("i", 0, table="input"),
        tag("c", 0, "bool", table="coil"),
        tag("d", 0, "bool", table="discrete"),
    ]
    assert [(b.table, b.function_code) for b in plan_reads(tags, max_gap=10)] == [
        ("holding", 3),
        ("input", 4),
        ("coil", 1),
        ("discrete", 2),
    ]


def test_overlapping_tags_share_registers() -> None:
    blocks = plan_reads([tag("f", 10), tag("hi", 10, "uint16"), tag("lo", 11, "uint16")], max_gap=0)
    assert [(b.start, b.count, len(b.tags)) for b in blocks] == [(10, 2, 3)]


def test_split_halves_the_tags_into_tight_blocks() -> None:
    block = block_of([tag("a", 0), tag("b", 2), tag("c", 40), tag("d", 42)])
    left, right = block.split()
    assert (left.start, left.count, right.start, right.count) == (0, 4, 40, 4)


# ------------------------------------------------------------------------ compiled plans
def test_compiled_plan_decodes_scales_and_flags_every_tag() -> None:
    tags = [
        tag("flow", 0, "float32", scale=2.0, offset=1.0),
        tag("temp", 2, "int16", scale=0.1, min=0, max=100),  # 150.0 after scaling: out of range
        tag("count", 3, "uint32", word_order="little"),
        tag("run", 5, "bool", table="coil"),
    ]
    index = {t.name: i for i, t in enumerate(tags)}
    plan = CompiledPlan(plan_reads(tags, max_gap=0), index)
    regs, bits = plan.new_buffers()
    slots = plan.block_slots()
    assert len(slots) == 2 and plan.n_registers == 5 and plan.n_bits == 1
    regs[:] = [*encode(10.5, "float32"), 1500, *encode(70000, "uint32", "little")]
    bits[0] = True
    values, quality = plan.decode(regs, bits, np.array([True, True]))
    by_name = dict(
        zip(
            [tags[p].name for p in plan.positions],
            zip(values.tolist(), quality.tolist(), strict=True),
            strict=True,
        )
    )
    assert by_name["t.flow"] == (22.0, "good")
    assert by_name["t.temp"] == (pytest.approx(150.0), "bad")  # value kept, flagged
    assert by_name["t.count"] == (70000.0, "good")
    assert by_name["t.run"] == (1.0, "good")


def test_tags_of_a_failed_block_are_null_and_bad() -> None:
    tags = [tag("a", 0), tag("b", 200)]
    plan = CompiledPlan(plan_reads(tags, max_gap=0), {"t.a": 0, "t.b": 1})
    regs, bits = plan.new_buffers()
    regs[:2] = encode(5.0, "float32")
    values, quality = plan.decode(regs, bits, np.array([True, False]))
    assert values[0] == 5.0 and math.isnan(values[1])
    assert quality.tolist() == ["good", "bad"]


def test_non_finite_floats_are_flagged_bad() -> None:
    tags = [tag("nan", 0), tag("inf", 2)]
    plan = CompiledPlan(plan_reads(tags, max_gap=0), {"t.nan": 0, "t.inf": 1})
    regs, bits = plan.new_buffers()
    regs[:] = [0x7FC0, 0, 0x7F80, 0]  # float32 NaN, +inf
    _, quality = plan.decode(regs, bits, np.array([True]))
    assert quality.tolist() == ["bad", "bad"]
