"""Wall-clock steps (agent/clock.py, docs/storage.md "Clocks"): NTP stepping a gateway's clock after
boot must not write KPI windows for time that never happened, make the rule engine ignore samples,
or fire an alert episode twice.

The end-to-end tests run the real daemon (``kilnwatch run``) against the simulator's Modbus server
under libfaketime (Debian's ``libfaketime``; skipped with the reason when absent): the agent's wall
clock is stepped by rewriting libfaketime's timestamp file while the monotonic clock runs on.
"""

from __future__ import annotations

import asyncio
import glob
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from daemon import start_daemon, stop_daemon

from agent import storage
from agent.clock import ClockWatch
from simulator.runner import SimulatedPlant

FAKETIME_LIBS = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))
RULE = "site.kiln.running"
# fires within seconds on a running kiln and stays firing: an episode that spans the step
SITE_RULES = f"""
[[rule]]
id = "{RULE}"
asset = "kiln*"
when = "clinker_tph > 100"
for = "2s"
severity = "info"
message = "Kiln producing {{value:.0f}} t/h"
"""


class FakeClocks:
    def __init__(self) -> None:
        self.wall, self.mono = 1_800_000_000.0, 100.0

    def advance(self, secs: float, *, slew: float = 0.0, step: float = 0.0) -> None:
        self.mono += secs
        self.wall += secs + slew + step


def test_slewing_is_not_a_step_and_a_step_either_way_is() -> None:
    c = FakeClocks()
    watch = ClockWatch(2.0, wall=lambda: c.wall, mono=lambda: c.mono)
    for _ in range(10_000):  # NTP's fastest slew, 0.5 ms/s, for 10,000 s: 5 s in all, never a step
        c.advance(1.0, slew=0.0005)
        assert watch.check() is None
    c.advance(1.0, step=3600.0)
    step = watch.check()
    assert step is not None and step.step_secs == pytest.approx(3600.0)
    assert step.wall_after - step.wall_before == pytest.approx(
        timedelta(hours=1), abs=timedelta(seconds=0.01)
    )
    assert step.wall_after == datetime.fromtimestamp(c.wall, UTC)
    assert watch.check() is None  # the new offset is the baseline now
    c.advance(0.5, step=-1800.0)
    back = watch.check()
    assert back is not None and back.step_secs == pytest.approx(-1800.0)
    assert back.wall_before - back.wall_after == pytest.approx(
        timedelta(minutes=30), abs=timedelta(seconds=0.01)
    )
    c.advance(1.0, step=1.9)  # under the threshold: slewing territory
    assert watch.check() is None


# ------------------------------------------------------------------------------ end to end
@pytest_asyncio.fixture
async def sim() -> AsyncIterator[SimulatedPlant]:
    async with SimulatedPlant(modbus_port=0, opcua_port=0, seed=3) as plant:
        yield plant


def write_config(sim: SimulatedPlant, tmp_path: Path) -> tuple[Path, Path]:
    db = tmp_path / "site.duckdb"
    rules = tmp_path / "site-rules.toml"
    rules.write_text(SITE_RULES)
    text = sim.config_toml(db_path=str(db), opcua_port=None)
    for line, value in (
        ("evaluate_every_secs = 10", "evaluate_every_secs = 1.0"),
        ("flush_every_secs = 5", "flush_every_secs = 0.5"),
        ("rule_files = []", f'rule_files = ["{rules}"]'),
    ):
        assert line in text
        text = text.replace(line, value, 1)
    cfg = tmp_path / "kilnwatch.toml"
    cfg.write_text(text)
    return cfg, db


def set_offset(spec: Path, offset: str) -> None:
    """Atomically: libfaketime re-reads the file at every clock read, and a reader that caught it
    truncated would see a step back to real time and forward again."""
    tmp = spec.with_name(spec.name + ".tmp")
    tmp.write_text(f"{offset}\n")
    os.replace(tmp, spec)


async def run_with_step(cfg: Path, tmp_path: Path, step: str) -> tuple[datetime, datetime]:
    """Run the daemon ~12 s, step its wall clock by ``step`` (libfaketime syntax), and stop it 3 s
    after the next minute boundary, so the first 1-min window after the step has closed."""
    spec = tmp_path / "faketime"
    set_offset(spec, "+0")
    env = {
        "LD_PRELOAD": FAKETIME_LIBS[0],
        "FAKETIME_TIMESTAMP_FILE": str(spec),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    proc = await start_daemon(cfg, env)
    try:
        await asyncio.sleep(12)  # the alert fires (for = 2 s) and 1-min windows are in progress
        assert proc.returncode is None
        before = datetime.now(UTC)
        set_offset(spec, step)
        await asyncio.sleep(63 - datetime.now(UTC).second - datetime.now(UTC).microsecond / 1e6)
    finally:
        err = await stop_daemon(proc)
    assert "wall clock stepped" in err
    return before, datetime.now(UTC)


def query(db: Path, sql: str, params: list[object] | None = None) -> list[tuple[object, ...]]:
    con = storage.connect(db, read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


needs_faketime = pytest.mark.skipif(
    not FAKETIME_LIBS, reason="Debian's libfaketime is not installed (scripts/setup --dev installs it)"
)


@needs_faketime
@pytest.mark.slow
@pytest.mark.asyncio
async def test_a_forward_step_writes_no_windows_for_the_skipped_hour(
    sim: SimulatedPlant, tmp_path: Path
) -> None:
    cfg, db = write_config(sim, tmp_path)
    before, _ = await run_with_step(cfg, tmp_path, "+3600")

    events = query(db, "SELECT step_secs, wall_before, ts FROM clock_events")
    assert len(events) == 1
    step_secs, wall_before, wall_after = events[0]
    assert step_secs == pytest.approx(3600, abs=2)
    assert abs((wall_before - before).total_seconds()) < 5  # type: ignore[operator]
    # nothing stored for the hour that never happened
    # (a window that ends after the step holds post-step samples, like the first windows after a
    # start: the 15-min window the step lands in is one; a window inside the skipped hour is none)
    skipped = query(
        db,
        "SELECT count(*) FROM kpi WHERE ts >= ? AND ts + to_seconds(window_secs) <= ?",
        [wall_before + timedelta(minutes=1), wall_after],  # type: ignore[operator]
    )
    assert skipped == [(0,)]
    # the engine went on after the step: the first 1-min window after it was closed at the stop
    after_rows = query(
        db, "SELECT count(*) FROM kpi WHERE ts >= ? AND window_secs = 60", [wall_after - timedelta(minutes=1)]
    )  # type: ignore[operator]
    assert after_rows[0][0] > 0  # type: ignore[operator]
    # one episode, carried over the step: never resolved or fired again because of it
    alerts = query(db, "SELECT started_at FROM alerts WHERE rule = ?", [RULE])
    assert len(alerts) == 1 and alerts[0][0] < wall_before  # type: ignore[operator]


@needs_faketime
@pytest.mark.slow
@pytest.mark.asyncio
async def test_a_backward_step_keeps_evaluating_the_earlier_samples(
    sim: SimulatedPlant, tmp_path: Path
) -> None:
    cfg, db = write_config(sim, tmp_path)
    before, _ = await run_with_step(cfg, tmp_path, "-3600")

    events = query(db, "SELECT step_secs, wall_before, ts FROM clock_events")
    assert len(events) == 1
    step_secs, wall_before, wall_after = events[0]
    assert step_secs == pytest.approx(-3600, abs=2)
    assert abs((wall_before - before).total_seconds()) < 5  # type: ignore[operator]
    # samples after the step carry the earlier time, and the engine made KPI windows of them
    late = query(db, "SELECT count(*) FROM samples WHERE ts < ?", [wall_before - timedelta(minutes=50)])  # type: ignore[operator]
    assert late[0][0] > 0  # type: ignore[operator]
    kpis = query(
        db,
        "SELECT count(*) FROM kpi WHERE ts >= ? AND ts < ? AND window_secs = 60",
        [wall_after - timedelta(minutes=1), wall_before - timedelta(minutes=50)],  # type: ignore[operator]
    )
    assert kpis[0][0] > 0  # type: ignore[operator]
    alerts = query(db, "SELECT count(*) FROM alerts WHERE rule = ?", [RULE])
    assert alerts == [(1,)]
