"""The paho-mqtt adapter: one paho client and its socket, driven by the asyncio loop.

This is the only module of the project that imports paho-mqtt (docs/architecture.md, "Import
directions"; tests/common/test_architecture.py keeps it so). It owns paho's callbacks and threads, and it
maps what paho reports onto the project's own terms before anything leaves this module: a failed
CONNACK becomes :class:`~agent.mqtt_policies.ConnectRefused` (reason code and text), a connection
closed before CONNACK :class:`~agent.mqtt_policies.ClosedBeforeConnack`, paho's argument checks
(``ValueError``) :class:`~agent.mqtt_policies.InvalidArgument`, and a PUBACK the refusal text or
``None``. Socket and TLS failures stay the standard library's ``OSError``/``ssl.SSLError``/
``TimeoutError``. The link (:mod:`agent.mqtt`) therefore never sees a paho type, and a paho upgrade
(docs/libraries.md, "paho-mqtt") is checked in one file.

Design notes (docs/architecture.md, "Event loop and threads"; docs/mqtt.md, "Delivery guarantees"):

* No paho network thread. The client is driven from the asyncio loop through paho's external-loop
  API (``loop_read``/``loop_write``/``loop_misc`` on socket readiness), so every callback, and
  therefore every DuckDB call the link makes from one, runs on the loop thread. Only the blocking
  ``connect()`` (TCP connect and TLS handshake) runs in a worker thread.
* One :class:`Wire` per connection attempt, with a clean session: nothing is carried over in paho's
  memory; the link re-reads the outbox after a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.client import ConnectFlags, DisconnectFlags
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.mqtt_policies import (
    RC_UNSPECIFIED,
    ClosedBeforeConnack,
    ConnectRefused,
    InvalidArgument,
    Protocol,
)

#: paho's keepalive/ping bookkeeping runs this often.
_MISC_EVERY_SECS = 1.0

#: ``on_puback(mid, refusal)``: ``refusal`` is ``None`` when the broker accepted the message, else
#: its reason in words (MQTT 5 PUBACK reason >= 0x80).
PubackCallback = Callable[[int, str | None], None]


class Wire:
    """One paho client and its socket, driven by the asyncio loop; used for one connection only."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        client_id: str,
        protocol: Protocol,
        keepalive_secs: int,
        username: str | None,
        password: str | None,
        ssl_ctx: ssl.SSLContext | None,
        will: tuple[str, str],
        max_inflight: int,
        on_puback: PubackCallback,
        on_lost: Callable[[], None],
    ) -> None:
        self._loop = loop
        self._thread = threading.get_ident()
        self._keepalive = keepalive_secs
        self._on_puback = on_puback
        self._on_lost_cb = on_lost
        v5 = protocol == "5"
        try:
            c = paho.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
                clean_session=None if v5 else True,
                reconnect_on_failure=False,
            )
            c.max_inflight_messages_set(max_inflight)
            c.will_set(will[0], will[1], qos=1, retain=True)
            if username:
                c.username_pw_set(username, password)
            if ssl_ctx is not None:
                c.tls_set_context(ssl_ctx)
        except ValueError as exc:  # paho's checks of the will topic, the in-flight window
            raise InvalidArgument(str(exc)) from exc
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_socket_close = self._on_socket_close
        c.on_socket_register_write = self._on_register_write
        c.on_socket_unregister_write = self._on_unregister_write
        self._client = c
        self.protocol = protocol
        self._connack: asyncio.Future[ReasonCode] = loop.create_future()
        #: The connection is gone (after a successful or failed connect); ``lost_reason`` says why.
        self.lost = False
        self.lost_reason = ""
        self._gone = asyncio.Event()
        self._fd: int | None = None
        self._closed = False
        self._misc: asyncio.TimerHandle | None = None

    async def open(self, host: str, port: int, connack_timeout_secs: float) -> None:
        """TCP (+TLS) connect in a worker thread, then wait for a successful CONNACK.

        Raises :class:`ConnectRefused`, :class:`ClosedBeforeConnack`, :class:`InvalidArgument`,
        ``TimeoutError`` (no CONNACK in time), ``ssl.SSLError`` or another ``OSError``.
        """
        fut = self._loop.run_in_executor(
            None, functools.partial(self._client.connect, host, port, self._keepalive)
        )
        try:
            await asyncio.shield(fut)
        except asyncio.CancelledError:
            # the worker thread cannot be interrupted: close its socket once it is done
            fut.add_done_callback(self._connect_abandoned)
            raise
        except ssl.SSLError:  # SSLCertVerificationError is a ValueError too: not an argument check
            raise
        except ValueError as exc:  # paho's own checks of host, port or keepalive
            raise InvalidArgument(str(exc)) from exc
        sock = self._client.socket()
        if sock is None or self._closed or sock.fileno() < 0:
            raise ConnectionError("socket closed during connect")
        self._fd = sock.fileno()
        self._loop.add_reader(self._fd, self._readable)
        if self._client.want_write():
            self._loop.add_writer(self._fd, self._writable)
        self._misc = self._loop.call_later(_MISC_EVERY_SECS, self._tick)
        async with asyncio.timeout(connack_timeout_secs):
            reason = await self._connack
        if reason.is_failure:
            raise ConnectRefused(reason.value, str(reason))

    def publish(self, topic: str, payload: str, qos: int, retain: bool) -> int:
        """Queue one message; returns its message id (the ``mid`` later given to ``on_puback``)."""
        try:
            return self._client.publish(topic, payload, qos=qos, retain=retain).mid
        except ValueError as exc:  # paho's checks of topic, QoS and payload size
            raise InvalidArgument(str(exc)) from exc

    async def disconnect(self) -> None:
        """Send DISCONNECT (the broker then discards the last will) and wait for the socket to close."""
        if self.lost:
            return
        self._client.disconnect()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await self._gone.wait()

    def teardown(self) -> None:
        """Forget the socket: stop watching it and close it (idempotent, loop thread only)."""
        self._closed = True
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None
        self._unwatch()
        sock = self._client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        if not self._connack.done():
            self._connack.set_exception(ClosedBeforeConnack())
            self._connack.exception()  # retrieved: nobody may be waiting any more

    def _connect_abandoned(self, fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled():
            fut.exception()  # retrieved: a failed connect nobody waits for is not an error
        self.teardown()

    # -- socket readiness -> paho -------------------------------------------------------------
    def _readable(self) -> None:
        client = self._client
        while True:
            rc = client.loop_read()
            sock = client.socket()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or sock is None:
                return
            # TLS: decrypted bytes can wait inside the SSL object while the fd is not readable.
            pending = getattr(sock, "pending", None)
            if pending is None or pending() == 0:
                return

    def _writable(self) -> None:
        self._client.loop_write()

    def _tick(self) -> None:
        if self._closed:
            return
        self._client.loop_misc()
        if not self._closed:
            self._misc = self._loop.call_later(_MISC_EVERY_SECS, self._tick)

    def _unwatch(self) -> None:
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
            self._fd = None

    # -- paho callbacks (loop thread, except register_write during connect) ----------------------
    def _on_register_write(self, _c: paho.Client, _u: Any, _sock: Any) -> None:
        if threading.get_ident() != self._thread:
            self._loop.call_soon_threadsafe(self._watch_write)
        else:
            self._watch_write()

    def _watch_write(self) -> None:
        if self._fd is not None and not self._closed:
            self._loop.add_writer(self._fd, self._writable)

    def _on_unregister_write(self, _c: paho.Client, _u: Any, _sock: Any) -> None:
        if self._fd is not None and threading.get_ident() == self._thread:
            self._loop.remove_writer(self._fd)

    def _on_socket_close(self, _c: paho.Client, _u: Any, _sock: Any) -> None:
        if threading.get_ident() == self._thread:
            self._unwatch()

    def _on_connect(
        self, _c: paho.Client, _u: Any, _f: ConnectFlags, reason: ReasonCode, _p: Properties | None
    ) -> None:
        if not self._connack.done():
            self._connack.set_result(reason)

    def _on_disconnect(
        self, _c: paho.Client, _u: Any, _f: DisconnectFlags, reason: ReasonCode, _p: Properties | None
    ) -> None:
        self.lost = True
        if _f.is_disconnect_packet_from_server:
            self.lost_reason = f"broker sent DISCONNECT: {reason}"
        elif reason.value == RC_UNSPECIFIED:  # paho's name for a socket closed or reset
            self.lost_reason = "connection closed"
        else:
            self.lost_reason = str(reason)
        self._gone.set()
        self._closed = True
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None
        if not self._connack.done():
            self._connack.set_exception(ClosedBeforeConnack(str(reason)))
        self._on_lost_cb()

    def _on_publish(self, _c: paho.Client, _u: Any, mid: int, reason: ReasonCode, _p: Properties) -> None:
        self._on_puback(mid, str(reason) if reason.is_failure else None)
