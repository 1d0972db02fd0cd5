"""The Modbus connector against a real pymodbus server on loopback."""

from __future__ import annotations

import asyncio
import logging
import math
import struct
from collections.abc import AsyncIterator
from typing import Any

import polars as pl
import pytest
import pytest_asyncio
from connector_testkit import ModbusTestServer, modbus_source_dict
from waiting import wait_until

from connectors import make_connector
from connectors.modbus import ModbusConnector
from connectors.modbus_config import ModbusSource

READ_FUNCTION_CODES = {1, 2, 3, 4}


def f32(value: float) -> list[int]:
    raw = struct.pack(">f", value)
    return [int.from_bytes(raw[:2], "big"), int.from_bytes(raw[2:], "big")]


def source(port: int, tags: list[dict[str, Any]], **kw: Any) -> ModbusSource:
    return ModbusSource.model_validate(modbus_source_dict(port, tags, **kw))


def by_tag(frame: pl.DataFrame) -> dict[str, tuple[float | None, str]]:
    return {t: (v, q) for t, v, q in frame.select("tag", "value", "quality").iter_rows()}


def float_tags(n: int, *, step: int = 2, start: int = 0) -> list[dict[str, Any]]:
    return [{"name": f"kiln1.v{i}", "register": start + step * i, "data_type": "float32"} for i in range(n)]


@pytest_asyncio.fixture
async def plc() -> AsyncIterator[ModbusTestServer]:
    """A device with 40 float32 values 0.5, 1.5, ... in holding registers 0..79 and a few others."""
    holding: dict[int, int] = {}
    for i in range(40):
        hi, lo = f32(i + 0.5)
        holding[2 * i], holding[2 * i + 1] = hi, lo
    server = ModbusTestServer(holding=holding, input={100: 0xFFFE}, coils={7: True}, discrete={3: True})
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.mark.asyncio
async def test_values_of_every_table_and_type_land_correctly(plc: ModbusTestServer) -> None:
    tags = [
        {"name": "kiln1.feed_tph", "register": 6, "data_type": "float32", "unit": "t/h"},  # 3.5
        {"name": "kiln1.scaled", "register": 6, "data_type": "float32", "scale": 10, "offset": 1},
        {"name": "kiln1.signed", "register": 100, "table": "input", "data_type": "int16"},
        {"name": "kiln1.unsigned", "register": 100, "table": "input", "data_type": "uint16"},
        {"name": "kiln1.fan_on", "register": 7, "table": "coil", "data_type": "bool"},
        {"name": "kiln1.door", "register": 3, "table": "discrete", "data_type": "bool"},
        {"name": "kiln1.door_next", "register": 4, "table": "discrete", "data_type": "bool"},
    ]
    conn = ModbusConnector(source(plc.port, tags))
    frame = await conn.read_once()
    assert frame.schema == {
        "ts": pl.Datetime("us", "UTC"),
        "tag": pl.String,
        "value": pl.Float64,
        "quality": pl.String,
    }
    assert by_tag(frame) == {
        "kiln1.feed_tph": (3.5, "good"),
        "kiln1.scaled": (36.0, "good"),
        "kiln1.signed": (-2.0, "good"),
        "kiln1.unsigned": (65534.0, "good"),
        "kiln1.fan_on": (1.0, "good"),
        "kiln1.door": (1.0, "good"),
        "kiln1.door_next": (0.0, "good"),
    }
    assert plc.function_codes() == {1, 2, 3, 4}
    assert conn.stats.requests == 4 and conn.stats.samples == 7 and conn.stats.errors == 0


@pytest.mark.asyncio
async def test_neighbouring_tags_are_read_in_block_requests(plc: ModbusTestServer) -> None:
    conn = make_connector(source(plc.port, float_tags(40)))
    frame = await conn.read_once()
    assert frame.height == 40 and (frame["quality"] == "good").all()
    assert frame["value"].to_list() == [i + 0.5 for i in range(40)]
    assert plc.requests == [(3, 0, 80, 1)]  # 40 tags, one request, counted by the server


@pytest.mark.asyncio
async def test_max_gap_controls_when_requests_are_merged(plc: ModbusTestServer) -> None:
    tags = [{"name": "kiln1.a", "register": 0}, {"name": "kiln1.b", "register": 30}]
    await ModbusConnector(source(plc.port, tags, max_gap_registers=28)).read_once()
    await ModbusConnector(source(plc.port, tags, max_gap_registers=27)).read_once()
    assert plc.requests == [(3, 0, 32, 1), (3, 0, 2, 1), (3, 30, 2, 1)]


@pytest.mark.asyncio
async def test_out_of_range_value_is_bad_and_kept(plc: ModbusTestServer) -> None:
    tags = [
        {"name": "kiln1.t", "register": 10, "min": 0, "max": 5},
        {"name": "kiln1.u", "register": 12, "max": 100},
    ]
    frame = await ModbusConnector(source(plc.port, tags)).read_once()
    assert by_tag(frame) == {"kiln1.t": (5.5, "bad"), "kiln1.u": (6.5, "good")}


@pytest.mark.asyncio
async def test_illegal_address_in_a_block_makes_only_that_tag_bad(plc: ModbusTestServer) -> None:
    plc.illegal = {20}  # kiln1.v10 at registers 20-21
    conn = ModbusConnector(source(plc.port, float_tags(40), quarantine_retry_secs=3600))
    first = by_tag(await conn.poll())
    assert first.pop("kiln1.v10") == (None, "bad")
    assert all(q == "good" for _, q in first.values()) and len(first) == 39
    assert first["kiln1.v11"] == (11.5, "good")
    assert conn.quarantined == {"kiln1.v10": "illegal data address"}

    plc.requests.clear()
    second = by_tag(await conn.poll())
    assert second["kiln1.v10"] == (None, "bad") and second["kiln1.v39"] == (39.5, "good")
    # the quarantined tag is no longer read, the rest still in a handful of block reads
    assert all(not (addr <= 20 < addr + count) for _, addr, count, _ in plc.requests)
    assert 1 < len(plc.requests) <= 8
    conn.close()


@pytest.mark.asyncio
async def test_quarantined_tag_is_retried_and_released(
    plc: ModbusTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    plc.illegal = {20}
    conn = ModbusConnector(source(plc.port, float_tags(40), quarantine_retry_secs=0.2))
    with caplog.at_level(logging.INFO, logger="connectors.modbus"):
        assert by_tag(await conn.poll())["kiln1.v10"] == (None, "bad")
        assert by_tag(await conn.poll())["kiln1.v10"] == (None, "bad")  # not yet due
        plc.illegal = set()
        await asyncio.sleep(0.3)  # past quarantine_retry_secs: the retry is due by the clock under test
        assert by_tag(await conn.poll())["kiln1.v10"] == (10.5, "good")
        assert conn.quarantined == {}
        assert by_tag(await conn.poll())["kiln1.v10"] == (10.5, "good")
    conn.close()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("tag(s) quarantined (" in m for m in messages) == 1
    assert sum("readable again" in m for m in messages) == 1


@pytest.mark.asyncio
async def test_silent_block_is_isolated_without_losing_the_device(plc: ModbusTestServer) -> None:
    plc.silent = {40}  # reads covering register 40 (kiln1.v20) never get an answer
    tags = [*float_tags(40), {"name": "kiln1.i", "register": 100, "table": "input", "data_type": "int16"}]
    conn = ModbusConnector(source(plc.port, tags, timeout_ms=100, quarantine_retry_secs=3600))
    qualities: list[dict[str, tuple[float | None, str]]] = []
    for _ in range(8):
        qualities.append(by_tag(await conn.poll()))
    assert all(q != "comm_error" for frame in qualities for _, q in frame.values())
    assert conn.quarantined == {"kiln1.v20": "no answer"}
    assert all(frame["kiln1.i"] == (-2.0, "good") for frame in qualities)
    last = qualities[-1]
    assert last.pop("kiln1.v20") == (None, "bad")
    assert all(q == "good" for _, q in last.values())
    conn.close()


@pytest.mark.asyncio
async def test_a_request_lost_once_is_asked_again_not_taken_for_a_dead_block(plc: ModbusTestServer) -> None:
    """One lost answer (network glitch, a PLC restarting mid-poll) costs one timeout, not a split
    plan: the device answered another block, so the silent one is asked once more."""
    tags = [*float_tags(3), {"name": "kiln1.far", "register": 1000, "data_type": "int16"}]
    conn = ModbusConnector(source(plc.port, tags, timeout_ms=100, quarantine_retry_secs=3600))
    assert set((await conn.poll())["quality"]) == {"good"}
    blocks = len(conn._plan)
    assert blocks == 2  # registers 0-5 and 1000 are too far apart for one request
    plc.lose_next = {1000}
    before = conn.stats.requests
    frame = await conn.poll()
    assert set(frame["quality"]) == {"good"} and plc.lose_next == set()
    assert conn.stats.requests - before == blocks + 2  # the lost request, the liveness probe, the retry
    assert len(conn._plan) == blocks and conn.quarantined == {}
    conn.close()


@pytest.mark.asyncio
async def test_gateway_exception_for_the_unit_is_comm_error_for_all_tags(plc: ModbusTestServer) -> None:
    plc.fail_all = 0x0B  # gateway target device failed to respond
    conn = ModbusConnector(source(plc.port, float_tags(3)))
    frame = await conn.read_once()
    assert set(frame["quality"]) == {"comm_error"} and frame["value"].null_count() == 3
    assert conn.quarantined == {}


@pytest.mark.asyncio
async def test_device_that_stops_answering_is_comm_error_logged_once(
    plc: ModbusTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    conn = ModbusConnector(source(plc.port, float_tags(5), timeout_ms=100))
    with caplog.at_level(logging.INFO, logger="connectors.modbus"):
        assert set((await conn.poll())["quality"]) == {"good"}
        plc.mute = True
        for _ in range(4):
            frame = await conn.poll()
            assert set(frame["quality"]) == {"comm_error"}
            await asyncio.sleep(0.05)
        plc.mute = False
        async with asyncio.timeout(10):  # reconnect backoff is 50-200 ms; polls until it reconnects
            while True:
                await asyncio.sleep(0.05)
                frame = await conn.poll()
                if set(frame["quality"]) == {"good"}:
                    break
        assert set(frame["quality"]) == {"good"}
    conn.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "down" in warnings[0].getMessage()
    assert sum("up again" in r.getMessage() for r in caplog.records) == 1
    assert conn.quarantined == {}


@pytest.mark.asyncio
async def test_server_killed_and_restarted_gives_comm_error_then_recovers(
    plc: ModbusTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    conn = ModbusConnector(source(plc.port, float_tags(4), poll_interval_ms=50))
    seq: list[str] = []

    async def consume() -> None:
        async for frame in conn.stream():
            qs = set(frame["quality"])
            assert len(qs) == 1, qs  # a poll is all good or all comm_error, never mixed
            seq.append(qs.pop())

    with caplog.at_level(logging.INFO, logger="connectors.modbus"):
        task = asyncio.create_task(consume())
        await wait_until(lambda: task.done() or seq.count("good") >= 3, what="good polls")
        await plc.stop()
        await wait_until(lambda: task.done() or "comm_error" in seq, what="the outage seen")
        await plc.start()
        await wait_until(
            lambda: task.done() or ("comm_error" in seq and seq[-5:] == ["good"] * 5),
            what="five good polls after the outage",
        )
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert "comm_error" in seq and seq[0] == "good" and seq[-1] == "good"
    first_err = seq.index("comm_error")
    last_err = len(seq) - 1 - seq[::-1].index("comm_error")
    assert set(seq[first_err : last_err + 1]) == {"comm_error"}  # one outage, no flapping
    downs = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(downs) == 1
    assert sum("up again" in r.getMessage() for r in caplog.records) == 1
    assert conn.stats.reconnects == 1 and conn.stats.connected


@pytest.mark.asyncio
async def test_unreachable_device_yields_comm_error_frame_quickly() -> None:
    server = ModbusTestServer()
    await server.start()
    port = server.port
    await server.stop()  # nothing listens on this port now
    conn = ModbusConnector(source(port, float_tags(3)))
    frame = await asyncio.wait_for(conn.read_once(), 5)
    assert frame.height == 3 and set(frame["quality"]) == {"comm_error"}
    assert all(v is None for v in frame["value"])
    assert not conn.stats.connected and conn.stats.errors == 1


@pytest.mark.asyncio
async def test_connector_never_sends_a_write_function_code(plc: ModbusTestServer) -> None:
    plc.illegal = {20}
    tags = [
        *float_tags(40),
        {"name": "kiln1.c", "register": 7, "table": "coil", "data_type": "bool"},
        {"name": "kiln1.d", "register": 3, "table": "discrete", "data_type": "bool"},
        {"name": "kiln1.i", "register": 100, "table": "input", "data_type": "uint16"},
    ]
    conn = ModbusConnector(source(plc.port, tags, quarantine_retry_secs=0.05))
    for _ in range(4):
        await conn.poll()
        await asyncio.sleep(0.06)  # past quarantine_retry_secs: every poll retries register 20
    conn.close()
    assert len(plc.requests) > 8
    assert plc.function_codes() <= READ_FUNCTION_CODES
    assert plc.function_codes() == READ_FUNCTION_CODES


@pytest.mark.asyncio
async def test_stream_polls_on_schedule(plc: ModbusTestServer) -> None:
    conn = ModbusConnector(source(plc.port, float_tags(2), poll_interval_ms=50))
    frames: list[pl.DataFrame] = []
    t0 = asyncio.get_running_loop().time()
    async for frame in conn.stream():
        frames.append(frame)
        if len(frames) == 6:
            break
    elapsed = asyncio.get_running_loop().time() - t0
    assert 0.2 <= elapsed < 1.5  # ticks at 0, 50, ..., 250 ms; generous margin on a busy machine
    stamps = [f["ts"][0] for f in frames]
    assert stamps == sorted(stamps)
    assert not math.isnan(conn.stats.last_poll_secs) and conn.stats.samples == 12
