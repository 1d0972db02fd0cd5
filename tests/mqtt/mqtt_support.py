"""Test helpers for the MQTT tests: a real mosquitto, a subscribing client, TLS files, a TCP cut-out.

Nothing here mocks the wire: the broker is Debian's mosquitto on 127.0.0.1, the subscriber is a
plain paho client, and :class:`TcpProxy` is a real TCP relay used to drop or cut a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from agent.broker import find_mosquitto
from rules.alerts import AlertEvent

T0 = dt.datetime(2026, 3, 1, 6, 0, tzinfo=dt.UTC)


def make_event(i: int, state: str = "firing", *, site: str = "plant1", asset: str = "kiln1") -> AlertEvent:
    """Alert episode ``i``; its resolved event keeps the alert_id (docs/mqtt.md)."""
    started = T0 + dt.timedelta(minutes=i)
    ts = started if state == "firing" else started + dt.timedelta(minutes=30)
    return AlertEvent(
        alert_id=f"{site}:{asset}:kiln.specific_heat.high:{i}",
        site=site,
        asset=asset,
        rule="kiln.specific_heat.high",
        severity="warning",
        state=state,  # type: ignore[arg-type]
        # docs/kpis.md §8: specific heat alarm above the 780 kcal/kg default threshold.
        value=790.0 + i if state == "firing" else 765.0,
        threshold=780.0,
        unit="kcal/kg",
        started_at=started,
        ts=ts,
        message=f"Specific heat {790 + i} kcal/kg above 780",
        resolved_at=ts if state == "resolved" else None,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- TLS ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_cert: Path  # a CA that signed nothing we use: trusting it must fail


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o644)


def _ca(name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, name: str, *, server: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [
                    x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
                    if server
                    else x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256()), key


def make_tls_files(directory: Path) -> TlsFiles:
    """A test CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    ca, ca_key = _ca("kilnwatch test CA")
    other, _ = _ca("some other CA")
    server, server_key = _leaf(ca, ca_key, "127.0.0.1", server=True)
    client, client_key = _leaf(ca, ca_key, "kilnwatch-agent", server=False)
    files = TlsFiles(
        ca_cert=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        other_ca_cert=directory / "other-ca.pem",
    )
    for path, cert in (
        (files.ca_cert, ca),
        (files.server_cert, server),
        (files.client_cert, client),
        (files.other_ca_cert, other),
    ):
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        path.chmod(0o644)
    _write_key(files.server_key, server_key)
    _write_key(files.client_key, client_key)
    return files


# -- mosquitto ------------------------------------------------------------------------------------
@dataclass
class Mosquitto:
    """A real mosquitto on 127.0.0.1:``port``; ``stop()``/``start()`` keep the port (outage tests)."""

    workdir: Path
    port: int
    users: dict[str, str] | None = None
    tls: TlsFiles | None = None
    require_certificate: bool = False
    persistence: bool = False
    proc: subprocess.Popen[bytes] | None = None
    exe: str = field(default_factory=lambda: find_mosquitto() or "mosquitto")

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o777)
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if self.users else 'true'}",
            f"persistence {'true' if self.persistence else 'false'}",
            "log_dest stderr",
            "log_type all" if os.environ.get("KILNWATCH_MQTT_DEBUG") else "log_type error",
            "max_queued_messages 100000",
        ]
        if self.persistence:
            lines += [f"persistence_location {self.workdir}/", "autosave_interval 1"]
        if os.geteuid() == 0:
            lines.append("user root")  # files in the test's temp dir stay readable
        if self.users:
            pw = self.workdir / "passwd"
            pw.write_text("")
            for user, password in self.users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(pw), user, password], check=True, capture_output=True
                )
            pw.chmod(0o644)
            lines.append(f"password_file {pw}")
        if self.tls:
            lines += [
                f"cafile {self.tls.ca_cert}",
                f"certfile {self.tls.server_cert}",
                f"keyfile {self.tls.server_key}",
            ]
            if self.require_certificate:
                lines.append("require_certificate true")
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self, timeout: float = 10.0) -> None:
        conf = self._write_config()
        with (self.workdir / "mosquitto.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [self.exe, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited ({self.proc.returncode}):\n{self.log}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto not listening on {self.port}:\n{self.log}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # SIGTERM: mosquitto saves its persistence file first
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- subscriber -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Msg:
    topic: str
    payload: dict[str, Any]
    retain: bool
    qos: int


class Subscriber:
    """A paho client (own network thread) collecting messages; ``wait_for`` is awaited in tests.

    ``persistent=True`` keeps its session (and queued QoS 1 messages) on a broker with persistence
    across a broker restart, the way an operator's SCADA should subscribe.
    """

    def __init__(
        self,
        port: int,
        *,
        topic: str = "kilnwatch/#",
        client_id: str = "test-subscriber",
        persistent: bool = False,
        tls: TlsFiles | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.port = port
        self.topic = topic
        self.messages: list[Msg] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._subscribed = threading.Event()
        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv311,
            clean_session=not persistent,
        )
        c.reconnect_delay_set(1, 1)
        if tls:
            c.tls_set(ca_certs=str(tls.ca_cert), certfile=str(tls.client_cert), keyfile=str(tls.client_key))
        if username:
            c.username_pw_set(username, password)
        c.on_connect = self._on_connect
        c.on_subscribe = lambda *_a: self._subscribed.set()
        c.on_message = self._on_message
        self.client = c

    def _on_connect(self, c: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if not rc.is_failure:
            c.subscribe(self.topic, qos=1)

    def _on_message(self, _c: paho.Client, _u: Any, m: paho.MQTTMessage) -> None:
        try:
            payload = json.loads(m.payload) if m.payload else {}
        except ValueError:
            payload = {"_raw": m.payload.decode(errors="replace")}
        with self._lock:
            self.messages.append(Msg(m.topic, payload, bool(m.retain), m.qos))
        if self._loop is not None and self._event is not None:
            with contextlib.suppress(RuntimeError):  # loop closed after the test
                self._loop.call_soon_threadsafe(self._event.set)

    async def start(self, within: float = 10.0) -> Subscriber:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        await asyncio.to_thread(self._subscribed.wait, within)
        assert self._subscribed.is_set(), "subscriber got no SUBACK"
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def snapshot(self, topic_part: str = "") -> list[Msg]:
        with self._lock:
            return [m for m in self.messages if topic_part in m.topic]

    async def wait_for(self, predicate: Callable[[list[Msg]], bool], within: float = 15.0) -> list[Msg]:
        """Wait until ``predicate(messages)`` holds; fail with what arrived after ``within`` seconds."""
        assert self._event is not None
        deadline = asyncio.get_running_loop().time() + within
        while True:
            msgs = self.snapshot()
            if predicate(msgs):
                return msgs
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"timed out; got {len(msgs)} messages: {[m.topic for m in msgs][-10:]}")
            self._event.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.5)):
                    await self._event.wait()


def alert_keys(msgs: list[Msg]) -> list[tuple[str, str]]:
    """(alert_id, state) of the alert messages, in arrival order."""
    return [(m.payload["alert_id"], m.payload["state"]) for m in msgs if "/alerts/" in m.topic]


def first_occurrences(keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Arrival order with duplicates (at-least-once redelivery) removed."""
    seen: set[tuple[str, str]] = set()
    out = []
    for k in keys:
        if k not in seen:
            seen.add(k)
            out.append(k)
    return out


# -- a TCP relay that can swallow or cut a connection ---------------------------------------------
class TcpProxy:
    """Relays 127.0.0.1:``port`` to an upstream port. ``blackhole()`` silently discards what the
    client sends from now on (a half-dead link: PUBLISH packets vanish, no PUBACK comes back);
    ``cut()`` closes every relayed connection; ``restore()`` relays normally again."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.swallowed = 0
        self._blackhole = False

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def blackhole(self) -> None:
        self._blackhole = True

    def restore(self) -> None:
        self._blackhole = False

    def cut(self) -> None:
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for t in list(self._tasks):
            t.cancel()

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            cw.transport.abort()
            return
        self._writers |= {cw, uw}
        up = asyncio.create_task(self._pump(cr, uw, upstream=True))
        down = asyncio.create_task(self._pump(ur, cw, upstream=False))
        self._tasks |= {up, down}
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        for w in (cw, uw):
            w.transport.abort()
        self._writers -= {cw, uw}

    async def _pump(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, *, upstream: bool) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await r.read(65536):
                if upstream and self._blackhole:
                    self.swallowed += len(data)
                    continue
                w.write(data)
                await w.drain()


# -- running a link -------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def running(link: Any) -> Any:
    """Run ``link.run()`` as a task for the block; cancel it (clean shutdown) afterwards."""
    task = asyncio.create_task(link.run(), name="mqtt-link")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def spawn_agent(url: str, db: Path, *, record: int = 0) -> asyncio.subprocess.Process:
    """Start ``agent_proc.py`` (MqttLink in its own process) for the crash tests."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("agent_proc.py")),
        "--url",
        url,
        "--db",
        str(db),
        "--record",
        str(record),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def kill(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL: no clean shutdown, no DISCONNECT, no flush."""
    if proc.returncode is None:
        proc.kill()
    await proc.wait()
