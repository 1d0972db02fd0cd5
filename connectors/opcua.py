"""OPC UA connector: subscriptions or batched reads, status mapping, namespace-safe reconnection.

Two modes (``[[sources]] mode``):

* ``subscribe`` — one subscription with a monitored item per tag (sampling and publishing interval
  = ``poll_interval_ms``, queue size 1). Notifications are consumed in asyncua's iterator mode
  and yielded once per interval as one frame with a row per tag: a *change* stamped with its
  source timestamp, an unchanged value held (sample-and-hold) and stamped with the interval time.
  A value that does not change is still current while the subscription is alive, and holding it
  gives storage and the rule windows the same regular series as a polled source (a constant lab
  NCV must not look stale). Tags that cannot be monitored are reported ``bad`` every interval.
* ``poll`` — one batched Read of every tag's DataValue per interval.

Reads and monitored-item creation are chunked by the server's OperationLimits
(``MaxNodesPerRead``, ``MaxMonitoredItemsPerCall``) when it advertises them.

Node ids may name their namespace by URI (``nsu=urn:plant;s=Kiln1.Feed``). URIs are resolved to
namespace indexes each time a session is opened, because a restarted server may number its
namespaces differently. This is also why reconnection is done here rather than by asyncua's
connection supervisor (``auto_reconnect``): the supervisor re-creates monitored items with the
node ids of the old session. The supervisor still runs in detect-only mode (its health probe
ends a dead session); the connector then yields ``comm_error`` frames, logs one line, and opens a
fresh session with jittered, capped exponential backoff — one loop, not two. asyncua's own
client-side log messages (a failed publish when the server goes away, ...) are shown only when
this module logs at DEBUG (``kilnwatch -vv``).

Status codes map to qualities like this (the sample keeps the server's source timestamp, or the
server timestamp, or the receive time, in that order of preference):

============================================================  ===========  =========
OPC UA status                                                 quality      value
============================================================  ===========  =========
Good*                                                         good         kept
Uncertain_LastUsableValue, Uncertain_NoCommunicationLast...   stale        kept
any other Uncertain* (substitute, initial, sensor, EU, ...)   bad          kept
Bad_NoCommunication, Bad_CommunicationError, Bad_NotConnected,
Bad_ServerNotConnected, Bad_WaitingForInitialData, Bad_Timeout,
Bad_ConnectionClosed                                          comm_error   null
any other Bad*                                                bad          null
============================================================  ===========  =========

A numeric or boolean value is converted to float; anything else (strings, arrays) is ``bad``.
``scale``/``offset``/``min``/``max`` apply as for Modbus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import polars as pl
from asyncua import ua
from asyncua.client.client import Client
from asyncua.client.ua_client import UaClientState
from asyncua.common.subscription import DataChangeEvent, OverflowPolicy, StatusChangeEvent, Subscription
from asyncua.crypto import security_policies
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaError, UaStatusCodeError, UaStringParsingError
from numpy.typing import NDArray

from common.backoff import Backoff
from common.values import to_utc
from connectors import (
    ConnectorStats,
    PollTicker,
    SourceHealth,
    apply_scaling,
    range_arrays,
    sleep_until,
)
from connectors.base import SAMPLE_SCHEMA, ConnectError, Quality, now_utc, sample_frame
from connectors.opcua_config import OpcuaSource, OpcuaTag

log = logging.getLogger(__name__)

#: asyncua's client-side loggers. Their per-request messages (a publish request failing when the
#: server goes away, a close on a dead channel, ...) are shown only when this module logs at DEBUG;
#: otherwise the connector reports each state change itself, once.
_LIBRARY_LOGGERS: Final = (
    "asyncua.client.client",
    "asyncua.client.ua_client.UASocketProtocol",
    "asyncua.client.ua_client.UaClient",
    "asyncua.client.ua_session",
    "asyncua.client.ua_session.UaSession",
    "asyncua.common.subscription",
)


class _LibraryLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return log.isEnabledFor(logging.DEBUG)


def _quiet_library_logs() -> None:
    for name in _LIBRARY_LOGGERS:
        lib = logging.getLogger(name)
        if not any(isinstance(f, _LibraryLogFilter) for f in lib.filters):
            lib.addFilter(_LibraryLogFilter())


_quiet_library_logs()

_COMM_ERROR_CODES: Final = frozenset(
    {
        StatusCodes.BadNoCommunication,
        StatusCodes.BadCommunicationError,
        StatusCodes.BadNotConnected,
        StatusCodes.BadServerNotConnected,
        StatusCodes.BadWaitingForInitialData,
        StatusCodes.BadTimeout,
        StatusCodes.BadConnectionClosed,
    }
)
_STALE_CODES: Final = frozenset(
    {StatusCodes.UncertainLastUsableValue, StatusCodes.UncertainNoCommunicationLastUsableValue}
)
#: Exceptions that mean "this session is unusable" at the library boundary.
_SESSION_ERRORS: Final = (OSError, TimeoutError, ConnectionError, UaError, ValueError)
#: Session timeout asked of the server: a vanished agent's session is cleaned up within a minute.
SESSION_TIMEOUT_MS: Final = 60_000


def quality_of_status(code: int) -> Quality:
    """The sample quality for an OPC UA status code (table in the module docstring)."""
    severity = (code >> 30) & 0b11
    if severity == 0:
        return Quality.GOOD
    sub = code & 0xFFFF0000
    if severity == 1:
        return Quality.STALE if sub in _STALE_CODES else Quality.BAD
    return Quality.COMM_ERROR if sub in _COMM_ERROR_CODES else Quality.BAD


def datavalue_sample(dv: ua.DataValue, received: datetime) -> tuple[float, str, datetime]:
    """``(raw value, quality, timestamp)`` of one DataValue (before scaling).

    The value is NaN when the status is Bad or the value is not a number/boolean. This is the
    reference for :func:`decode_datavalues`, which does the same for many values at once.
    """
    code = dv.StatusCode.value if dv.StatusCode is not None else 0
    quality = quality_of_status(code)
    ts = dv.SourceTimestamp or dv.ServerTimestamp or received
    value = dv.Value.Value if dv.Value is not None else None
    if quality in (Quality.BAD, Quality.COMM_ERROR) and code >> 31:
        return float("nan"), quality.value, to_utc(ts)
    if isinstance(value, bool | int | float):
        return float(value), quality.value, to_utc(ts)
    return float("nan"), Quality.BAD.value, to_utc(ts)


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_STALE_ARRAY: Final = np.array(sorted(_STALE_CODES), dtype=np.uint32)
_COMM_ERROR_ARRAY: Final = np.array(sorted(_COMM_ERROR_CODES), dtype=np.uint32)


def decode_datavalues(
    dvs: Sequence[ua.DataValue], received: datetime
) -> tuple[NDArray[np.float64], NDArray[np.object_], NDArray[np.int64]]:
    """Raw values, qualities and timestamps (µs since the epoch, UTC) of many DataValues.

    Same result as :func:`datavalue_sample` per value, but only attribute access happens per
    value in Python; the status mapping is vectorised, and a timestamp shared by many values
    (one PLC scan) is converted once.
    """
    codes: list[int] = []
    raw: list[float] = []
    stamps: list[int] = []
    cache: dict[datetime, int] = {}
    nan = float("nan")
    for dv in dvs:
        status = dv.StatusCode
        codes.append(status.value if status is not None else 0)
        variant = dv.Value
        v = variant.Value if variant is not None else None
        if type(v) is float:
            raw.append(v)
        elif isinstance(v, bool | int | float):
            raw.append(float(v))
        else:
            raw.append(nan)
        ts = dv.SourceTimestamp or dv.ServerTimestamp or received
        us = cache.get(ts)
        if us is None:
            us = cache[ts] = (to_utc(ts) - _EPOCH) // _MICROSECOND
        stamps.append(us)
    code = np.array(codes, dtype=np.uint32)
    values = np.array(raw, dtype=np.float64)
    severity = code >> 30
    sub = code & np.uint32(0xFFFF0000)
    quality = np.full(len(code), Quality.GOOD.value, dtype=object)
    uncertain = severity == 1
    quality[uncertain] = Quality.BAD.value
    quality[uncertain & np.isin(sub, _STALE_ARRAY)] = Quality.STALE.value
    bad = severity >= 2
    quality[bad] = Quality.BAD.value
    quality[bad & np.isin(sub, _COMM_ERROR_ARRAY)] = Quality.COMM_ERROR.value
    values[bad] = np.nan
    quality[~bad & np.isnan(values)] = Quality.BAD.value  # not a number
    return values, quality, np.array(stamps, dtype=np.int64)


# ---------------------------------------------------------------------- node ids
@dataclass(frozen=True, slots=True)
class NodeRef:
    """A configured node id, parsed once; ``nsu=`` forms are resolved per session."""

    text: str
    identifier: Any  # int, str, bytes or UUID; the encoding is chosen again per namespace index
    namespace_index: int
    namespace_uri: str | None

    def resolve(self, namespaces: Sequence[str]) -> ua.NodeId | None:
        """The node id for a session with this namespace array (None: URI unknown there)."""
        if self.namespace_uri is None:
            return ua.NodeId(self.identifier, ua.Int16(self.namespace_index))
        try:
            index = list(namespaces).index(self.namespace_uri)
        except ValueError:
            return None
        return ua.NodeId(self.identifier, ua.Int16(index))


def parse_node_id(text: str) -> NodeRef:
    """Parse ``ns=2;s=Name``, ``nsu=URI;s=Name``, ``i=85``, ``g=...``, ``b=...``."""
    try:
        parsed = ua.NodeId.from_string(text)
    except (ValueError, UaStringParsingError) as exc:
        raise ValueError(f"node id {text!r}: {exc}") from None
    uri = getattr(parsed, "NamespaceUri", None) or None
    return NodeRef(text, parsed.Identifier, parsed.NamespaceIndex, uri)


def portable_node_id(node_id: ua.NodeId, namespaces: Sequence[str]) -> str:
    """``nsu=URI;...`` form of a node id (stable across server restarts); ``ns=0`` ids stay short."""
    text = node_id.to_string()
    if node_id.NamespaceIndex == 0 or node_id.NamespaceIndex >= len(namespaces):
        return text
    _, _, rest = text.partition(";")
    return f"nsu={namespaces[node_id.NamespaceIndex]};{rest}"


def _chunks(n: int, size: int) -> Iterator[range]:
    step = size if size > 0 else max(n, 1)
    for start in range(0, n, step):
        yield range(start, min(n, start + step))


# ---------------------------------------------------------------------- client set-up
def _certificate_uri(cert_file: str) -> str | None:
    """The application URI in a certificate's subjectAltName (the client must announce it)."""
    from cryptography import x509

    data = open(cert_file, "rb").read()  # noqa: SIM115 - small file, read once per session
    cert = (
        x509.load_pem_x509_certificate(data)
        if b"-----BEGIN" in data
        else x509.load_der_x509_certificate(data)
    )
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


async def new_client(
    endpoint: str,
    *,
    timeout_secs: float,
    security: str = "None",
    cert_file: str | None = None,
    key_file: str | None = None,
    server_cert_file: str | None = None,
    username: str | None = None,
    password: str | None = None,
) -> Client:
    """A configured, not yet connected asyncua client (security and identity applied)."""
    client = Client(endpoint, timeout=timeout_secs)
    client.name = client.description = "kilnwatch"
    client.application_uri = "urn:kilnwatch:client"
    client.session_timeout = SESSION_TIMEOUT_MS
    if username:
        client.set_user(username)
        if password is not None:
            client.set_password(password)
    if security != "None":
        if not (cert_file and key_file):
            raise ConnectError(f"security {security} needs cert_file and key_file")
        mode = (
            ua.MessageSecurityMode.SignAndEncrypt
            if security.endswith("SignAndEncrypt")
            else ua.MessageSecurityMode.Sign
        )
        try:
            uri = _certificate_uri(cert_file)
            if uri:
                client.application_uri = uri
            await client.set_security(
                security_policies.SecurityPolicyBasic256Sha256,
                certificate=cert_file,
                private_key=key_file,
                server_certificate=server_cert_file,
                mode=mode,
            )
        except _SESSION_ERRORS as exc:
            raise ConnectError(f"security set-up failed: {type(exc).__name__}: {exc}") from None
    return client


async def close_client(client: Client, timeout_secs: float) -> None:
    """Close a client: politely (CloseSession) when its session is alive; never raises."""
    with contextlib.suppress(*_SESSION_ERRORS):
        async with asyncio.timeout(timeout_secs):
            await client.disconnect()
    client.disconnect_socket()  # when the timeout cut the polite path short


async def _operation_limits(client: Client) -> tuple[int, int]:
    """``(MaxNodesPerRead, MaxMonitoredItemsPerCall)``; 0 when the server does not say."""
    params = ua.ReadParameters()
    for oid in (
        ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
        ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall,
    ):
        params.NodesToRead.append(
            ua.ReadValueId(NodeId=ua.NodeId(ua.Int32(oid)), AttributeId=AttributeIds.Value)
        )
    try:
        results = await client.uaclient.read(params)
    except UaStatusCodeError:
        return 0, 0
    out: list[int] = []
    for dv in results:
        good = dv.StatusCode is None or dv.StatusCode.is_good()
        v = dv.Value.Value if dv.Value is not None and good else 0
        out.append(int(v) if isinstance(v, int) and v > 0 else 0)
    return out[0], out[1]


# ---------------------------------------------------------------------- one session
class _Session:
    """One connected session: resolved node ids, read batches, the subscription."""

    def __init__(self, client: Client, connector: OpcuaConnector) -> None:
        self.client = client
        self.c = connector
        self.node_ids: list[ua.NodeId | None] = []
        self.unresolved: NDArray[np.intp] = np.empty(0, dtype=np.intp)
        self.unresolved_status: list[int] = []
        self.read_batches: list[tuple[ua.ReadParameters, NDArray[np.intp]]] = []
        self.sub: Subscription | None = None
        self.pending: list[tuple[int, ua.DataValue]] = []
        self.held: dict[int, ua.DataValue] = {}
        self.lost: str | None = None

    async def open(self, mode: str) -> None:
        c = self.c
        namespaces = await self.client.get_namespace_array()
        max_read, max_items = await _operation_limits(self.client)
        c.stats.requests += 2
        self.node_ids = [ref.resolve(namespaces) if ref is not None else None for ref in c.refs]
        bad = [i for i, n in enumerate(self.node_ids) if n is None]
        if bad:
            missing = sorted({ref.namespace_uri for i in bad if (ref := c.refs[i]) and ref.namespace_uri})
            log.warning(
                "source %s: %d tag(s) have an invalid node id or a namespace the server does not have%s",
                c.name,
                len(bad),
                f" ({', '.join(missing)})" if missing else "",
            )
        self.unresolved = np.array(bad, dtype=np.intp)
        self.unresolved_status = [StatusCodes.BadNodeIdUnknown] * len(bad)
        resolved = np.array([i for i, n in enumerate(self.node_ids) if n is not None], dtype=np.intp)
        for chunk in _chunks(len(resolved), max_read):
            rows = resolved[chunk.start : chunk.stop]
            params = ua.ReadParameters(TimestampsToReturn=ua.TimestampsToReturn.Both)
            params.NodesToRead = [
                ua.ReadValueId(NodeId=self.node_ids[i], AttributeId=AttributeIds.Value) for i in rows
            ]
            self.read_batches.append((params, rows))
        if mode == "subscribe":
            await self._subscribe(resolved, max_items)

    async def _subscribe(self, rows: NDArray[np.intp], max_items: int) -> None:
        c = self.c
        interval_ms = float(c.source.poll_interval_ms)
        # The iterator queue holds one entry per notification; room for several publish cycles of
        # every tag, so a consumer delayed by one slow write never loses data. Beyond that the
        # oldest notifications are dropped (the newer values of the same tags follow them).
        self.sub = await self.client.create_subscription(
            interval_ms,
            handler=None,
            queue_maxsize=max(1000, 4 * len(c.tags)),
            overflow=OverflowPolicy.DROP_OLDEST,
        )
        c.stats.requests += 1
        failed: list[int] = []
        failed_status: list[int] = []
        for chunk in _chunks(len(rows), max_items):
            part = rows[chunk.start : chunk.stop]
            requests = [self._item_request(int(i), interval_ms) for i in part]
            c.stats.requests += 1
            results = await self.sub.create_monitored_items(requests)
            for i, res in zip(part, results, strict=True):
                if isinstance(res, ua.StatusCode):
                    failed.append(int(i))
                    failed_status.append(res.value)
        if failed:
            c.stats.errors += len(failed)
            log.warning(
                "source %s: %d tag(s) cannot be monitored, e.g. %s (%s)",
                c.name,
                len(failed),
                c.tags[failed[0]].node_id,
                ua.StatusCode(ua.UInt32(failed_status[0])).name,
            )
            self.unresolved = np.concatenate([self.unresolved, np.array(failed, dtype=np.intp)])
            self.unresolved_status += failed_status

    def _item_request(self, index: int, interval_ms: float) -> ua.MonitoredItemCreateRequest:
        params = ua.MonitoringParameters(
            ClientHandle=index + 1, SamplingInterval=interval_ms, QueueSize=1, DiscardOldest=True
        )
        return ua.MonitoredItemCreateRequest(
            ItemToMonitor=ua.ReadValueId(NodeId=self.node_ids[index], AttributeId=AttributeIds.Value),
            MonitoringMode=ua.MonitoringMode.Reporting,
            RequestedParameters=params,
        )

    def check_alive(self) -> None:
        if self.lost is None and self.client.uaclient.state is not UaClientState.CONNECTED:
            self.lost = "connection lost"

    async def collect_until(self, deadline: float) -> None:
        """Consume subscription notifications until ``deadline`` (event-loop time) or a loss."""
        if self.sub is None:
            return
        try:
            async with asyncio.timeout_at(deadline):
                async for ev in self.sub:
                    if isinstance(ev, DataChangeEvent):
                        handle = ev.data.subscription_data.client_handle
                        if handle is not None:
                            self.pending.append((handle - 1, ev.data.monitored_item.Value))
                    elif isinstance(ev, StatusChangeEvent) and not ev.notification.Status.is_good():
                        self.lost = f"subscription status {ev.notification.Status.name}"
                        return
                self.lost = "subscription closed"
        except TimeoutError:
            pass

    async def read(self) -> list[tuple[int, ua.DataValue]]:
        """One batched read of every resolved tag, chunked by MaxNodesPerRead."""
        out: list[tuple[int, ua.DataValue]] = []
        for params, rows in self.read_batches:
            self.c.stats.requests += 1
            results = await self.client.uaclient.read(params)
            out.extend(zip(rows.tolist(), results, strict=True))
        return out

    def take_pending(self) -> list[tuple[int, ua.DataValue]]:
        out, self.pending = self.pending, []
        return out

    def hold(self, changed: Sequence[tuple[int, ua.DataValue]]) -> list[tuple[int, ua.DataValue]]:
        """Remember the latest value per tag; return the held values of tags that did not change."""
        for i, dv in changed:
            self.held[i] = dv
        fresh = {i for i, _ in changed}
        return [(i, dv) for i, dv in self.held.items() if i not in fresh]


# ---------------------------------------------------------------------- connector
class OpcuaConnector:
    """One OPC UA server (``[[sources]] type = "opcua"``)."""

    def __init__(self, source: OpcuaSource) -> None:
        self.name = source.name
        self.source = source
        self.stats = ConnectorStats()
        self.tags: list[OpcuaTag] = list(source.tags)
        self._names = np.array([t.name for t in self.tags], dtype=object)
        self.refs: list[NodeRef | None] = []
        for tag in self.tags:
            try:
                self.refs.append(parse_node_id(tag.node_id))
            except ValueError:
                self.refs.append(None)
        self._scale, self._offset, self._lo, self._hi = range_arrays(self.tags)
        self._interval = source.poll_interval_ms / 1000
        self._timeout = source.timeout_ms / 1000
        self._backoff = Backoff(source.reconnect_min_ms / 1000, source.reconnect_max_ms / 1000)
        self._next_connect_at = 0.0
        self._health = SourceHealth(source.name, log, self.stats)

    # ------------------------------------------------------------------ public API
    async def stream(self) -> AsyncGenerator[pl.DataFrame, None]:
        """A sample frame per interval until cancelled (see :class:`connectors.base.Connector`)."""
        loop = asyncio.get_running_loop()
        ticker = PollTicker(self._interval, clock=loop.time)
        session: _Session | None = None
        try:
            while True:
                if session is None and loop.time() >= self._next_connect_at:
                    session = await self._open(self.source.mode)
                deadline = ticker.next_tick()
                if session is not None and session.lost is None:
                    await session.collect_until(deadline)
                await sleep_until(deadline, loop.time)
                self.stats.skipped_polls = ticker.skipped
                t0 = time.perf_counter()
                frame, session = await self._poll(session)
                self.stats.last_poll_secs = time.perf_counter() - t0
                if frame is not None:
                    self.stats.samples += frame.height
                    yield frame
        finally:
            if session is not None:
                await close_client(session.client, self._timeout)

    async def read_once(self) -> pl.DataFrame:
        """Connect, read every tag once (a batched read, whatever the mode), disconnect."""
        t0 = time.perf_counter()
        session = await self._open("poll")
        try:
            frame, session = await self._poll(session, force_read=True)
            assert frame is not None
            self.stats.samples += frame.height
            self.stats.last_poll_secs = time.perf_counter() - t0
            return frame
        finally:
            if session is not None:
                await close_client(session.client, self._timeout)

    # ------------------------------------------------------------------ internals
    async def _open(self, mode: str) -> _Session | None:
        src = self.source
        client: Client | None = None
        try:
            client = await new_client(
                src.endpoint,
                timeout_secs=self._timeout,
                security=src.security,
                cert_file=src.cert_file,
                key_file=src.key_file,
                server_cert_file=src.server_cert_file,
                username=src.username,
                password=src.password(),
            )
            session = _Session(client, self)
            async with asyncio.timeout(max(5.0, 5 * self._timeout)):
                await client.connect()
                await session.open(mode)
        except (*_SESSION_ERRORS, ConnectError) as exc:
            self.stats.errors += 1
            self._next_connect_at = asyncio.get_running_loop().time() + self._backoff.next_delay()
            self._health.down(f"cannot open a session with {src.endpoint}: {_describe(exc)}")
            if client is not None:
                await close_client(client, self._timeout)
            return None
        self._backoff.reset()
        self._health.up(f"{src.endpoint} ({mode}, security {src.security})")
        return session

    async def _poll(
        self, session: _Session | None, *, force_read: bool = False
    ) -> tuple[pl.DataFrame | None, _Session | None]:
        """The frame of this interval, and the session to keep (None once it is lost)."""
        ts = now_utc()
        if session is not None:
            session.check_alive()
            if session.lost is None and (force_read or self.source.mode == "poll"):
                try:
                    async with asyncio.timeout(max(2 * self._timeout, self._timeout + 1)):
                        rows = await session.read()
                except (*_SESSION_ERRORS, ConnectError) as exc:
                    self.stats.errors += 1
                    session.lost = _describe(exc)
                else:
                    return self._frame(ts, rows, session), session
            elif session.lost is None:
                changed = session.take_pending()
                held = session.hold(changed)
                return self._frame(ts, changed, session, held=held, changes_only=True), session
        if session is not None:
            reason = session.lost or "connection lost"
            await close_client(session.client, self._timeout)
            self._next_connect_at = asyncio.get_running_loop().time() + self._backoff.next_delay()
            self._health.down(reason)
        n = len(self.tags)
        return sample_frame(ts, list(self._names), np.full(n, np.nan), Quality.COMM_ERROR), None

    def _frame(
        self,
        ts: datetime,
        rows: Sequence[tuple[int, ua.DataValue]],
        session: _Session,
        *,
        held: Sequence[tuple[int, ua.DataValue]] = (),
        changes_only: bool = False,
    ) -> pl.DataFrame | None:
        """Frame of the DataValues read (or notified, plus ``held`` ones) and the tags that cannot
        be read (bad). Held values are stamped with ``ts``: they are observations of this interval."""
        n_bad = len(session.unresolved)
        if changes_only and not rows and not held and not n_bad:
            return None
        rows = [*rows, *held]
        raw, quality, stamps = decode_datavalues([dv for _, dv in rows], ts)
        if held:
            stamps[len(rows) - len(held) :] = (ts - _EPOCH) // _MICROSECOND
        idx = np.fromiter((i for i, _ in rows), dtype=np.intp, count=len(rows))
        if n_bad:
            now_us = (ts - _EPOCH) // _MICROSECOND
            idx = np.concatenate([idx, session.unresolved])
            raw = np.concatenate([raw, np.full(n_bad, np.nan)])
            bad_q = [quality_of_status(code).value for code in session.unresolved_status]
            quality = np.concatenate([quality, np.array(bad_q, dtype=object)])
            stamps = np.concatenate([stamps, np.full(n_bad, now_us, dtype=np.int64)])
        values, out_of_range = apply_scaling(
            raw, self._scale[idx], self._offset[idx], self._lo[idx], self._hi[idx]
        )
        quality[out_of_range & ~np.isnan(raw)] = Quality.BAD.value
        frame = sample_frame(ts, self._names[idx].tolist(), values, quality)
        # per-sample source timestamps, built from integers rather than 10k datetime objects
        return frame.with_columns(pl.Series("ts", stamps, dtype=pl.Int64).cast(SAMPLE_SCHEMA["ts"]))


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, UaStatusCodeError):
        with contextlib.suppress(Exception):
            text = ua.StatusCode(ua.UInt32(exc.code)).name
    return text


# ---------------------------------------------------------------------- browsing (probe)
@dataclass(frozen=True, slots=True)
class BrowsedNode:
    """One node found by :func:`browse`."""

    depth: int
    path: str  # browse names from the start node, joined by "/"
    node_id: str  # as the server numbers it now (ns=...)
    portable_id: str  # nsu=URI;... form, stable across server restarts
    node_class: str
    data_type: str
    value: Any
    status: str


class UnknownNodeError(ConnectError):
    """``browse`` was asked to start at a node the server does not have (a wrong ``--node``)."""


async def browse(
    endpoint: str,
    *,
    start: str = "i=85",
    depth: int = 3,
    timeout_secs: float = 4.0,
    max_nodes: int = 5000,
    **security: Any,
) -> list[BrowsedNode]:
    """Walk the address space below ``start`` (default: the Objects folder) for ``kilnwatch probe``.

    Raises :class:`ConnectError` when no session can be opened and :class:`UnknownNodeError` when
    ``start`` does not exist on the server (an empty browse would look like a node without children).
    """
    client = await new_client(endpoint, timeout_secs=timeout_secs, **security)
    try:
        try:
            async with asyncio.timeout(max(5.0, 5 * timeout_secs)):
                await client.connect()
        except _SESSION_ERRORS as exc:
            raise ConnectError(f"cannot open a session with {endpoint}: {_describe(exc)}") from None
        try:
            namespaces = await client.get_namespace_array()
            ref = parse_node_id(start)
            start_id = ref.resolve(namespaces)
            if start_id is None:
                raise UnknownNodeError(
                    f"node {start} does not exist on {endpoint}: its namespace is not there"
                )
            try:
                await client.get_node(start_id).read_node_class()
            except UaStatusCodeError as exc:
                if exc.code != StatusCodes.BadNodeIdUnknown:
                    raise
                raise UnknownNodeError(f"node {start} does not exist on {endpoint}") from None
            # below the Objects folder, the server's own standard nodes (namespace 0: Server,
            # Aliases, ...) are listed but not expanded; point --node at them to look inside
            expand_ns0 = start_id != ua.NodeId(ua.Int32(ObjectIds.ObjectsFolder))
            walker = _Walker(client, namespaces, depth, max_nodes, expand_ns0)
            await walker.walk(client.get_node(start_id), "", 1)
            return walker.out
        except _SESSION_ERRORS as exc:
            raise ConnectError(f"browsing {endpoint} failed: {_describe(exc)}") from None
    finally:
        await close_client(client, timeout_secs)


class _Walker:
    """Depth-limited browse of the address space, collecting :class:`BrowsedNode` rows."""

    def __init__(
        self, client: Client, namespaces: Sequence[str], max_depth: int, max_nodes: int, expand_ns0: bool
    ) -> None:
        self.client = client
        self.namespaces = namespaces
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self.expand_ns0 = expand_ns0
        self.out: list[BrowsedNode] = []

    async def walk(self, node: Any, path: str, level: int) -> None:
        if level > self.max_depth:
            return
        for ref in await node.get_children_descriptions():
            if len(self.out) >= self.max_nodes:
                return
            child = self.client.get_node(ref.NodeId)
            child_path = f"{path}/{ref.BrowseName.Name}" if path else ref.BrowseName.Name
            data_type = status = ""
            value: Any = None
            if ref.NodeClass == ua.NodeClass.Variable:
                try:
                    dv = await child.read_data_value(raise_on_bad_status=False)
                    value = dv.Value.Value if dv.Value is not None else None
                    status = dv.StatusCode.name if dv.StatusCode is not None else "Good"
                    type_id = await child.read_data_type()
                    data_type = (await self.client.get_node(type_id).read_browse_name()).Name
                except UaStatusCodeError as exc:
                    status = _describe(exc)
            self.out.append(
                BrowsedNode(
                    depth=level,
                    path=child_path,
                    node_id=ref.NodeId.to_string(),
                    portable_id=portable_node_id(ref.NodeId, self.namespaces),
                    node_class=ua.NodeClass(ref.NodeClass).name,
                    data_type=data_type,
                    value=value,
                    status=status,
                )
            )
            expandable = ref.NodeClass in (ua.NodeClass.Object, ua.NodeClass.Variable)
            if expandable and (ref.NodeId.NamespaceIndex != 0 or self.expand_ns0):
                await self.walk(child, child_path, level + 1)
