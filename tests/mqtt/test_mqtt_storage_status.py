"""The daemon's storage maintenance as an operator sees it (agent/tiering.py, docs/storage.md): old
days moved at start, archive days deleted for the disk budget - each deletion logged, counted in the
metrics, recorded in ``archive_deletions`` and shown in the retained MQTT ``status``. Real simulator
PLCs in, a real mosquitto out."""

from __future__ import annotations

import asyncio
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mqtt_support import Mosquitto, Subscriber

from agent import storage
from agent.config import parse_config
from agent.pipeline import Agent
from simulator.runner import SimulatedPlant

OLD_DAYS = 3
ROWS_PER_OLD_DAY = 24 * 60  # one tag, one sample a minute


def seed_old_days(db: Path) -> datetime:
    """Three whole UTC days before yesterday, and one KPI row that must survive everything."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=OLD_DAYS + 1)
    con = storage.connect(db)
    try:
        con.execute(
            f"""INSERT INTO samples SELECT $first + to_seconds(i * 60), 'plant1', 'old_tag', i, 'good'
            FROM range(0, {OLD_DAYS * ROWS_PER_OLD_DAY}) t(i)""",
            {"first": first},
        )
        con.execute(
            "INSERT INTO kpi VALUES (?, 'plant1', 'kiln1', 'clinker_tph', 150, 't/h', 60, 1, NULL)", [first]
        )
    finally:
        con.close()
    return first


@pytest.mark.asyncio
async def test_budget_deletions_are_logged_counted_and_in_the_status(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "site.duckdb"
    first = seed_old_days(db)
    sub = await Subscriber(mosquitto.port).start()
    async with SimulatedPlant(modbus_port=0, opcua_port=0, seed=5) as sim:
        data = tomllib.loads(sim.config_toml(db_path=str(db)))
        # a budget of 1 kB: smaller than the live database, so every archive day has to go
        data["agent"].update(
            flush_every_secs=1.0,
            samples_retention_days=1.0,
            max_disk_gb=1e-6,
            archive_dir=str(tmp_path / "arch"),
        )
        data["mqtt"] = {"url": mosquitto.url}
        agent = Agent(parse_config(data))
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            msgs = await sub.wait_for(
                lambda ms: any(
                    m.topic == "kilnwatch/plant1/status"
                    and m.payload.get("storage", {}).get("archive_days_deleted") == OLD_DAYS
                    for m in ms
                ),
                within=60,
            )
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
    sub.stop()

    status = next(m.payload for m in msgs if m.payload.get("storage", {}).get("archive_days_deleted"))
    assert status["state"] == "online"
    assert status["storage"]["archive_days"] == 0 and status["storage"]["database_bytes"] > 0
    reg = agent.metrics.registry
    assert reg.get_sample_value("kilnwatch_storage_archive_days_moved_total") == OLD_DAYS
    assert reg.get_sample_value("kilnwatch_storage_archive_days_deleted_total") == OLD_DAYS
    deleted_lines = [r for r in caplog.records if "deleted archive day" in r.getMessage()]
    assert len(deleted_lines) == OLD_DAYS and all(
        "agent.max_disk_gb" in r.getMessage() for r in deleted_lines
    )

    con = storage.connect(db, read_only=True)
    try:
        log = con.execute("SELECT day, rows FROM archive_deletions ORDER BY day").fetchall()
        assert log == [((first + timedelta(days=i)).date(), ROWS_PER_OLD_DAY) for i in range(OLD_DAYS)]
        assert con.execute("SELECT count(*) FROM samples WHERE tag = 'old_tag'").fetchall() == [(0,)]
        assert con.execute("SELECT count(*) FROM kpi WHERE ts = ?", [first]).fetchall() == [(1,)]
        # the trend of the deleted days outlives them
        assert con.execute("SELECT sum(n) FROM samples_1m WHERE tag = 'old_tag'").fetchall() == [
            (OLD_DAYS * ROWS_PER_OLD_DAY,)
        ]
    finally:
        con.close()
