"""The demo's embedded broker: mosquitto when installed, amqtt in-process otherwise."""

from __future__ import annotations

import asyncio
import logging

import duckdb
import pytest
from mqtt_support import Subscriber, alert_keys, make_event, running
from waiting import wait_until

import agent.broker
from agent.broker import EmbeddedBroker, find_mosquitto
from agent.config import MqttSection
from agent.mqtt import MqttLink
from agent.outbox import record_events


async def port_is_closed(port: int) -> bool:
    try:
        _r, w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    w.close()
    return False


@pytest.mark.parametrize("backend", ["mosquitto", "amqtt"])
@pytest.mark.asyncio
async def test_embedded_broker_carries_alerts_and_prints_nothing(
    backend: str,
    db: duckdb.DuckDBPyConnection,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    if backend == "mosquitto" and find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    caplog.set_level(logging.INFO, logger="agent.mqtt")
    async with EmbeddedBroker(host="127.0.0.1", port=0, backend=backend) as broker:  # type: ignore[arg-type]
        assert broker.backend == backend
        assert broker.port > 0 and broker.url == f"mqtt://127.0.0.1:{broker.port}"
        sub = await Subscriber(broker.port).start()
        # "auto" on purpose: against amqtt (MQTT 3.1.1 only) the link must fall back by itself;
        # amqtt stalls on an MQTT 5 CONNECT with a will, hence the short CONNACK timeout
        cfg = MqttSection(url=broker.url, protocol="auto", reconnect_min_secs=0.1, reconnect_max_secs=0.5)
        link = MqttLink(cfg, site="plant1", con=db, connack_timeout_secs=1.0)
        async with running(link):
            record_events(db, [make_event(1), make_event(1, "resolved")])
            link.notify()
            msgs = await sub.wait_for(lambda m: len(alert_keys(m)) == 2)
            await wait_until(lambda: link.stats.backlog == 0)
        sub.stop()
        port = broker.port
    assert alert_keys(msgs) == [(make_event(1).alert_id, "firing"), (make_event(1).alert_id, "resolved")]
    assert await port_is_closed(port)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    fell_back = any("using MQTT 3.1.1" in r.getMessage() for r in caplog.records)
    assert fell_back == (backend == "amqtt")


@pytest.mark.asyncio
async def test_auto_backend_uses_amqtt_when_mosquitto_is_missing(
    monkeypatch: pytest.MonkeyPatch, db: duckdb.DuckDBPyConnection
) -> None:
    monkeypatch.setattr(agent.broker, "find_mosquitto", lambda: None)
    async with EmbeddedBroker() as broker:
        assert broker.backend == "amqtt" and broker.protocol == "3.1.1"
        sub = await Subscriber(broker.port).start()
        # the protocol hint lets the demo connect at once, without the fall-back round
        link = MqttLink(MqttSection(url=broker.url, protocol=broker.protocol), site="plant1", con=db)
        async with running(link):
            link.offer_kpis("kiln1", make_event(0).ts, {"clinker_tph": (120.0, "t/h")})
            msgs = await sub.wait_for(lambda m: any(x.topic.endswith("/kpi") for x in m), within=5)
        sub.stop()
    [kpi] = [m for m in msgs if m.topic == "kilnwatch/plant1/kiln1/kpi"]
    assert kpi.payload["kpis"]["clinker_tph"]["value"] == 120.0


@pytest.mark.asyncio
async def test_auto_backend_prefers_mosquitto() -> None:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    async with EmbeddedBroker() as broker:
        assert broker.backend == "mosquitto" and broker.protocol == "auto"
        assert broker.log_path is not None and broker.log_path.exists()
        log_path = broker.log_path
    assert not log_path.exists()  # temporary files are removed


@pytest.mark.asyncio
async def test_port_in_use_is_a_clear_error() -> None:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    async with EmbeddedBroker() as first:
        with pytest.raises(agent.broker.BrokerError, match="did not start"):
            async with EmbeddedBroker(port=first.port, backend="mosquitto"):
                pass
