"""The OPC UA connector against a real asyncua server on loopback: poll and subscribe modes."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import polars as pl
import pytest
import pytest_asyncio
from asyncua import ua
from asyncua.ua.status_codes import StatusCodes
from connector_testkit import TEST_NS, OpcuaTestServer, opcua_source_dict
from waiting import wait_until

from connectors import make_connector
from connectors.base import Quality
from connectors.opcua import (
    OpcuaConnector,
    datavalue_sample,
    decode_datavalues,
    parse_node_id,
    quality_of_status,
)
from connectors.opcua_config import OpcuaSource

pytestmark = pytest.mark.asyncio(loop_scope="module")

VARIABLES = {"Feed": 300.0, "Fuel": 20.0, "Temp": 350.0, "Spare": 0.0}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server() -> AsyncIterator[OpcuaTestServer]:
    srv = OpcuaTestServer()
    await srv.start(VARIABLES)
    try:
        yield srv
    finally:
        await srv.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def fresh(server: OpcuaTestServer) -> OpcuaTestServer:
    """The shared server with its variables reset."""
    for name, value in VARIABLES.items():
        await server.set(name, value)
    server.read_sizes.clear()
    server.create_sizes.clear()
    return server


def source(server: OpcuaTestServer, tags: list[dict[str, Any]], **kw: Any) -> OpcuaSource:
    return OpcuaSource.model_validate(opcua_source_dict(server.endpoint, tags, **kw))


def tags_for(server: OpcuaTestServer, *names: str) -> list[dict[str, Any]]:
    return [{"name": f"kiln1.{n.lower()}", "node_id": server.node_id(n)} for n in names]


def rows(frame: pl.DataFrame) -> dict[str, tuple[float | None, str]]:
    return {t: (v, q) for t, v, q in frame.select("tag", "value", "quality").iter_rows()}


async def collect(conn: OpcuaConnector, until: Callable[[list[pl.DataFrame]], bool]) -> list[pl.DataFrame]:
    """Frames from the stream until ``until(frames)`` holds (at most 5 s)."""
    frames: list[pl.DataFrame] = []
    async with asyncio.timeout(5.0), contextlib.aclosing(conn.stream()) as stream:
        async for frame in stream:
            frames.append(frame)
            if until(frames):
                break
    return frames


# ------------------------------------------------------------------------ pure mapping
@pytest.mark.parametrize(
    ("code", "quality"),
    [
        (StatusCodes.Good, Quality.GOOD),
        (StatusCodes.GoodLocalOverride, Quality.GOOD),
        (StatusCodes.UncertainLastUsableValue, Quality.STALE),
        (StatusCodes.UncertainNoCommunicationLastUsableValue, Quality.STALE),
        (StatusCodes.UncertainSensorNotAccurate, Quality.BAD),
        (StatusCodes.UncertainEngineeringUnitsExceeded, Quality.BAD),
        (StatusCodes.BadNoCommunication, Quality.COMM_ERROR),
        (StatusCodes.BadWaitingForInitialData, Quality.COMM_ERROR),
        (StatusCodes.BadNotConnected, Quality.COMM_ERROR),
        (StatusCodes.BadSensorFailure, Quality.BAD),
        (StatusCodes.BadNodeIdUnknown, Quality.BAD),
        (StatusCodes.BadSensorFailure | 0x0400, Quality.BAD),  # info bits do not change the code
    ],
)
async def test_status_codes_map_to_quality(code: int, quality: Quality) -> None:
    assert quality_of_status(code) is quality


async def test_missing_source_timestamp_falls_back_to_server_then_receive_time() -> None:
    received = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    server_ts = dt.datetime(2025, 12, 31, 23, 59, tzinfo=dt.UTC)
    with_server = ua.DataValue(ua.Variant(1.5), ServerTimestamp=server_ts)  # type: ignore[arg-type]
    assert datavalue_sample(with_server, received) == (1.5, "good", server_ts)
    bare = ua.DataValue(ua.Variant(True))
    assert datavalue_sample(bare, received) == (1.0, "good", received)
    text = ua.DataValue(ua.Variant("running"))
    value, quality, _ = datavalue_sample(text, received)
    assert math.isnan(value) and quality == "bad"


async def test_batch_decoding_agrees_with_the_one_value_reference() -> None:
    received = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    scan = dt.datetime(2026, 1, 1, 0, 0, 0, 250000, tzinfo=dt.UTC)
    naive = dt.datetime(2026, 1, 1, 0, 0, 1)  # some servers send naive UTC
    dvs = [
        ua.DataValue(ua.Variant(1.5), SourceTimestamp=scan),  # type: ignore[arg-type]
        ua.DataValue(ua.Variant(7), StatusCode=ua.StatusCode(StatusCodes.UncertainLastUsableValue)),  # type: ignore[arg-type]
        ua.DataValue(ua.Variant(2.0), StatusCode=ua.StatusCode(StatusCodes.UncertainSubNormal)),  # type: ignore[arg-type]
        ua.DataValue(ua.Variant(9.9), StatusCode=ua.StatusCode(StatusCodes.BadNoCommunication)),  # type: ignore[arg-type]
        ua.DataValue(ua.Variant(9.9), StatusCode=ua.StatusCode(StatusCodes.BadSensorFailure)),  # type: ignore[arg-type]
        ua.DataValue(ua.Variant("text"), SourceTimestamp=scan),  # type: ignore[arg-type]
        ua.DataValue(ua.Variant(False), ServerTimestamp=naive),  # type: ignore[arg-type]
        ua.DataValue(),
    ]
    values, qualities, stamps = decode_datavalues(dvs, received)
    for k, dv in enumerate(dvs):
        ref_value, ref_quality, ref_ts = datavalue_sample(dv, received)
        assert qualities[k] == ref_quality, k
        assert (math.isnan(values[k]) and math.isnan(ref_value)) or values[k] == ref_value, k
        assert stamps[k] == (ref_ts - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(
            microseconds=1
        ), k
    assert qualities.tolist() == ["good", "stale", "bad", "comm_error", "bad", "bad", "good", "bad"]


async def test_namespace_uri_node_ids_are_parsed_for_later_resolution() -> None:
    ref = parse_node_id(f"nsu={TEST_NS};s=Plant.Feed")
    assert ref.namespace_uri == TEST_NS
    assert ref.resolve(["http://opcfoundation.org/UA/", "urn:other", TEST_NS]) == ua.NodeId("Plant.Feed", 2)  # type: ignore[arg-type]
    assert ref.resolve(["http://opcfoundation.org/UA/"]) is None
    assert parse_node_id("i=2258").resolve([]) == ua.NodeId(2258, 0)  # type: ignore[arg-type]


# ------------------------------------------------------------------------ poll mode
async def test_poll_reads_values_with_source_timestamps(fresh: OpcuaTestServer) -> None:
    stamp = dt.datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=dt.UTC)
    await fresh.set("Feed", 312.5, source_ts=stamp)
    tags = [
        *tags_for(fresh, "Feed"),
        {"name": "kiln1.fuel_kg", "node_id": fresh.node_id("Fuel"), "scale": 1000.0},
        {"name": "kiln1.temp", "node_id": fresh.node_id("Temp"), "max": 300.0},
    ]
    conn = make_connector(source(fresh, tags))
    frame = await conn.read_once()
    assert rows(frame) == {
        "kiln1.feed": (312.5, "good"),
        "kiln1.fuel_kg": (20000.0, "good"),
        "kiln1.temp": (350.0, "bad"),  # above max: kept, flagged
    }
    assert frame.filter(pl.col("tag") == "kiln1.feed")["ts"][0] == stamp


async def test_poll_maps_status_codes_to_quality(fresh: OpcuaTestServer) -> None:
    await fresh.set("Feed", 301.0, status=StatusCodes.UncertainLastUsableValue)
    await fresh.set("Fuel", 21.0, status=StatusCodes.BadNoCommunication)
    await fresh.set("Temp", 352.0, status=StatusCodes.BadSensorFailure)
    frame = await OpcuaConnector(source(fresh, tags_for(fresh, "Feed", "Fuel", "Temp", "Spare"))).read_once()
    assert rows(frame) == {
        "kiln1.feed": (301.0, "stale"),
        "kiln1.fuel": (None, "comm_error"),
        "kiln1.temp": (None, "bad"),
        "kiln1.spare": (0.0, "good"),
    }


async def test_namespace_uri_node_ids_resolve_on_the_server(fresh: OpcuaTestServer) -> None:
    tags = [
        {"name": "kiln1.feed", "node_id": f"nsu={TEST_NS};s=Feed"},
        {"name": "kiln1.ghost", "node_id": "nsu=urn:not:there;s=Feed"},
        {"name": "kiln1.missing", "node_id": f"nsu={TEST_NS};s=NoSuchNode"},
    ]
    frame = await OpcuaConnector(source(fresh, tags)).read_once()
    assert rows(frame) == {
        "kiln1.feed": (300.0, "good"),
        "kiln1.ghost": (None, "bad"),
        "kiln1.missing": (None, "bad"),
    }


async def test_reads_are_chunked_by_max_nodes_per_read(fresh: OpcuaTestServer) -> None:
    await fresh.set_limit("MaxNodesPerRead", 3)
    try:
        tags = [
            {"name": f"kiln1.t{i}", "node_id": fresh.node_id(("Feed", "Fuel", "Temp", "Spare")[i % 4])}
            for i in range(10)
        ]
        frame = await OpcuaConnector(source(fresh, tags)).read_once()
    finally:
        await fresh.set_limit("MaxNodesPerRead", 10000)
    assert frame.height == 10 and set(frame["quality"]) == {"good"}
    # the namespace array (1 node), the operation limits (2 nodes), then the data in chunks of 3
    assert fresh.read_sizes == [1, 2, 3, 3, 3, 1]


async def test_poll_mode_stream_yields_every_tag_each_interval(fresh: OpcuaTestServer) -> None:
    conn = OpcuaConnector(source(fresh, tags_for(fresh, "Feed", "Fuel"), poll_interval_ms=50))
    frames = await collect(conn, lambda fs: len(fs) == 4)
    assert [f.height for f in frames] == [2, 2, 2, 2]
    assert conn.stats.samples == 8 and conn.stats.connected


# ------------------------------------------------------------------------ subscribe mode
async def test_subscribe_yields_changes_with_source_timestamps_and_holds_the_rest(
    fresh: OpcuaTestServer,
) -> None:
    conn = OpcuaConnector(
        source(fresh, tags_for(fresh, "Feed", "Fuel"), mode="subscribe", poll_interval_ms=50)
    )
    seen: list[tuple[str, float | None, str, dt.datetime]] = []
    stamp = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)

    def until(frames: list[pl.DataFrame]) -> bool:
        seen.extend((t, v, q, ts) for ts, t, v, q in frames[-1].iter_rows())
        return any(v == 333.0 for _, v, _, _ in seen)

    async def change_later() -> None:
        await wait_until(lambda: sum(s[0] == "kiln1.fuel" for s in seen) >= 3, what="fuel held three times")
        await fresh.set("Feed", 333.0, source_ts=stamp)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(change_later())
        tg.create_task(collect(conn, until))
    initial = {(t, v) for t, v, _, _ in seen[:2]}
    assert initial == {("kiln1.feed", 300.0), ("kiln1.fuel", 20.0)}  # initial values first
    changed = next(s for s in seen if s[1] == 333.0)
    assert changed == ("kiln1.feed", 333.0, "good", stamp)  # a change keeps its source timestamp
    # every interval has a row per tag: the unchanged fuel value is held, stamped with the
    # interval time (newer than any source timestamp the server gave it)
    fuel = [s for s in seen if s[0] == "kiln1.fuel"]
    assert len(fuel) >= 3 and {v for _, v, _, _ in fuel} == {20.0}
    assert [ts for *_, ts in fuel] == sorted(ts for *_, ts in fuel) and fuel[-1][3] > fuel[0][3]


async def test_subscribe_maps_status_changes_to_quality(fresh: OpcuaTestServer) -> None:
    conn = OpcuaConnector(source(fresh, tags_for(fresh, "Temp"), mode="subscribe", poll_interval_ms=50))
    qualities: list[str] = []

    def until(frames: list[pl.DataFrame]) -> bool:
        qualities.extend(frames[-1]["quality"].to_list())
        return "comm_error" in qualities

    async def degrade() -> None:
        await wait_until(lambda: qualities.count("good") >= 2, what="good")
        await fresh.set("Temp", 351.0, status=StatusCodes.UncertainLastUsableValue)
        await wait_until(lambda: "stale" in qualities, what="stale")
        await fresh.set("Temp", 352.0, status=StatusCodes.BadCommunicationError)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(degrade())
        tg.create_task(collect(conn, until))
    # held values repeat each interval; the transitions follow the status codes
    transitions = [q for i, q in enumerate(qualities) if i == 0 or qualities[i - 1] != q]
    assert transitions == ["good", "stale", "comm_error"]


async def test_unknown_nodes_are_bad_and_the_rest_subscribed(fresh: OpcuaTestServer) -> None:
    tags = [*tags_for(fresh, "Feed"), {"name": "kiln1.nope", "node_id": f"ns={fresh.ns};s=Nope"}]
    conn = OpcuaConnector(source(fresh, tags, mode="subscribe", poll_interval_ms=50))
    frames = await collect(conn, lambda fs: sum(f.height for f in fs) >= 3)
    all_rows = pl.concat(frames)
    assert set(all_rows.filter(pl.col("tag") == "kiln1.nope")["quality"]) == {"bad"}
    assert all_rows.filter(pl.col("tag") == "kiln1.feed")["value"].to_list()[0] == 300.0


async def test_monitored_items_are_created_in_chunks_of_the_server_limit(fresh: OpcuaTestServer) -> None:
    await fresh.set_limit("MaxMonitoredItemsPerCall", 2)
    try:
        names = ("Feed", "Fuel", "Temp", "Spare")
        tags = [{"name": f"kiln1.t{i}", "node_id": fresh.node_id(names[i % 4])} for i in range(5)]
        conn = OpcuaConnector(source(fresh, tags, mode="subscribe", poll_interval_ms=50))
        frames = await collect(conn, lambda fs: sum(f.height for f in fs) >= 5)
    finally:
        await fresh.set_limit("MaxMonitoredItemsPerCall", 10000)
    assert fresh.create_sizes == [2, 2, 1]
    assert set(pl.concat(frames)["tag"]) == {f"kiln1.t{i}" for i in range(5)}
