"""Broker outages and agent restarts delay alerts but never lose or reorder them (docs/mqtt.md).

The broker keeps the subscriber's session across its restart (persistence on), the way an
operator's SCADA subscribes, so every message published after the restart reaches it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from mqtt_support import (
    Mosquitto,
    Subscriber,
    alert_keys,
    first_occurrences,
    free_port,
    kill,
    make_event,
    running,
    spawn_agent,
)
from waiting import wait_until

from agent import storage
from agent.config import MqttSection
from agent.mqtt import MqttLink
from agent.outbox import count_undelivered, load_open_alerts, record_events
from rules.alerts import AlertEvent

MosquittoFactory = Callable[..., Mosquitto]


def section(url: str) -> MqttSection:
    return MqttSection(url=url, reconnect_min_secs=0.2, reconnect_max_secs=1.0)


def storm(n: int, offset: int = 0) -> list[AlertEvent]:
    """Alerts that fire and resolve interleaved: 0 fires, 1 fires, 0 resolves, 2 fires, 1 resolves..."""
    out: list[AlertEvent] = []
    for i in range(offset, offset + n):
        out.append(make_event(i))
        if i > offset:
            out.append(make_event(i - 1, "resolved"))
    return out


async def outage_scenario(
    broker: Mosquitto, db: duckdb.DuckDBPyConnection, outage_secs: float, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agent.mqtt")
    sub = await Subscriber(broker.port, client_id="scada", persistent=True).start()
    link = MqttLink(section(broker.url), site="plant1", con=db)
    before = storm(2)
    batches = [storm(5, offset=10 * (k + 1)) for k in range(6)]
    expected = [(e.alert_id, e.state) for e in before + [e for b in batches for e in b]]
    async with running(link):
        record_events(db, before)
        link.notify()
        await sub.wait_for(lambda m: len(alert_keys(m)) == len(before))
        await asyncio.to_thread(broker.stop)
        loop = asyncio.get_running_loop()
        down_at = loop.time()
        # the outage lasts outage_secs (the scenario under test), alerts firing and resolving all along
        for batch in batches:
            record_events(db, batch)
            link.notify()
            await asyncio.sleep(outage_secs / len(batches))
        assert not link.stats.connected
        assert link.stats.backlog == len(expected) - len(before)
        await asyncio.sleep(max(0.0, outage_secs - (loop.time() - down_at)))
        await asyncio.to_thread(broker.start)
        msgs = await sub.wait_for(lambda m: len(set(alert_keys(m))) == len(expected), within=30)
        await wait_until(lambda: link.stats.backlog == 0, what="backlog drained")
    sub.stop()
    assert first_occurrences(alert_keys(msgs)) == expected
    assert count_undelivered(db) == 0
    assert link.stats.reconnects == 1
    # one line when the link goes down, one when it is back; the failed retries in between are DEBUG
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == 2, said
    assert said[0] == (
        f"MQTT connection to 127.0.0.1:{broker.port} lost (connection closed); "
        "alerts stay in the outbox until it returns"
    )
    assert said[1].startswith(f"MQTT connection to 127.0.0.1:{broker.port} restored after ")
    assert said[1].endswith(f"; {len(expected) - len(before)} alert(s) to deliver")


@pytest.mark.asyncio
async def test_broker_outage_delays_alerts_but_loses_none(
    mosquitto_factory: MosquittoFactory, db: duckdb.DuckDBPyConnection, caplog: pytest.LogCaptureFixture
) -> None:
    await outage_scenario(mosquitto_factory(persistence=True), db, 2.0, caplog)


@pytest.mark.slow
@pytest.mark.asyncio
async def test_thirty_second_broker_outage_delays_alerts_but_loses_none(
    mosquitto_factory: MosquittoFactory, db: duckdb.DuckDBPyConnection, caplog: pytest.LogCaptureFixture
) -> None:
    await outage_scenario(mosquitto_factory(persistence=True), db, 30.0, caplog)


@pytest.mark.asyncio
async def test_agent_restarted_while_broker_down_delivers_backlog_in_order(
    mosquitto_factory: MosquittoFactory, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = mosquitto_factory(persistence=True)
    sub = await Subscriber(broker.port, client_id="scada", persistent=True).start()
    con = storage.connect(db_path)
    first = MqttLink(section(broker.url), site="plant1", con=con)
    early, during, after = storm(2), storm(4, offset=10), storm(3, offset=20)
    async with running(first):
        record_events(con, early)
        first.notify()
        await sub.wait_for(lambda m: len(alert_keys(m)) == len(early))
        await asyncio.to_thread(broker.stop)
        record_events(con, during)
        first.notify()
        await wait_until(lambda: not first.stats.connected)
    con.close()  # the agent is gone; only the database file remains

    con = storage.connect(db_path)
    open_alerts = load_open_alerts(con, "plant1")
    assert [a.alert_id for a in open_alerts] == [make_event(1).alert_id, make_event(13).alert_id]
    second = MqttLink(section(broker.url), site="plant1", con=con)
    caplog.clear()
    async with running(second):
        record_events(con, after)
        second.notify()
        await wait_until(
            lambda: any("unreachable" in r.getMessage() for r in caplog.records), what="the broker found down"
        )
        assert second.stats.backlog == len(during) + len(after)
        await asyncio.to_thread(broker.start)
        expected = [(e.alert_id, e.state) for e in early + during + after]
        msgs = await sub.wait_for(lambda m: len(set(alert_keys(m))) == len(expected), within=30)
        await wait_until(lambda: second.stats.backlog == 0)
    sub.stop()
    con.close()
    assert first_occurrences(alert_keys(msgs)) == expected


@pytest.mark.asyncio
async def test_alerts_recorded_by_a_killed_agent_are_delivered_after_restart(
    mosquitto: Mosquitto, db_path: Path
) -> None:
    """SIGKILL right after the commit: DuckDB's WAL keeps the outbox rows for the next agent."""
    dead_url = f"mqtt://127.0.0.1:{free_port()}"  # the broker is unreachable for the first agent
    proc = await spawn_agent(dead_url, db_path, record=25)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.strip() == b"RECORDED"
    finally:
        await kill(proc)

    sub = await Subscriber(mosquitto.port).start()
    con = storage.connect(db_path)
    link = MqttLink(section(mosquitto.url), site="plant1", con=con)
    async with running(link):
        msgs = await sub.wait_for(lambda m: len(alert_keys(m)) == 25)
        await wait_until(lambda: link.stats.backlog == 0)
    sub.stop()
    assert count_undelivered(con) == 0
    con.close()
    assert [k[0] for k in alert_keys(msgs)] == [make_event(i).alert_id for i in range(25)]
