"""MQTT policies and payload shaping: the parts of the link that need neither a socket nor paho.

Owns the project's MQTT exception tree (the only errors the rest of the agent sees, whatever the
library raised; :mod:`agent.mqtt_wire` maps paho's reasons and exceptions onto it), the counters
behind the ``kilnwatch_mqtt_*`` metrics, broker URL parsing, the TLS context for ``mqtts://``,
publish-by-exception of KPI snapshots, the KPI payload of docs/mqtt.md ("Payloads") and the MQTT 5
CONNACK reason codes the link acts on. Everything here is pure or reads only local files (TLS), so it
is tested without a broker; keeping it out of :mod:`agent.mqtt` leaves that module with the
connection lifecycle only.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from agent.config import MqttSection
from common.values import finite, iso_utc

Protocol = Literal["5", "3.1.1"]
KpiValues = Mapping[str, tuple[float | None, str]]

# MQTT 5 CONNACK/DISCONNECT reason codes (MQTT 3.1.1 return codes are mapped to these by paho).
RC_UNSPECIFIED = 128
RC_UNSUPPORTED_PROTOCOL = 132
RC_BAD_CREDENTIALS = 134
RC_NOT_AUTHORIZED = 135


class MqttError(Exception):
    """Base of the MQTT errors the rest of the agent may see."""


class MqttConfigError(MqttError):
    """The ``[mqtt]`` section cannot be used (unreadable TLS or password files, bad URL)."""


class ConnectRefused(MqttError):
    """The broker answered CONNACK with a failure reason (``code`` is the MQTT 5 reason code)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class ClosedBeforeConnack(MqttError):
    """The broker closed the connection before CONNACK (some MQTT 3.1.1 brokers do that for v5)."""


class InvalidArgument(MqttError):
    """The MQTT library refused an argument (host, port, topic, payload size) before sending."""


@dataclass
class MqttStats:
    """Counters for Prometheus (``kilnwatch_mqtt_*``); updated on the loop thread only."""

    connected: bool = False
    #: Messages handed over: alerts when PUBACKed, KPI snapshots when written to the socket.
    published: int = 0
    #: Outbox messages sent again after the connection dropped while they awaited PUBACK.
    retried: int = 0
    #: Outbox rows not yet acknowledged by the broker.
    backlog: int = 0
    alerts_delivered: int = 0
    #: Alerts the broker refused in its PUBACK (MQTT 5 reason >= 0x80); settled, not retried.
    alerts_rejected: int = 0
    kpi_published: int = 0
    kpi_dropped: int = 0
    #: Successful connections after the first one.
    reconnects: int = 0


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_url(url: str) -> BrokerAddress:
    """``mqtt://host[:1883]`` or ``mqtts://host[:8883]``."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise MqttConfigError(f"mqtt.url: {url!r} is not mqtt://host[:port] or mqtts://host[:port]")
    try:
        port = parts.port
    except ValueError as exc:
        raise MqttConfigError(f"mqtt.url: {exc}") from None
    tls = parts.scheme == "mqtts"
    return BrokerAddress(parts.hostname, port or (8883 if tls else 1883), tls)


class KpiThrottle:
    """Publish-by-exception for KPI snapshots (pure: no clock, no I/O).

    A snapshot of an asset is due when any KPI moved by more than ``deadband_pct`` percent of its
    last published value (any move away from 0 counts; a KPI appearing, disappearing or turning
    null counts), or when ``heartbeat_secs`` of *data time* (the ``ts`` offered) passed since the
    last published snapshot. Data time keeps the heartbeat honest: a stalled pipeline sends
    nothing rather than re-announcing stale figures.
    """

    def __init__(self, deadband_pct: float, heartbeat_secs: float) -> None:
        self.deadband = deadband_pct / 100.0
        self.heartbeat_secs = heartbeat_secs
        self._last: dict[str, tuple[datetime, dict[str, tuple[float | None, str]]]] = {}

    def due(self, asset: str, ts: datetime, kpis: KpiValues) -> bool:
        """Whether to publish this snapshot; if so it becomes the reference for the next offers."""
        snapshot = {k: (finite(v), u) for k, (v, u) in kpis.items()}
        last = self._last.get(asset)
        if last is None or self._moved(last[1], snapshot) or not self._fresh(last[0], ts):
            self._last[asset] = (ts, snapshot)
            return True
        return False

    def _fresh(self, last_ts: datetime, ts: datetime) -> bool:
        age = (ts - last_ts).total_seconds()
        return 0 <= age < self.heartbeat_secs

    def _moved(
        self, old: dict[str, tuple[float | None, str]], new: dict[str, tuple[float | None, str]]
    ) -> bool:
        if old.keys() != new.keys():
            return True
        for name, (value, unit) in new.items():
            old_value, old_unit = old[name]
            if unit != old_unit or (value is None) != (old_value is None):
                return True
            if value is None or old_value is None:
                continue
            if abs(value - old_value) > self.deadband * abs(old_value) or (old_value == 0 and value != 0):
                return True
        return False


def kpi_payload(site: str, asset: str, ts: datetime, kpis: KpiValues) -> dict[str, Any]:
    """docs/mqtt.md: ``{"ts", "site", "asset", "kpis": {name: {"value", "unit"}}}``."""
    return {
        "ts": iso_utc(ts),
        "site": site,
        "asset": asset,
        "kpis": {name: {"value": finite(v), "unit": unit} for name, (v, unit) in kpis.items()},
    }


def ssl_reason(exc: ssl.SSLError) -> str:
    """A failed TLS handshake in words, pointing at the setting to check for an unknown CA."""
    verify = getattr(exc, "verify_message", None)
    if verify:
        return f"certificate verify failed: {verify} (check mqtt.ca_file)"
    return str(exc.reason or exc)


def ssl_context(cfg: MqttSection) -> ssl.SSLContext:
    """TLS for ``mqtts://``: the CA to trust (system store when ``ca_file`` is unset), optional client
    certificate; ``tls_insecure`` skips the host-name check only (the chain is still verified)."""
    try:
        ctx = ssl.create_default_context(cafile=cfg.ca_file)
        if cfg.cert_file:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise MqttConfigError(f"mqtt TLS files (ca_file/cert_file/key_file): {exc}") from None
    ctx.check_hostname = not cfg.tls_insecure
    return ctx
