"""The MQTT link: publishing of alerts, KPI snapshots and agent status (docs/mqtt.md).

:class:`MqttLink` is one long-running task of the agent and the only thing the pipeline imports
from the MQTT side. It owns the connection lifecycle: it connects (TLS and username/password when
configured), reconnects with jittered capped backoff (:class:`common.backoff.Backoff`), drains the
durable outbox (:mod:`agent.outbox`), publishes KPI snapshots by exception and keeps the retained
online/offline status and the last will. What it decides with lives in :mod:`agent.mqtt_policies`
(errors, counters, URL, TLS context, KPI throttle and payload); the paho client is behind
:mod:`agent.mqtt_wire`, the only module that imports paho, so this one sees the project's own
exceptions and plain reason texts.

Design notes (docs/mqtt.md, "Delivery guarantees"):

* Everything here runs on the asyncio loop thread, including the wire's callbacks, so every DuckDB
  call does too (the wire drives paho without a network thread).
* One fresh wire per connection attempt with a clean session. After a reconnect the outbox is read
  again from its oldest undelivered row, so a message that was awaiting PUBACK when the link dropped
  is sent again *before* any later one (at-least-once, strictly in order; subscribers may see a
  duplicate, never a gap or a swap).
* KPI snapshots are not durable: at most one pending snapshot per asset (latest wins), so an outage
  of hours costs no memory growth; they are QoS 0 and retained, so a new subscriber gets the latest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import duckdb

from agent.config import MqttSection
from agent.mqtt_policies import (
    RC_BAD_CREDENTIALS,
    RC_NOT_AUTHORIZED,
    RC_UNSUPPORTED_PROTOCOL,
    ClosedBeforeConnack,
    ConnectRefused,
    InvalidArgument,
    KpiThrottle,
    KpiValues,
    MqttConfigError,
    MqttStats,
    Protocol,
    kpi_payload,
    parse_url,
    ssl_context,
    ssl_reason,
)
from agent.mqtt_wire import Wire
from agent.outbox import (
    OutboxRow,
    count_undelivered,
    ensure_outbox,
    fetch_undelivered,
    mark_delivered,
    prune_delivered,
    to_json,
)
from common.backoff import Backoff
from common.values import iso_utc
from rules.alerts import sanitise

log = logging.getLogger(__name__)

#: Outbox rows read from DuckDB per query while draining a backlog.
_PAGE_ROWS = 500
#: Pending KPI snapshots kept while disconnected; one per asset, so this only guards against a
#: caller inventing asset names without bound. Beyond it new assets are dropped (counted).
_MAX_KPI_ASSETS = 10_000
#: Default wait for CONNACK once the TCP/TLS connection is up.
CONNACK_TIMEOUT_SECS = 10.0
#: On shutdown, wait this long for the broker to acknowledge the ``offline`` status.
_GOODBYE_SECS = 3.0
#: PUBACKs are marked in the outbox at most this long after they arrive.
_ACK_FLUSH_SECS = 0.05
#: Safety net for a caller that records events but forgets ``notify()``.
_RESCAN_EVERY_SECS = 5.0
_PRUNE_EVERY_SECS = 3600.0


@dataclass
class _Outage:
    """What has been said in the log about the current outage (one line down, one line back)."""

    since: float | None = None
    announced: bool = False
    said: set[str] = field(default_factory=set)


class MqttLink:
    """The agent's MQTT side: outbox drain, KPI snapshots and the online/offline status.

    Call :meth:`run` as one long-running task; call :meth:`notify` after
    :func:`agent.outbox.record_events` and :meth:`offer_kpis` after each KPI evaluation, both from
    the loop thread. ``stats`` holds counters for the metrics endpoint.
    """

    def __init__(
        self,
        cfg: MqttSection,
        *,
        site: str,
        con: duckdb.DuckDBPyConnection,
        outbox_retention_days: float = 7.0,
        max_inflight: int = 100,
        connack_timeout_secs: float = CONNACK_TIMEOUT_SECS,
        rng: random.Random | None = None,
    ) -> None:
        self._cfg = cfg
        self._site = site
        self._con = con
        self._addr = parse_url(cfg.url)
        self._ssl = ssl_context(cfg) if self._addr.tls else None
        if not self._addr.tls and (cfg.ca_file or cfg.cert_file):
            log.warning("mqtt.ca_file/cert_file are ignored for %s (use mqtts:// for TLS)", cfg.url)
        self._check_password()
        self._retention_days = outbox_retention_days
        self._max_inflight = max_inflight
        self._connack_timeout = connack_timeout_secs
        self._rng = rng or random.Random()
        self._prefix = cfg.topic_prefix.rstrip("/")
        self._status_topic = f"{self._prefix}/{sanitise(site)}/status"
        self._client_id = cfg.client_id or f"kilnwatch-{sanitise(site)}"
        self._protocol: Protocol = "3.1.1" if cfg.protocol == "3.1.1" else "5"
        self._throttle = KpiThrottle(cfg.kpi_deadband_pct, cfg.kpi_heartbeat_secs)
        self.stats = MqttStats()

        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._db: duckdb.DuckDBPyConnection | None = None
        self._wake = asyncio.Event()
        self._wire: Wire | None = None
        #: a degraded condition shown in the ``online`` status (:meth:`set_condition`)
        self._condition: str | None = None
        #: storage tier figures shown in the ``online`` status (:meth:`set_storage`)
        self._storage: dict[str, Any] = {}
        # outbox drain state of the current connection
        self._pending: deque[OutboxRow] = deque()
        self._inflight: dict[int, OutboxRow] = {}
        self._fetched_upto = 0
        self._more = True
        self._resend: set[int] = set()
        self._acked: list[int] = []
        self._refused: list[tuple[int, str]] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._status_waiters: dict[int, asyncio.Future[bool]] = {}
        self._kpi_pending: dict[str, str] = {}
        self._outage = _Outage()
        self._ever_connected = False
        self._last_rescan = 0.0
        self._last_prune = 0.0
        ensure_outbox(con)

    # -- public API ---------------------------------------------------------------------------
    def notify(self) -> None:
        """New outbox rows were committed: send them as soon as the link is up."""
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self.notify)
            return
        self._more = True
        if self._db is not None:
            self.stats.backlog = count_undelivered(self._db)
        self._wake.set()

    def offer_kpis(self, asset: str, ts: datetime, kpis: KpiValues) -> None:
        """Offer the latest KPIs of an asset; published when they moved or the heartbeat is due.

        While disconnected only the latest due snapshot per asset is kept (QoS 0, retained).
        """
        if not self._throttle.due(asset, ts, kpis):
            return
        if asset not in self._kpi_pending and len(self._kpi_pending) >= _MAX_KPI_ASSETS:
            self.stats.kpi_dropped += 1
            return
        self._kpi_pending.pop(asset, None)  # re-insert: keep publication order = offer order
        self._kpi_pending[asset] = to_json(kpi_payload(self._site, asset, ts, kpis))
        self._wake.set()

    async def run(self) -> None:
        """Connect, publish, reconnect, forever; on cancellation say ``offline`` and disconnect.

        Cancellation is re-raised after the clean shutdown, as structured concurrency expects.
        """
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._db = self._con.cursor()
        self._db.execute("SET TimeZone = 'UTC'")
        backoff = Backoff(self._cfg.reconnect_min_secs, self._cfg.reconnect_max_secs, rng=self._rng)
        try:
            self._maintain(force=True)
            while True:
                delay = await self._attempt(backoff)
                if delay > 0:
                    await asyncio.sleep(delay)
        finally:
            self._flush_acks()
            self.stats.connected = False
            db, self._db = self._db, None
            db.close()
            self._loop = None

    # -- connection lifecycle -----------------------------------------------------------------
    async def _attempt(self, backoff: Backoff) -> float:
        """One connection: connect, serve until it drops; returns the delay before the next try."""
        assert self._loop is not None
        wire = Wire(
            self._loop,
            client_id=self._client_id,
            protocol=self._protocol,
            keepalive_secs=self._cfg.keepalive_secs,
            username=self._cfg.username,
            password=self._password(),
            ssl_ctx=self._ssl,
            will=(self._status_topic, to_json(self._will())),
            max_inflight=self._max_inflight,
            on_puback=self._on_puback,
            on_lost=self._on_wire_lost,
        )
        try:
            try:
                await wire.open(self._addr.host, self._addr.port, self._connack_timeout)
            except ConnectRefused as exc:
                return self._refused_connect(exc, backoff)
            except ClosedBeforeConnack:
                if self._cfg.protocol == "auto" and self._protocol == "5":
                    return self._fall_back("closed the connection")
                self._network_failure("closed the connection before CONNACK")
                return backoff.next_delay()
            except ssl.SSLError as exc:  # includes certificate verification failures
                self._say("tls", f"MQTT TLS handshake with {self._addr} failed: {ssl_reason(exc)}")
                return backoff.slow()
            except TimeoutError:
                if self._cfg.protocol == "auto" and self._protocol == "5":
                    # some MQTT 3.1.1 brokers (amqtt) stall on a v5 CONNECT instead of refusing it
                    return self._fall_back("did not answer")
                self._network_failure(f"no CONNACK within {self._connack_timeout:g} s")
                return backoff.next_delay()
            except OSError as exc:
                self._network_failure(exc.strerror or str(exc))
                return backoff.next_delay()
            except InvalidArgument as exc:  # the MQTT library's own checks of host or port
                self._say("value", f"MQTT cannot connect to {self._addr}: {exc}")
                return backoff.slow()
            backoff.reset()
            self._wire = wire
            self._on_connected(wire)
            try:
                await self._serve(wire)
            except asyncio.CancelledError:
                await self._goodbye(wire)
                raise
            self._on_disconnected(wire)
            return backoff.next_delay()
        finally:
            self._wire = None
            wire.teardown()
            self._end_connection()

    def _fall_back(self, what: str) -> float:
        log.info("MQTT broker %s %s for MQTT 5; using MQTT 3.1.1", self._addr, what)
        self._protocol = "3.1.1"
        return 0.0

    def _refused_connect(self, refused: ConnectRefused, backoff: Backoff) -> float:
        code = refused.code
        if code == RC_UNSUPPORTED_PROTOCOL and self._cfg.protocol == "auto" and self._protocol == "5":
            return self._fall_back("refused protocol version 5")
        if code in (RC_BAD_CREDENTIALS, RC_NOT_AUTHORIZED):
            detail = (
                "bad user name or password" if code == RC_BAD_CREDENTIALS else "check user name and password"
            )
            self._say("auth", f"MQTT broker {self._addr} refused connection: not authorised ({detail})")
        else:
            self._say(f"refused:{code}", f"MQTT broker {self._addr} refused connection: {refused.reason}")
        return backoff.slow()

    def _network_failure(self, what: str) -> None:
        """A broker that cannot be reached: one WARNING per outage, details at DEBUG."""
        outage = self._outage
        if outage.since is None:
            outage.since = time.monotonic()
        if outage.announced:
            log.debug("MQTT broker %s still unreachable: %s", self._addr, what)
            return
        outage.announced = True
        log.warning(
            "MQTT broker %s unreachable (%s); %d alert(s) wait in the outbox",
            self._addr,
            what,
            self.stats.backlog,
        )

    def _say(self, key: str, message: str) -> None:
        """An actionable refusal (credentials, TLS): logged once until the link recovers."""
        outage = self._outage
        if outage.since is None:
            outage.since = time.monotonic()
        if key in outage.said:
            log.debug("%s", message)
            return
        outage.said.add(key)
        outage.announced = True
        log.error("%s", message)

    def _on_connected(self, wire: Wire) -> None:
        outage = self._outage
        if self._ever_connected:
            self.stats.reconnects += 1
        if outage.since is not None and outage.announced:
            log.warning(
                "MQTT connection to %s restored after %.0f s; %d alert(s) to deliver",
                self._addr,
                time.monotonic() - outage.since,
                self.stats.backlog,
            )
        else:
            log.info("MQTT connected to %s (MQTT %s)", self._addr, wire.protocol)
        self._outage = _Outage()
        self._ever_connected = True
        self.stats.connected = True
        self._fetched_upto = 0
        self._more = True
        wire.publish(self._status_topic, to_json(self._status("online")), qos=1, retain=True)

    def _on_disconnected(self, wire: Wire) -> None:
        self.stats.connected = False
        self._outage = _Outage(since=time.monotonic(), announced=True)
        log.warning(
            "MQTT connection to %s lost (%s); alerts stay in the outbox until it returns",
            self._addr,
            wire.lost_reason or "closed",
        )

    def _on_wire_lost(self) -> None:
        for fut in self._status_waiters.values():
            if not fut.done():
                fut.set_result(False)
        self._wake.set()

    def _end_connection(self) -> None:
        """Whatever awaited PUBACK is sent again, first, on the next connection."""
        self.stats.connected = False
        self._flush_acks()
        self._resend.update(row.seq for row in self._inflight.values())
        self._inflight.clear()
        self._pending.clear()
        self._status_waiters.clear()
        self._fetched_upto = 0
        self._more = True
        if self._db is not None:
            self.stats.backlog = count_undelivered(self._db)

    async def _serve(self, wire: Wire) -> None:
        while not wire.lost:
            self._wake.clear()
            self._maintain()
            self._pump(wire)
            if wire.lost:
                break
            await self._wake_or_timeout(_RESCAN_EVERY_SECS)

    async def _wake_or_timeout(self, secs: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(secs):
                await self._wake.wait()

    async def _goodbye(self, wire: Wire) -> None:
        """Clean shutdown: retained ``offline`` status acknowledged, then DISCONNECT (no last will)."""
        if wire.lost:
            return
        assert self._loop is not None
        try:
            async with asyncio.timeout(_GOODBYE_SECS):
                mid = wire.publish(
                    self._status_topic, to_json(self._status("offline", reason="shutdown")), 1, True
                )
                fut: asyncio.Future[bool] = self._loop.create_future()
                self._status_waiters[mid] = fut
                await fut
                await wire.disconnect()
        except TimeoutError:
            log.warning("MQTT broker %s did not acknowledge the offline status in time", self._addr)
        self.stats.connected = False
        log.info("MQTT disconnected from %s", self._addr)

    # -- sending ------------------------------------------------------------------------------
    def _pump(self, wire: Wire) -> None:
        """Fill the in-flight window from the outbox (in seq order), then send pending KPIs."""
        assert self._db is not None
        while len(self._inflight) < self._max_inflight and not wire.lost:
            if not self._pending:
                if not self._more:
                    break
                rows = fetch_undelivered(self._db, after_seq=self._fetched_upto, limit=_PAGE_ROWS)
                self._more = len(rows) == _PAGE_ROWS
                if not rows:
                    break
                self._pending.extend(rows)
                self._fetched_upto = rows[-1].seq
            row = self._pending.popleft()
            mid = wire.publish(f"{self._prefix}/{row.topic}", row.payload, row.qos, False)
            self._inflight[mid] = row
            if row.seq in self._resend:
                self._resend.discard(row.seq)
                self.stats.retried += 1
        if self._kpi_pending and not wire.lost:
            pending, self._kpi_pending = self._kpi_pending, {}
            for asset, payload in pending.items():
                wire.publish(f"{self._prefix}/{sanitise(self._site)}/{sanitise(asset)}/kpi", payload, 0, True)
            self.stats.kpi_published += len(pending)
            self.stats.published += len(pending)

    def _on_puback(self, mid: int, refusal: str | None) -> None:
        """The broker acknowledged message ``mid``; ``refusal`` is its reason when it refused it."""
        row = self._inflight.pop(mid, None)
        if row is None:
            fut = self._status_waiters.pop(mid, None)
            if fut is not None and not fut.done():
                fut.set_result(refusal is None)
            return
        if refusal is not None:
            self._refused.append((row.seq, refusal))
        else:
            self._acked.append(row.seq)
        if self._flush_handle is None and self._loop is not None:
            # PUBACKs are persisted in batches: one commit per window instead of one per message.
            # A crash in between only means those messages are sent again (at-least-once).
            self._flush_handle = self._loop.call_later(_ACK_FLUSH_SECS, self._flush_acks)
        self._wake.set()

    def _flush_acks(self) -> None:
        """Mark acknowledged rows delivered: one UPDATE per batch of PUBACKs."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._db is None or not (self._acked or self._refused):
            return
        acked, refused = self._acked, self._refused
        try:
            mark_delivered(self._db, acked)
            for seq, why in refused:
                mark_delivered(self._db, [seq], result=why)
        except duckdb.Error as exc:  # disk full: keep the acks and mark them on a later flush
            log.debug("outbox: cannot mark %d message(s) delivered yet: %s", len(acked) + len(refused), exc)
            return
        self._acked, self._refused = [], []
        if refused:
            log.warning(
                "MQTT broker %s refused %d alert message(s) (%s); they will not be retried",
                self._addr,
                len(refused),
                refused[0][1],
            )
        n = len(acked) + len(refused)
        self.stats.alerts_delivered += len(acked)
        self.stats.alerts_rejected += len(refused)
        self.stats.published += len(acked)
        self.stats.backlog = max(0, self.stats.backlog - n)
        if not self._more and not self._pending and not self._inflight:
            self.stats.backlog = 0

    def _maintain(self, *, force: bool = False) -> None:
        """Periodic duties: rescan the outbox (missed notify), prune old delivered rows."""
        assert self._db is not None
        now = time.monotonic()
        if force or now - self._last_rescan >= _RESCAN_EVERY_SECS:
            self._last_rescan = now
            self._more = True
            if force:
                self.stats.backlog = count_undelivered(self._db)
        if force or now - self._last_prune >= _PRUNE_EVERY_SECS:
            self._last_prune = now
            try:
                n = prune_delivered(self._db, older_than_days=self._retention_days)
            except duckdb.Error as exc:  # disk full: prune next time
                log.debug("outbox: prune failed: %s", exc)
                n = 0
            if n:
                log.info("outbox: pruned %d delivered message(s) older than %g days", n, self._retention_days)

    # -- helpers ------------------------------------------------------------------------------
    def set_condition(self, reason: str | None) -> None:
        """A degraded condition of the agent (e.g. storage failing) for the retained ``status``; None =
        healthy again. Published at once when connected, and with every later ``online``."""
        if reason == self._condition:
            return
        self._condition = reason
        if self._wire is not None and self.stats.connected:
            self._wire.publish(self._status_topic, to_json(self._status("online")), qos=1, retain=True)

    def set_storage(self, info: dict[str, Any]) -> None:
        """The storage tiers' figures (archive days moved and deleted for the disk budget, sizes) for
        the ``online`` status (docs/storage.md); published at once when connected."""
        if info == self._storage:
            return
        self._storage = dict(info)
        if self._wire is not None and self.stats.connected:
            self._wire.publish(self._status_topic, to_json(self._status("online")), qos=1, retain=True)

    def _status(self, state: Literal["online", "offline"], *, reason: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"state": state, "site": self._site, "ts": iso_utc(datetime.now(UTC))}
        if state == "online" and self._storage:
            out["storage"] = self._storage
        if reason is not None:
            out["reason"] = reason
        elif state == "online" and self._condition is not None:
            out["reason"] = self._condition
        if state == "online":
            out["client_id"] = self._client_id
        return out

    def _will(self) -> dict[str, Any]:
        """The last will: published by the broker when the agent vanishes without DISCONNECT."""
        return {
            "state": "offline",
            "site": self._site,
            "reason": "connection lost",
            "online_since": iso_utc(datetime.now(UTC)),
        }

    def _check_password(self) -> None:
        cfg = self._cfg
        try:
            pw = cfg.password()
        except OSError as exc:
            raise MqttConfigError(f"mqtt.password_file: cannot read ({exc.strerror})") from None
        if cfg.username and pw is None and cfg.password_env:
            log.warning("mqtt.password_env: %s is not set; connecting without a password", cfg.password_env)

    def _password(self) -> str | None:
        """Read at each attempt so that a rotated secret is picked up; never logged."""
        try:
            return self._cfg.password()
        except OSError:
            return None
