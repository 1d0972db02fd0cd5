"""The whole agent against real peers: simulator PLCs in, mosquitto out (docs/auditors.md, docs/mqtt.md)."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

import pytest
from mqtt_support import Mosquitto, Subscriber

from agent import storage
from agent.config import parse_config
from agent.pipeline import Agent
from simulator.runner import SimulatedPlant

# A site rule pack with a short `for`, true on a running kiln, so an alert fires within seconds.
SITE_RULES = """
[[rule]]
id = "site.kiln.running"
asset = "kiln*"
when = "clinker_tph > 100"
for = "2s"
severity = "info"
message = "Kiln producing {value:.0f} t/h clinker (above {threshold:.0f})"
"""


@pytest.mark.asyncio
async def test_alert_fired_by_the_agent_arrives_on_mqtt_and_in_duckdb(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    rules = tmp_path / "site-rules.toml"
    rules.write_text(SITE_RULES)
    db = tmp_path / "site.duckdb"
    sub = await Subscriber(mosquitto.port).start()
    async with SimulatedPlant(modbus_port=0, opcua_port=0, seed=11) as sim:
        data = tomllib.loads(sim.config_toml(db_path=str(db)))
        data["agent"].update(evaluate_every_secs=1.0, flush_every_secs=1.0, rule_files=[str(rules)])
        data["mqtt"] = {"url": mosquitto.url, "kpi_heartbeat_secs": 1}
        for src in data["sources"]:
            src["poll_interval_ms"] = 250
        agent = Agent(parse_config(data))
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            msgs = await sub.wait_for(
                lambda ms: (
                    any("/alerts/site.kiln.running" in m.topic for m in ms)
                    and any(m.topic == "kilnwatch/plant1/kiln1/kpi" for m in ms)
                ),
                within=60,
            )
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
    await sub.wait_for(lambda ms: any(m.payload.get("state") == "offline" for m in ms), within=10)
    status = [m.payload["state"] for m in sub.snapshot("kilnwatch/plant1/status")]
    sub.stop()

    alert = next(m for m in msgs if "/alerts/" in m.topic)
    assert alert.topic == "kilnwatch/plant1/kiln1/alerts/site.kiln.running"
    assert alert.qos == 1 and not alert.retain
    p = alert.payload
    assert (p["site"], p["asset"], p["rule"], p["state"], p["severity"]) == (
        "plant1",
        "kiln1",
        "site.kiln.running",
        "firing",
        "info",
    )
    assert p["threshold"] == 100 and 150 < p["value"] < 260  # 5,000 t/d line: ~208 t/h clinker
    kpi = next(m for m in msgs if m.topic == "kilnwatch/plant1/kiln1/kpi")
    assert kpi.retain or kpi.qos == 0
    shc = kpi.payload["kpis"]["specific_heat_kcal_per_kg_clinker"]
    assert shc["unit"] == "kcal/kg" and 700 <= shc["value"] <= 780
    assert status[0] == "online" and status[-1] == "offline"  # clean shutdown publishes offline

    con = storage.connect(db, read_only=True)
    row = con.execute("SELECT alert_id, state, rule FROM alerts WHERE rule = 'site.kiln.running'").fetchone()
    undelivered = con.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL").fetchone()
    con.close()
    assert row is not None and row[0] == p["alert_id"] and row[1] == "firing"
    assert undelivered == (0,)
