"""The daemon tiers its own storage (agent/tiering.py, docs/storage.md): yesterday's polled samples
move to the Parquet archive at the next start, none stay live, live + archive is what was polled
and ``v_samples`` returns all of it.

"Yesterday" is real: the first agent runs under libfaketime one day in the past (Debian's
``libfaketime``; skipped with the reason when absent), polling the simulator's Modbus server on
loopback. The second agent runs on the real clock with a retention of a few minutes.
"""

from __future__ import annotations

import glob
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from daemon import start_daemon, stop_daemon
from waiting import wait_until

from agent import storage
from agent.tiering import cutoff_day
from simulator.runner import SimulatedPlant

RETENTION_DAYS = 0.002  # under 3 minutes
FAKETIME_LIBS = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[SimulatedPlant]:
    async with SimulatedPlant(modbus_port=0, opcua_port=0, seed=3) as plant:
        yield plant


def write_config(sim: SimulatedPlant, tmp_path: Path) -> tuple[Path, Path, Path]:
    db, archive = tmp_path / "site.duckdb", tmp_path / "archive"
    # Modbus only: its samples carry the agent's clock (OPC UA ones the server's, docs/storage.md)
    text = sim.config_toml(db_path=str(db), opcua_port=None)
    assert "[agent]\n" in text
    text = text.replace(
        "[agent]\n",
        f'[agent]\nsamples_retention_days = {RETENTION_DAYS}\narchive_dir = "{archive}"\n'
        "flush_every_secs = 0.5\n",
        1,
    ).replace("flush_every_secs = 5\n", "")
    cfg = tmp_path / "kilnwatch.toml"
    cfg.write_text(text)
    return cfg, db, archive


async def run_agent(cfg: Path, env: dict[str, str], until: object, what: str) -> None:
    proc = await start_daemon(cfg, env)
    try:
        await wait_until(lambda: proc.returncode is not None or until(), within=60, what=what)  # type: ignore[operator]
    finally:
        await stop_daemon(proc)


@pytest.mark.slow
@pytest.mark.asyncio
async def test_the_agent_moves_yesterdays_samples_to_the_archive(sim: SimulatedPlant, tmp_path: Path) -> None:
    if not FAKETIME_LIBS:
        pytest.skip("Debian's libfaketime is not installed (scripts/setup --dev installs it)")
    now = datetime.now(UTC)
    if cutoff_day(now + timedelta(minutes=2), RETENTION_DAYS) != (now + timedelta(minutes=2)).date():
        pytest.skip("too close to midnight UTC for a whole-day cut")
    cfg, db, archive = write_config(sim, tmp_path)

    # 1. yesterday: the agent polls a few seconds one day in the past
    faked = {"LD_PRELOAD": FAKETIME_LIBS[0], "FAKETIME": "-1d", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    await run_agent(cfg, faked, lambda: sim_polls(sim) > 10, "yesterday's polls")
    con = storage.connect(db, read_only=True)
    try:
        n1, last = con.execute("SELECT count(*), max(ts) FROM samples").fetchall()[0]
        con.execute(f"COPY samples TO '{tmp_path / 'yesterday.parquet'}' (FORMAT parquet)")
    finally:
        con.close()
    assert n1 > 0
    assert last.date() == (datetime.now(UTC) - timedelta(days=1)).date(), (
        "libfaketime did not shift the clock"
    )

    # 2. today, retention of a few minutes: the start-up maintenance catches up the missed daily run
    polls_before = sim_polls(sim)
    await run_agent(
        cfg,
        {},
        lambda: (
            (archive / f"date={last.date().isoformat()}" / "part-0.parquet").exists()
            and sim_polls(sim) > polls_before + 10
        ),
        "the archive day and today's polls",
    )
    con = storage.connect(db, read_only=True)
    try:
        today_start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        live_old = con.execute("SELECT count(*) FROM samples WHERE ts < ?", [today_start]).fetchall()[0][0]
        n_live = con.execute("SELECT count(*) FROM samples").fetchall()[0][0]
        n_arch = con.execute(f"SELECT count(*) FROM read_parquet('{archive}/date=*/*.parquet')").fetchall()[
            0
        ][0]
        n_view = con.execute("SELECT count(*) FROM v_samples").fetchall()[0][0]
        # every one of yesterday's rows, exactly, is in the archive (and nowhere else)
        missing = con.execute(
            f"SELECT count(*) FROM (SELECT * FROM read_parquet('{tmp_path / 'yesterday.parquet'}') EXCEPT ALL "
            f"SELECT * FROM read_parquet('{archive}/date=*/*.parquet', hive_partitioning = false))"
        ).fetchall()[0][0]
        moved = con.execute("SELECT rows FROM archive_days").fetchall()
    finally:
        con.close()
    assert live_old == 0
    assert n_arch == n1 and missing == 0
    assert moved == [(n1,)]
    assert n_live > 0  # today's polls stay live
    assert n_view == n1 + n_live


def sim_polls(sim: SimulatedPlant) -> int:
    return sum(sim.function_codes.values())
