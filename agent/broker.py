"""An MQTT broker on loopback for ``kilnwatch demo`` when no broker is configured (README, Commands).

Debian's ``mosquitto`` is used when it is installed (a generated config in a temporary directory,
one listener, no persistence); otherwise the pure-Python ``amqtt`` broker runs in-process. Either
way nothing is printed: mosquitto's log goes to a file in the temporary directory (``log_path``)
and amqtt logs through :mod:`logging` only.

    async with EmbeddedBroker(host="127.0.0.1", port=0) as broker:
        cfg = MqttSection(url=broker.url, protocol=broker.protocol)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

log = logging.getLogger(__name__)

Backend = Literal["auto", "mosquitto", "amqtt"]

#: Debian installs the broker in /usr/sbin, which is not on a normal user's PATH.
_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
_START_TIMEOUT_SECS = 10.0
_STOP_TIMEOUT_SECS = 5.0


class BrokerError(Exception):
    """The embedded broker could not be started."""


def find_mosquitto() -> str | None:
    """Path of the mosquitto executable: on PATH, or in the sbin directories Debian uses."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return shutil.which("mosquitto", path=os.pathsep.join(_SBIN_DIRS))


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _write_mosquitto_conf(work: Path, host: str, port: int) -> Path:
    """One loopback listener, anonymous, no persistence, log to stderr (our log file)."""
    # mosquitto started as root drops to its own user; it must still read what we wrote.
    work.chmod(0o755)
    conf = work / "mosquitto.conf"
    conf.write_text(
        f"listener {port} {host}\n"
        "allow_anonymous true\n"
        "persistence false\n"
        "log_dest stderr\n"
        "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
    )
    conf.chmod(0o644)
    return conf


def _last_line(path: Path) -> str:
    lines = path.read_text(errors="replace").strip().splitlines()
    return lines[-1] if lines else ""


class EmbeddedBroker:
    """A loopback MQTT broker for the lifetime of an ``async with`` block.

    ``port=0`` picks a free port. After entering, ``url`` (``mqtt://host:port``), ``port``,
    ``backend`` (``"mosquitto"`` or ``"amqtt"``) and ``protocol`` (the MQTT version to configure:
    ``"auto"`` for mosquitto, ``"3.1.1"`` for amqtt, which does not speak MQTT 5) are set.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, backend: Backend = "auto") -> None:
        self.host = host
        self.port = port
        self._requested_port = port
        self._backend_choice = backend
        self.backend: Literal["mosquitto", "amqtt"] | None = None
        self.log_path: Path | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._amqtt: Any = None
        self._amqtt_logger_level: int | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mqtt://{host}:{self.port}"

    @property
    def protocol(self) -> Literal["auto", "3.1.1"]:
        return "3.1.1" if self.backend == "amqtt" else "auto"

    async def __aenter__(self) -> EmbeddedBroker:
        exe = find_mosquitto() if self._backend_choice in ("auto", "mosquitto") else None
        if self._backend_choice == "mosquitto" and exe is None:
            raise BrokerError("mosquitto is not installed (apt install mosquitto)")
        if exe is not None:
            await self._start_mosquitto(exe)
        else:
            await self._start_amqtt()
        log.info("embedded MQTT broker (%s) listening on %s", self.backend, self.url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Stop the broker and remove its temporary files (idempotent)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(_STOP_TIMEOUT_SECS):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        broker, self._amqtt = self._amqtt, None
        if broker is not None:
            await broker.shutdown()
        if self._amqtt_logger_level is not None:
            logging.getLogger("amqtt").setLevel(self._amqtt_logger_level)
            self._amqtt_logger_level = None
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            tmp.cleanup()

    # -- mosquitto ----------------------------------------------------------------------------
    async def _start_mosquitto(self, exe: str) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="kilnwatch-mqtt-")
        work = Path(self._tmp.name)
        self.log_path = work / "mosquitto.log"
        attempts = 3 if self._requested_port == 0 else 1
        last = ""
        for _ in range(attempts):
            self.port = self._requested_port or _free_port(self.host)
            conf = _write_mosquitto_conf(work, self.host, self.port)
            with self.log_path.open("ab") as logf:
                self._proc = await asyncio.create_subprocess_exec(
                    exe,
                    "-c",
                    str(conf),
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=logf,
                    start_new_session=True,  # Ctrl-C in the demo's terminal is the agent's to handle
                )
            if await self._wait_listening():
                self.backend = "mosquitto"
                return
            last = _last_line(self.log_path)
            await self._kill_process()
        await self.stop()
        raise BrokerError(f"mosquitto did not start on {self.host}:{self.port}: {last or 'no output'}")

    async def _kill_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()

    async def _wait_listening(self) -> bool:
        """Until mosquitto logs that it runs and its port answers, or it exits (port taken...).

        A TCP connect alone is not proof: another broker may already own the port.
        """
        assert self._proc is not None and self.log_path is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _START_TIMEOUT_SECS
        while loop.time() < deadline:
            if self._proc.returncode is not None:
                return False
            if " running" in self.log_path.read_text(errors="replace"):
                try:
                    _r, w = await asyncio.open_connection(self.host, self.port)
                except OSError:
                    pass
                else:
                    w.close()
                    with contextlib.suppress(OSError):
                        await w.wait_closed()
                    return self._proc.returncode is None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.02):
                    await self._proc.wait()
        return False

    # -- amqtt --------------------------------------------------------------------------------
    async def _start_amqtt(self) -> None:
        try:
            from amqtt.broker import Broker
        except ImportError as exc:  # pragma: no cover - amqtt is a pinned dependency
            raise BrokerError(f"neither mosquitto nor amqtt is available: {exc}") from None
        amqtt_log = logging.getLogger("amqtt")
        if amqtt_log.level == logging.NOTSET:
            # amqtt logs every client connect at WARNING and up; the demo's screen is not the place.
            self._amqtt_logger_level = amqtt_log.level
            amqtt_log.setLevel(logging.ERROR)
        host = f"[{self.host}]" if ":" in self.host else self.host
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{self._requested_port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        broker = Broker(config)
        try:
            await broker.start()
        except Exception as exc:
            await self.stop()
            raise BrokerError(
                f"amqtt broker did not start on {self.host}:{self._requested_port}: {exc}"
            ) from None
        self._amqtt = broker
        # amqtt keeps its asyncio.Server per listener; with port 0 the kernel picked the port.
        server = broker._servers["default"].instance
        self.port = int(server.sockets[0].getsockname()[1])
        self.backend = "amqtt"
