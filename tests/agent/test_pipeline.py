"""The agent end to end on loopback: simulator PLCs -> connectors -> DuckDB, rules, shutdown."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import pytest_asyncio
from waiting import wait_until

import connectors.modbus
import rules.constants
from agent import pipeline, storage
from agent.config import Config, parse_config
from agent.pipeline import Agent
from connectors import make_connector
from connectors.base import Quality, now_utc, sample_frame
from simulator.runner import SimulatedPlant

READ_FUNCTION_CODES = {1, 2, 3, 4}


def _config(sim: SimulatedPlant, db: Path, **agent: Any) -> Config:
    data = tomllib.loads(sim.config_toml(db_path=str(db)))
    data["agent"].update({"flush_every_secs": 0.5, "evaluate_every_secs": 1.0, **agent})
    for src in data["sources"]:
        src["poll_interval_ms"] = 200
        src["timeout_ms"] = 500
        src["reconnect_min_ms"] = 100
        src["reconnect_max_ms"] = 400
    return parse_config(data)


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[SimulatedPlant]:
    async with SimulatedPlant(modbus_port=0, opcua_port=0, speed=1.0, seed=7) as plant:
        yield plant


async def _wait(task: asyncio.Task[None], done: Callable[[], object], what: str) -> None:
    """Wait until ``done()`` holds while the agent runs (an agent that ends early ends the wait)."""
    await wait_until(lambda: task.done() or done(), within=30, interval=0.05, what=what)
    if task.done():
        task.result()  # raises what ended the agent
        raise AssertionError(f"the agent stopped before {what}")


async def _run_until(agent: Agent, done: Callable[[], object], what: str) -> None:
    """Run the agent until ``done()`` holds (observable state, not a fixed time), then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await _wait(task, done, what)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


def _read(agent: Agent, sql: str, params: list[Any] | None = None) -> list[Any]:
    """Rows the running agent has committed, read on a cursor of its own connection (only one
    process may open the DuckDB file)."""
    cur = agent.con.cursor()
    try:
        return cur.execute(sql, params or []).fetchall()
    finally:
        cur.close()


def _states(agent: Agent, source: str) -> list[str]:
    rows = _read(agent, "SELECT state FROM source_status WHERE source = ? ORDER BY ts", [source])
    return [s for (s,) in rows]


@pytest.mark.asyncio
async def test_modbus_and_opcua_samples_land_in_duckdb_with_quality(
    sim: SimulatedPlant, tmp_path: Path
) -> None:
    db = tmp_path / "k.duckdb"
    cfg = _config(sim, db)
    agent = Agent(cfg)

    def two_rows_of_every_tag() -> bool:
        stored = dict(_read(agent, "SELECT tag, count(*) FROM samples GROUP BY tag"))
        return all(stored.get(t.name, 0) >= 2 for t in cfg.all_tags())

    await _run_until(agent, two_rows_of_every_tag, "two stored samples of every configured tag")
    con = storage.connect(db, read_only=True)
    rows = con.execute(
        "SELECT tag, count(*), count(*) FILTER (WHERE quality = 'good'), min(value), max(value) "
        "FROM samples GROUP BY tag"
    ).fetchall()
    by_tag = {r[0]: r[1:] for r in rows}
    configured = {t.name for t in cfg.all_tags()}
    assert set(by_tag) == configured  # every configured tag of both protocols arrived
    for tag, (n, good, _lo, _hi) in by_tag.items():
        assert n >= 2 and good == n, tag  # OPC UA subscriptions hold unchanged values
    # values match what the simulator serves (docs/kpis.md §6 range for kiln feed, 250-350 t/h)
    feed = by_tag["kiln1.feed_tph"]
    assert 250 <= feed[2] <= feed[3] <= 350
    assert con.execute("SELECT DISTINCT site FROM samples").fetchall() == [("plant1",)]
    con.close()


@pytest.mark.asyncio
async def test_agent_never_issues_a_write_function_code(sim: SimulatedPlant, tmp_path: Path) -> None:
    agent = Agent(_config(sim, tmp_path / "k.duckdb"))
    stats, per_poll = _modbus_stats(agent)
    # start-up, five whole polls of the Modbus source, then the shutdown
    await _run_until(agent, lambda: stats.samples >= 5 * per_poll, "five Modbus polls")
    assert sum(sim.function_codes.values()) > 0
    assert set(sim.function_codes) <= READ_FUNCTION_CODES, sim.function_codes


@pytest.mark.asyncio
async def test_source_killed_and_restarted_is_reconnected_and_gap_flagged(
    sim: SimulatedPlant, tmp_path: Path
) -> None:
    db = tmp_path / "k.duckdb"
    agent = Agent(_config(sim, db))
    name = cfg_source(agent)
    stats, per_poll = _modbus_stats(agent)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    await _wait(task, lambda: agent.view.source_up.get(name) is True, f"{name} up")
    await sim.stop_servers()
    await _wait(task, lambda: _states(agent, name) == ["down"], f"{name} 'down' in source_status")
    await sim.start_servers()
    await _wait(task, lambda: len(_states(agent, name)) >= 2, f"{name} back 'up' in source_status")
    polled = stats.samples
    await _wait(task, lambda: stats.samples >= polled + 3 * per_poll, "three polls after the recovery")
    stop.set()
    await asyncio.wait_for(task, 20)
    con = storage.connect(db, read_only=True)
    seq = [
        q
        for (q,) in con.execute(
            "SELECT quality FROM samples WHERE tag = 'kiln1.feed_tph' ORDER BY ts"
        ).fetchall()
    ]
    assert "comm_error" in seq
    first_err, last_err = seq.index("comm_error"), len(seq) - 1 - seq[::-1].index("comm_error")
    assert first_err > 0 and all(q == "good" for q in seq[:first_err])
    assert seq[-1] == "good" and last_err < len(seq) - 1  # recovered after the gap
    states = con.execute(
        "SELECT state FROM source_status WHERE source = ? ORDER BY ts", [cfg_source(agent)]
    ).fetchall()
    assert [s for (s,) in states] == ["down", "up"]
    con.close()


def cfg_source(agent: Agent) -> str:
    return next(s.name for s in agent.cfg.sources if s.type == "modbus")


def _modbus_stats(agent: Agent) -> tuple[Any, int]:
    """The Modbus connector's ``ConnectorStats`` and the rows one of its polls yields."""
    name = cfg_source(agent)
    conn = next(c for c in agent.connectors if c.name == name)
    return conn.stats, len(next(s for s in agent.cfg.sources if s.name == name).tags)  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_rules_write_kpis_and_metrics_are_served(sim: SimulatedPlant, tmp_path: Path) -> None:
    import urllib.request

    db = tmp_path / "k.duckdb"
    cfg = _config(sim, db)
    agent = Agent(cfg)
    port = agent.metrics.serve("127.0.0.1", 0)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))

    def kpis_and_a_flush() -> bool:
        kiln = agent.view.latest_kpis.get("kiln1", {})
        return kiln.get("specific_heat_kcal_per_kg_clinker", (None, ""))[0] is not None and (
            agent.view.samples_written > 0  # kilnwatch_storage_rows_written_total is exported
        )

    await _wait(task, kpis_and_a_flush, "a specific heat KPI and a first flush")
    body = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    )
    stop.set()
    await asyncio.wait_for(task, 20)
    assert 'kilnwatch_source_samples_total{quality="good",source=' in body
    assert "kilnwatch_storage_rows_written_total" in body
    assert "kilnwatch_source_connected{source=" in body
    kiln = agent.view.latest_kpis.get("kiln1", {})
    shc = kiln.get("specific_heat_kcal_per_kg_clinker", (None, ""))[0]
    assert shc is not None and 700 <= shc <= 780  # docs/kpis.md §1 typical for a 5-stage PH+PC line


@pytest.mark.asyncio
async def test_a_clean_stop_just_after_a_minute_boundary_stores_that_minutes_kpis(
    sim: SimulatedPlant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop within the lateness grace of a minute's end (a one-minute demo) keeps its 1-min KPIs.

    The clock of the agent and its Modbus connector runs ahead so that a minute boundary comes
    ~8 s after the start; a 30 s grace keeps the ordinary ticks from closing that minute before the
    stop however slow the machine, so only the shutdown's final tick can store it. Only the Modbus
    source is read (the OPC UA assets get NULL rows), so no server stamps times on another clock.
    """
    real = datetime.now(UTC)
    boundary = real.replace(second=0, microsecond=0) + timedelta(minutes=1)
    offset = boundary - timedelta(seconds=8) - real
    shifted = lambda: datetime.now(UTC) + offset  # noqa: E731
    for module in (pipeline, connectors.modbus):
        monkeypatch.setattr(module, "now_utc", shifted)
    monkeypatch.setattr(rules.constants, "ALLOWED_LATENESS_SECS", 30.0)
    db = tmp_path / "k.duckdb"
    cfg = _config(sim, db, evaluate_every_secs=0.5)
    agent = Agent(cfg, connectors=[make_connector(s) for s in cfg.sources if s.type == "modbus"])
    minute = boundary - timedelta(minutes=1)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))

    def samples_past_the_boundary() -> bool:
        (latest,) = _read(agent, "SELECT max(ts) FROM samples")[0]
        return latest is not None and latest >= boundary + timedelta(seconds=1)

    await _wait(task, samples_past_the_boundary, "stored samples 1 s past the minute boundary")
    sql = "SELECT asset, kpi, value FROM kpi WHERE window_secs = 60 AND ts = ?"
    assert _read(agent, sql, [minute]) == []  # the ordinary ticks wait out the grace
    assert agent.view.kpi_rows_written == 0
    stop.set()
    done, _ = await asyncio.wait({task}, timeout=30)  # a shutdown that hangs fails, not stalls
    assert done, "the agent did not stop within 30 s"
    task.result()
    con = storage.connect(db, read_only=True)
    rows = con.execute(sql, [minute]).fetchall()
    assert {a for a, _, _ in rows} == {a.id for a in agent.cfg.assets}
    assert any(v is not None for _, _, v in rows)
    open_minute = con.execute("SELECT count(*) FROM kpi WHERE window_secs = 60 AND ts >= ?", [boundary])
    assert open_minute.fetchall() == [(0,)]  # [boundary, stop) has not ended
    con.close()
    assert agent.view.kpi_rows_written >= len(rows)


class _SwallowsOneCancel:
    """A source whose request loses the first cancellation, as Python 3.11's ``asyncio.wait_for``
    does when the awaited answer arrives at the same moment (CPython gh-86296): the rare fault path
    behind a daemon that hung on SIGTERM, reproduced deterministically."""

    name = "flaky_lib"

    def __init__(self) -> None:
        self.swallowed = 0
        self.closed = False

    async def stream(self) -> AsyncIterator[pl.DataFrame]:
        try:
            while True:
                try:
                    await asyncio.sleep(0.05)  # a request in flight
                except asyncio.CancelledError:
                    if self.swallowed:
                        raise
                    self.swallowed += 1  # the library returns the answer instead of cancelling
                yield sample_frame(now_utc(), ["x"], [1.0], Quality.GOOD)
        finally:
            self.closed = True

    async def read_once(self) -> pl.DataFrame:  # pragma: no cover - not used by the daemon
        raise NotImplementedError


@pytest.mark.asyncio
async def test_a_stop_ends_a_poller_whose_library_swallowed_the_cancellation(tmp_path: Path) -> None:
    cfg = parse_config({"agent": {"site": "plant1", "db_path": str(tmp_path / "kw.duckdb")}, "sources": []})
    source = _SwallowsOneCancel()
    agent = Agent(cfg, connectors=[source])
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    await wait_until(
        lambda: agent.view.samples_written > 0 or "flaky_lib" in agent.view.last_frames, what="a frame"
    )
    stop.set()
    await asyncio.wait_for(task, 10)  # before the fix: the task group waited for the poller for ever
    assert source.swallowed == 1 and source.closed
