"""A full disk under the database: the agent keeps polling and evaluating, holds what it cannot write
in a bounded buffer, and catches up by itself when space returns (agent/storage_guard.py,
docs/reliability.md). Runs on a real small tmpfs (needs root to mount; skipped otherwise)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import tomllib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import pytest_asyncio
from waiting import wait_until

from agent.config import Config, parse_config
from agent.pipeline import Agent
from simulator.runner import SimulatedPlant


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs of its own: filling it fills nothing else."""
    vol = tmp_path / "vol"
    vol.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(vol)], capture_output=True, text=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield vol
    finally:
        subprocess.run(["umount", "-l", str(vol)], check=False)


def gauge(agent: Agent, name: str, **labels: str) -> float | None:
    """A value as the /metrics endpoint exports it."""
    return agent.metrics.registry.get_sample_value(name, labels or None)


def fill(vol: Path, leave_bytes: int) -> Path:
    """A filler file that leaves about ``leave_bytes`` free on the volume."""
    free = os.statvfs(vol).f_bavail * os.statvfs(vol).f_frsize
    filler = vol / "filler"
    with filler.open("ab") as f:
        f.write(b"\0" * max(0, free - leave_bytes))
    return filler


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[SimulatedPlant]:
    async with SimulatedPlant(modbus_port=0, opcua_port=0, speed=1.0, seed=3) as plant:
        yield plant


def config(sim: SimulatedPlant, db: Path, **agent: Any) -> Config:
    data = tomllib.loads(sim.config_toml(db_path=str(db)))
    data["agent"].update({"flush_every_secs": 0.5, "evaluate_every_secs": 1.0, **agent})
    data["sources"] = [s for s in data["sources"] if s["type"] == "modbus"]
    known = {t["name"] for s in data["sources"] for t in s["tags"]}
    data["assets"] = [a for a in data["assets"] if a["type"] != "whr"]
    for s in data["sources"]:
        s["poll_interval_ms"] = 100
    assert known
    return parse_config(data)


@pytest.mark.asyncio
async def test_disk_full_holds_samples_and_recovers_without_restart(
    sim: SimulatedPlant, volume: Path
) -> None:
    db = volume / "kw.duckdb"
    agent = Agent(config(sim, db))
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await wait_until(lambda: agent.view.samples_written > 2000, within=30, what="samples written")
        filler = fill(volume, leave_bytes=64 * 1024)
        await wait_until(lambda: agent.guard.fault is not None, within=60, what="the disk-full condition")
        assert not task.done()
        assert "No space left on device" in (agent.guard.fault or "")
        assert gauge(agent, "kilnwatch_storage_ok") == 0
        # still polling and evaluating while nothing can be written
        written = agent.view.samples_written
        await wait_until(lambda: agent._pending_rows > 3000, within=30, what="samples held in memory")
        held_before = agent._pending_rows
        assert agent.view.samples_written == written and agent.view.samples_dropped == 0
        filler.unlink()  # space returns
        await wait_until(lambda: agent.guard.fault is None, within=90, what="recovery without a restart")
        assert agent.view.samples_written >= written + held_before
        assert agent.view.samples_dropped == 0 and gauge(agent, "kilnwatch_storage_ok") == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute("SELECT count(*) FROM samples").fetchone()
    assert row is not None and row[0] == agent.view.samples_written


@pytest.mark.asyncio
async def test_the_buffer_is_bounded_and_drops_the_oldest_samples(sim: SimulatedPlant, volume: Path) -> None:
    agent = Agent(config(sim, volume / "kw.duckdb", max_buffered_samples=10_000))
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await wait_until(lambda: agent.view.samples_written > 1000, within=30, what="samples written")
        fill(volume, leave_bytes=16 * 1024)
        await wait_until(lambda: agent.view.samples_dropped > 0, within=90, what="the oldest samples dropped")
        assert agent._pending_rows <= 10_000
        assert (
            gauge(agent, "kilnwatch_storage_rows_dropped_total", table="samples")
            == agent.view.samples_dropped
        )
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
