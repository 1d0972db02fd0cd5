"""TLS (mqtts://, CA, client certificates) and username/password against a real mosquitto."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from mqtt_support import Mosquitto, Subscriber, TlsFiles, alert_keys, make_event, running
from waiting import wait_until

from agent.config import MqttSection
from agent.mqtt import MqttLink
from agent.mqtt_policies import MqttConfigError
from agent.outbox import record_events

MosquittoFactory = Callable[..., Mosquitto]
USERS = {"kilnwatch": "c0rrect-h0rse", "scada": "scada-pw"}


def section(url: str, **kw: Any) -> MqttSection:
    return MqttSection(url=url, **{"reconnect_min_secs": 0.1, "reconnect_max_secs": 0.5, **kw})


async def delivers_alerts(link: MqttLink, db: duckdb.DuckDBPyConnection, sub: Subscriber) -> None:
    async with running(link):
        record_events(db, [make_event(1), make_event(2)])
        link.notify()
        msgs = await sub.wait_for(lambda m: len(alert_keys(m)) == 2)
        await wait_until(lambda: link.stats.backlog == 0)
    sub.stop()
    assert [k[0] for k in alert_keys(msgs)] == [make_event(1).alert_id, make_event(2).alert_id]


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "agent.mqtt" and r.levelno >= logging.ERROR]


@pytest.mark.asyncio
async def test_tls_link_verifies_the_broker_and_delivers(
    mosquitto_factory: MosquittoFactory, tls_files: TlsFiles, db: duckdb.DuckDBPyConnection
) -> None:
    broker = mosquitto_factory(tls=tls_files)
    assert broker.url.startswith("mqtts://")
    sub = await Subscriber(broker.port, tls=tls_files).start()
    link = MqttLink(section(broker.url, ca_file=str(tls_files.ca_cert)), site="plant1", con=db)
    await delivers_alerts(link, db, sub)


@pytest.mark.asyncio
async def test_client_certificate_is_presented_when_the_broker_requires_one(
    mosquitto_factory: MosquittoFactory, tls_files: TlsFiles, db: duckdb.DuckDBPyConnection
) -> None:
    broker = mosquitto_factory(tls=tls_files, require_certificate=True)
    sub = await Subscriber(broker.port, tls=tls_files).start()
    cfg = section(
        broker.url,
        ca_file=str(tls_files.ca_cert),
        cert_file=str(tls_files.client_cert),
        key_file=str(tls_files.client_key),
    )
    await delivers_alerts(MqttLink(cfg, site="plant1", con=db), db, sub)


@pytest.mark.asyncio
async def test_untrusted_broker_certificate_is_one_clear_error(
    mosquitto_factory: MosquittoFactory,
    tls_files: TlsFiles,
    db: duckdb.DuckDBPyConnection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = mosquitto_factory(tls=tls_files)
    link = MqttLink(section(broker.url, ca_file=str(tls_files.other_ca_cert)), site="plant1", con=db)
    caplog.set_level(logging.DEBUG, logger="agent.mqtt")
    async with running(link):
        await wait_until(lambda: sum("TLS" in r.getMessage() for r in caplog.records) >= 3, what="retries")
    [err] = errors(caplog)
    assert "TLS handshake with 127.0.0.1:" in err.getMessage()
    assert "certificate verify failed" in err.getMessage()
    assert err.exc_info is None and not link.stats.connected


def test_unreadable_tls_files_are_a_config_error(tmp_path: Path, db: duckdb.DuckDBPyConnection) -> None:
    cfg = MqttSection(url="mqtts://127.0.0.1:8883", ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(MqttConfigError, match="ca_file"):
        MqttLink(cfg, site="plant1", con=db)


@pytest.mark.asyncio
async def test_username_and_password_from_environment(
    mosquitto_factory: MosquittoFactory, db: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = mosquitto_factory(users=USERS)
    monkeypatch.setenv("KILNWATCH_MQTT_PASSWORD", USERS["kilnwatch"])
    sub = await Subscriber(broker.port, username="scada", password=USERS["scada"]).start()
    cfg = section(broker.url, username="kilnwatch", password_env="KILNWATCH_MQTT_PASSWORD")
    await delivers_alerts(MqttLink(cfg, site="plant1", con=db), db, sub)


@pytest.mark.asyncio
async def test_password_from_file_over_tls(
    mosquitto_factory: MosquittoFactory, tls_files: TlsFiles, db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    broker = mosquitto_factory(users=USERS, tls=tls_files)
    secret = tmp_path / "mqtt.secret"
    secret.write_text(USERS["kilnwatch"] + "\n")
    sub = await Subscriber(broker.port, tls=tls_files, username="scada", password=USERS["scada"]).start()
    cfg = section(broker.url, username="kilnwatch", password_file=str(secret), ca_file=str(tls_files.ca_cert))
    await delivers_alerts(MqttLink(cfg, site="plant1", con=db), db, sub)


@pytest.mark.parametrize("protocol", ["auto", "3.1.1"])
@pytest.mark.asyncio
async def test_wrong_password_is_one_clear_error_and_a_slow_retry(
    mosquitto_factory: MosquittoFactory,
    db: duckdb.DuckDBPyConnection,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    protocol: str,
) -> None:
    broker = mosquitto_factory(users=USERS)
    monkeypatch.setenv("KILNWATCH_MQTT_PASSWORD", "not-the-password")
    cfg = MqttSection(
        url=broker.url,
        username="kilnwatch",
        password_env="KILNWATCH_MQTT_PASSWORD",
        protocol=protocol,  # type: ignore[arg-type]
        reconnect_min_secs=0.1,
        reconnect_max_secs=2.0,
    )
    link = MqttLink(cfg, site="plant1", con=db)
    caplog.set_level(logging.DEBUG, logger="agent.mqtt")
    async with running(link):
        await wait_until(lambda: len(errors(caplog)) == 1, what="the error line")
        await asyncio.sleep(0.8)  # a fast retry (min 0.1 s) would have tried several more times
        refusals = [r for r in caplog.records if "refused connection" in r.getMessage()]
        assert len(refusals) == 1  # slow retry: next attempt after >= reconnect_max_secs / 2
        await wait_until(
            lambda: len([r for r in caplog.records if "refused" in r.getMessage()]) >= 2, within=5
        )
    [err] = errors(caplog)
    assert err.getMessage().startswith(
        f"MQTT broker 127.0.0.1:{broker.port} refused connection: not authorised"
    )
    assert err.exc_info is None
    assert "not-the-password" not in caplog.text
    assert not link.stats.connected and link.stats.published == 0
