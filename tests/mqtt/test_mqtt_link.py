"""MqttLink against a real mosquitto: topics, payloads, QoS/retain, status, KPIs, ordering (docs/mqtt.md)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import duckdb
import pytest
from mqtt_support import (
    Mosquitto,
    Subscriber,
    TcpProxy,
    alert_keys,
    kill,
    make_event,
    running,
    spawn_agent,
)
from waiting import wait_until

from agent.config import MqttSection
from agent.mqtt import MqttLink
from agent.outbox import count_undelivered, record_events

T0 = dt.datetime(2026, 3, 1, 6, 0, tzinfo=dt.UTC)
ALERT_FIELDS = {
    "alert_id",
    "site",
    "asset",
    "rule",
    "severity",
    "state",
    "value",
    "threshold",
    "unit",
    "started_at",
    "ts",
    "message",
}


def section(url: str, **kw: Any) -> MqttSection:
    return MqttSection(url=url, reconnect_min_secs=0.1, reconnect_max_secs=0.5, **kw)


def at(secs: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=secs)


@pytest.mark.asyncio
async def test_alerts_arrive_on_documented_topic_with_documented_fields(
    mosquitto: Mosquitto, db: duckdb.DuckDBPyConnection
) -> None:
    sub = await Subscriber(mosquitto.port).start()
    link = MqttLink(section(mosquitto.url), site="plant1", con=db)
    async with running(link):
        record_events(db, [make_event(1), make_event(1, "resolved")])
        link.notify()
        msgs = await sub.wait_for(lambda m: len(alert_keys(m)) == 2)
        await wait_until(lambda: link.stats.backlog == 0, what="PUBACKs marked")
    sub.stop()
    alerts = [m for m in msgs if "/alerts/" in m.topic]
    assert [m.topic for m in alerts] == ["kilnwatch/plant1/kiln1/alerts/kiln.specific_heat.high"] * 2
    assert all(m.payload.keys() >= ALERT_FIELDS for m in alerts)
    firing, resolved = (m.payload for m in alerts)
    assert firing["alert_id"] == resolved["alert_id"]
    assert (firing["state"], resolved["state"]) == ("firing", "resolved")
    assert firing["value"] == 791.0 and firing["threshold"] == 780.0 and firing["unit"] == "kcal/kg"
    assert all(m.qos == 1 and not m.retain for m in alerts)
    assert count_undelivered(db) == 0
    assert link.stats.alerts_delivered == 2 and link.stats.retried == 0


@pytest.mark.asyncio
async def test_status_is_retained_online_then_offline_on_clean_shutdown(
    mosquitto: Mosquitto, db: duckdb.DuckDBPyConnection
) -> None:
    link = MqttLink(section(mosquitto.url), site="plant1", con=db)
    async with running(link):
        await wait_until(lambda: link.stats.connected, what="connection")
        late = await Subscriber(mosquitto.port, topic="kilnwatch/plant1/status").start()
        [online] = await late.wait_for(lambda m: len(m) == 1)
        assert online.retain and online.qos == 1
        assert online.payload["state"] == "online" and online.payload["site"] == "plant1"
    msgs = await late.wait_for(lambda m: len(m) == 2)
    late.stop()
    assert msgs[1].payload["state"] == "offline" and msgs[1].payload["reason"] == "shutdown"
    after = await Subscriber(mosquitto.port, topic="kilnwatch/plant1/status", client_id="after").start()
    [retained] = await after.wait_for(lambda m: len(m) == 1)
    after.stop()
    assert retained.retain and retained.payload["state"] == "offline"


@pytest.mark.asyncio
async def test_alerts_are_not_retained_but_kpi_snapshots_are(
    mosquitto: Mosquitto, db: duckdb.DuckDBPyConnection
) -> None:
    link = MqttLink(section(mosquitto.url), site="plant1", con=db)
    async with running(link):
        record_events(db, [make_event(1)])
        link.notify()
        link.offer_kpis(
            "kiln1",
            at(0),
            {"clinker_tph": (120.0, "t/h"), "specific_heat_kcal_per_kg_clinker": (752.3, "kcal/kg")},
        )
        link.offer_kpis("cement_mill1", at(0), {"specific_power_kwh_per_t": (31.5, "kWh/t")})
        await wait_until(lambda: link.stats.backlog == 0 and link.stats.kpi_published == 2)
        late = await Subscriber(mosquitto.port).start()
        msgs = await late.wait_for(lambda m: sum("/kpi" in x.topic for x in m) == 2)
        await asyncio.sleep(0.2)  # a retained alert, if any, would arrive with the others
    late.stop()
    assert alert_keys(late.snapshot()) == []
    kpis = {m.topic: m for m in msgs if m.topic.endswith("/kpi")}
    kiln = kpis["kilnwatch/plant1/kiln1/kpi"]
    assert kiln.retain and kiln.qos == 0
    assert kiln.payload == {
        "ts": "2026-03-01T06:00:00Z",
        "site": "plant1",
        "asset": "kiln1",
        "kpis": {
            "clinker_tph": {"value": 120.0, "unit": "t/h"},
            "specific_heat_kcal_per_kg_clinker": {"value": 752.3, "unit": "kcal/kg"},
        },
    }
    assert (
        kpis["kilnwatch/plant1/cement_mill1/kpi"].payload["kpis"]["specific_power_kwh_per_t"]["value"] == 31.5
    )


@pytest.mark.asyncio
async def test_kpi_snapshots_are_published_by_exception_and_heartbeat(
    mosquitto: Mosquitto, db: duckdb.DuckDBPyConnection
) -> None:
    sub = await Subscriber(mosquitto.port, topic="kilnwatch/plant1/kiln1/kpi").start()
    link = MqttLink(
        section(mosquitto.url, kpi_deadband_pct=1.0, kpi_heartbeat_secs=60), site="plant1", con=db
    )
    async with running(link):
        await wait_until(lambda: link.stats.connected)
        # data time advances 10 s per evaluation; no real waiting needed
        offers = [(0, 120.0), (10, 120.5), (20, 122.0), (30, 121.0), (40, 122.1), (80, 122.1), (90, 122.1)]
        for secs, tph in offers:
            link.offer_kpis("kiln1", at(secs), {"clinker_tph": (tph, "t/h")})
            await asyncio.sleep(0.01)  # a yield: the link takes each offer (a waiting one is replaced)
        msgs = await sub.wait_for(lambda m: len(m) >= 3)
        await asyncio.sleep(0.3)  # a fourth snapshot, if one were published, would arrive meanwhile
    sub.stop()
    got = [(m.payload["ts"], m.payload["kpis"]["clinker_tph"]["value"]) for m in sub.snapshot()]
    # 0: first; 10: +0.4 % no; 20: +1.7 % yes; 30: -0.8 % no; 40: +0.08 % no; 80: heartbeat (60 s after 20)
    assert got == [
        ("2026-03-01T06:00:00Z", 120.0),
        ("2026-03-01T06:00:20Z", 122.0),
        ("2026-03-01T06:01:20Z", 122.1),
    ]
    assert msgs and link.stats.kpi_published == 3


@pytest.mark.asyncio
async def test_kpi_backlog_keeps_only_the_latest_snapshot_per_asset(
    mosquitto: Mosquitto, db: duckdb.DuckDBPyConnection
) -> None:
    link = MqttLink(section(mosquitto.url, kpi_deadband_pct=0.0), site="plant1", con=db)
    async with running(link):
        await wait_until(lambda: link.stats.connected)
        await asyncio.to_thread(mosquitto.stop)
        await wait_until(lambda: not link.stats.connected, what="disconnect noticed")
        for i in range(500):  # an hour-long outage at ~7 s per evaluation
            link.offer_kpis("kiln1", at(i), {"clinker_tph": (100.0 + i, "t/h")})
            link.offer_kpis("raw_mill1", at(i), {"specific_power_kwh_per_t": (20.0 + i, "kWh/t")})
        published_before = link.stats.kpi_published
        await asyncio.to_thread(mosquitto.start)
        await wait_until(lambda: link.stats.kpi_published == published_before + 2, what="backlog sent")
        late = await Subscriber(mosquitto.port).start()
        msgs = await late.wait_for(lambda m: sum(x.topic.endswith("/kpi") for x in m) == 2)
        await asyncio.sleep(0.2)  # an older snapshot, if one were still sent, would arrive meanwhile
    late.stop()
    assert link.stats.kpi_published == published_before + 2
    values = {
        m.payload["asset"]: next(iter(m.payload["kpis"].values()))["value"] for m in msgs if "/kpi" in m.topic
    }
    assert values == {"kiln1": 599.0, "raw_mill1": 519.0}


@pytest.mark.asyncio
async def test_mqtt_311_can_be_forced(mosquitto: Mosquitto, db: duckdb.DuckDBPyConnection) -> None:
    sub = await Subscriber(mosquitto.port).start()
    link = MqttLink(section(mosquitto.url, protocol="3.1.1"), site="plant1", con=db)
    async with running(link):
        record_events(db, [make_event(i) for i in range(3)])
        link.notify()
        msgs = await sub.wait_for(lambda m: len(alert_keys(m)) == 3)
    sub.stop()
    assert [k[0] for k in alert_keys(msgs)] == [make_event(i).alert_id for i in range(3)]


@pytest.mark.asyncio
async def test_later_alert_never_overtakes_one_awaiting_puback(
    mosquitto: Mosquitto, db: duckdb.DuckDBPyConnection
) -> None:
    """Messages swallowed by a half-dead link are re-sent first, in order, after the reconnect."""
    proxy = await TcpProxy(mosquitto.port).start()
    sub = await Subscriber(mosquitto.port).start()
    link = MqttLink(section(f"mqtt://127.0.0.1:{proxy.port}"), site="plant1", con=db)
    events = [
        make_event(0),
        make_event(1),
        make_event(2),
        make_event(1, "resolved"),
        make_event(3),
        make_event(4),
    ]
    async with running(link):
        record_events(db, events[:1])
        link.notify()
        await sub.wait_for(lambda m: len(alert_keys(m)) == 1)
        proxy.blackhole()
        record_events(db, events[1:4])
        link.notify()
        await wait_until(lambda: proxy.swallowed > 0 and link.stats.backlog == 3, what="swallowed")
        swallowed = proxy.swallowed
        record_events(db, events[4:])
        link.notify()
        # the later events are written too, still without PUBACK
        await wait_until(lambda: proxy.swallowed > swallowed, what="the later events swallowed")
        assert link.stats.backlog == 5
        proxy.restore()
        proxy.cut()
        msgs = await sub.wait_for(lambda m: len(alert_keys(m)) >= 6)
        await wait_until(lambda: link.stats.backlog == 0)
    sub.stop()
    await proxy.close()
    assert alert_keys(msgs) == [(e.alert_id, e.state) for e in events]
    assert link.stats.retried == 5 and link.stats.reconnects == 1


@pytest.mark.asyncio
async def test_status_goes_offline_when_the_agent_process_is_killed(
    mosquitto: Mosquitto, db_path: Path
) -> None:
    sub = await Subscriber(mosquitto.port, topic="kilnwatch/plant1/status").start()
    proc = await spawn_agent(mosquitto.url, db_path)
    try:
        await sub.wait_for(lambda m: any(x.payload.get("state") == "online" for x in m), within=30)
        await kill(proc)
        msgs = await sub.wait_for(lambda m: m[-1].payload.get("state") == "offline", within=15)
    finally:
        await kill(proc)
        sub.stop()
    assert msgs[-1].payload["reason"] == "connection lost"  # the last will, not a clean shutdown
    assert msgs[-1].payload["site"] == "plant1"


@pytest.mark.asyncio
async def test_silent_broker_is_retried_and_shutdown_stays_prompt(
    db: duckdb.DuckDBPyConnection, caplog: pytest.LogCaptureFixture
) -> None:
    """A peer that accepts TCP but never answers CONNECT: a warning, retries, and a quick exit."""
    accepted: list[asyncio.StreamWriter] = []

    async def swallow(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        accepted.append(w)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    caplog.set_level(logging.DEBUG, logger="agent.mqtt")
    link = MqttLink(
        section(f"mqtt://127.0.0.1:{port}", protocol="5"), site="plant1", con=db, connack_timeout_secs=0.2
    )
    task = asyncio.create_task(link.run())
    await wait_until(lambda: len(accepted) >= 2, what="a second attempt")
    loop = asyncio.get_running_loop()
    started = loop.time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert loop.time() - started < 1.0
    server.close()
    for w in accepted:
        w.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"MQTT broker 127.0.0.1:{port} unreachable (no CONNACK within 0.2 s); 0 alert(s) wait in the outbox"
    ]
    assert not link.stats.connected
