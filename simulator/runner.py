"""``SimulatedPlant``: the plant model behind real Modbus TCP and OPC UA servers on loopback.

Used by ``kilnwatch simulate``, the demo, and every wire test::

    async with SimulatedPlant(scenario="false_air_leak@10m", speed=60) as sim:
        print(sim.modbus_port, sim.opcua_endpoint)
        cfg_text = sim.config_toml()          # an agent config pointing at these servers
        await sim.advance(600)                # tests: step 10 simulated minutes, push at once

A tick task steps the model by ``tick_secs * speed`` simulated seconds every ``tick_secs`` of wall
time on a drift-free schedule (missed ticks are skipped, never bunched) and pushes the reading to
both servers; ``speed=0`` pauses the clock so only :meth:`advance` moves it. ``plc_dropout`` closes
both servers while it is active; ``plc_hang`` replaces them with listeners that accept connections
and never answer. Values on the wire carry wall-clock timestamps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from simulator.config_gen import agent_config_toml
from simulator.modbus_server import ModbusPlc
from simulator.opcua_server import CLIENT_APPLICATION_URI, CertFiles, OpcuaPlc, generate_certificate
from simulator.plant import DEFAULT_START, PlantModel
from simulator.scenarios import describe

log = logging.getLogger(__name__)

#: What a client finds on the PLC ports: the servers, nothing (refused), or a hung listener.
LinkState = Literal["up", "down", "hung"]


class SilentListener:
    """Accepts TCP connections on a port and reads whatever arrives, but never answers.

    A PLC whose communication processor has hung: the TCP handshake succeeds (the network stack
    still works), requests go unanswered, so a client sees timeouts rather than refusals.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._swallow, self.host, self.port, reuse_address=True)

    async def _swallow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while await reader.read(4096):
                pass
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for w in list(self._writers):
            w.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5.0)


class SimulatedPlant:
    """An async context manager running the plant model and its PLC servers."""

    def __init__(
        self,
        *,
        modbus_port: int = 0,
        opcua_port: int = 0,
        host: str = "127.0.0.1",
        scenario: str = "normal",
        speed: float = 1.0,
        seed: int = 1,
        lines: int = 1,
        tick_secs: float = 1.0,
        opcua: bool = True,
        modbus: bool = True,
        opcua_security: bool = False,
        extra_tags: int = 0,
        unit_id: int = 1,
        start: datetime = DEFAULT_START,
        opcua_trusted_certs: Sequence[Path] = (),
    ) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        if tick_secs <= 0:
            raise ValueError("tick_secs must be > 0")
        if not (opcua or modbus):
            raise ValueError("enable at least one of modbus and opcua")
        self.plant = PlantModel(scenario=scenario, seed=seed, lines=lines, extra_tags=extra_tags, start=start)
        self.host = host
        self.speed = speed
        self.tick_secs = tick_secs
        self.opcua_security = opcua_security
        #: client certificates a secure OPC UA session may use, besides the generated one
        self._opcua_trusted = list(opcua_trusted_certs)
        self._cert_dir: Path | None = None
        self.client_cert: CertFiles | None = None
        self._modbus = (
            ModbusPlc(self.plant.codec, host=host, port=modbus_port, unit_id=unit_id) if modbus else None
        )
        self._opcua_port = opcua_port
        self._opcua_enabled = opcua
        self._opcua: OpcuaPlc | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        #: set by the plc_dropout / plc_hang scenarios (not by the user)
        self._link: LinkState = "up"
        self._silent: list[SilentListener] = []
        self._user_stopped = False

    # --- public surface ----------------------------------------------------------------------
    @property
    def modbus_port(self) -> int:
        return self._modbus.port if self._modbus else 0

    @property
    def opcua_port(self) -> int:
        return self._opcua.port if self._opcua else 0

    @property
    def opcua_endpoint(self) -> str:
        return self._opcua.endpoint if self._opcua else ""

    @property
    def unit_id(self) -> int:
        return self._modbus.unit_id if self._modbus else 0

    @property
    def function_codes(self) -> Counter[int]:
        """Every Modbus function code received since start (reads are 1-4; writes 5, 6, 15, 16...)."""
        return self._modbus.function_codes if self._modbus else Counter()

    @property
    def server_cert_file(self) -> Path | None:
        """The OPC UA server's certificate (DER), when ``opcua_security`` is on."""
        cert = self._opcua.server_cert if self._opcua else None
        return cert.cert if cert else None

    @property
    def servers_running(self) -> bool:
        return any(s is not None and s.running for s in (self._modbus, self._opcua))

    def values(self) -> dict[str, float]:
        """Current served engineering values by tag name (what a correct agent decodes)."""
        return self.plant.values()

    def config_toml(self, **kw: Any) -> str:
        """An agent config for these servers; keyword arguments go to :func:`agent_config_toml`."""
        args: dict[str, Any] = {
            "modbus_port": self.modbus_port or None,
            "opcua_port": self.opcua_port or None,
            "host": self.host,
            "lines": self.plant.lines,
            "extra_tags": self.plant.tagmap.extra_tags,
            "unit_id": self.unit_id or 1,
        }
        if self.opcua_security and self.client_cert is not None:
            args.update(
                opcua_security="Basic256Sha256_SignAndEncrypt",
                cert_file=str(self.client_cert.cert),
                key_file=str(self.client_cert.key),
            )
        args.update(kw)
        return agent_config_toml(**args)

    async def advance(self, simulated_secs: float, *, step_secs: float = 1.0) -> None:
        """Step the model ``simulated_secs`` (readings every ``step_secs``) and push values now."""
        async with self._lock:
            remaining = simulated_secs
            while remaining > 1e-9:
                dt = min(step_secs, remaining)
                self.plant.step(dt)
                remaining -= dt
                if self._wanted_link() != self._link:
                    await self._apply_link()
            await self._push()

    async def stop_servers(self) -> None:
        """Close both servers (clients see refused connections) — a PLC power cycle, part 1."""
        async with self._lock:
            self._user_stopped = True
            await self._stop()
            for listener in self._silent:
                await listener.stop()

    async def start_servers(self) -> None:
        """Start both servers again on the same ports with current values — part 2.

        While a plc_dropout or plc_hang is on, the ports come back in that state instead.
        """
        async with self._lock:
            self._user_stopped = False
            if self._link == "up":
                await self._start()
            elif self._link == "hung":
                for listener in self._silent:
                    await listener.start()

    # --- lifecycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> SimulatedPlant:
        if self.opcua_security:
            self._cert_dir = Path(tempfile.mkdtemp(prefix="kilnwatch-sim-pki-"))
            self.client_cert = generate_certificate(
                self._cert_dir, name="agent", application_uri=CLIENT_APPLICATION_URI, client=True
            )
        if self._opcua_enabled:
            trusted = [*self._opcua_trusted, *([self.client_cert.cert] if self.client_cert else [])]
            self._opcua = OpcuaPlc(
                self.plant.tagmap,
                host=self.host,
                port=self._opcua_port,
                security=self.opcua_security,
                cert_dir=self._cert_dir,
                trusted_certs=trusted,
            )
        try:
            await self._push()
            await self._start()
        except BaseException:
            await self._stop()
            self._cleanup()
            raise
        self._task = asyncio.create_task(self._tick_loop(), name="simulator-tick")
        log.info("simulated plant up: scenario %s, speed %gx", describe(self.plant.scenarios), self.speed)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._stop()
        for listener in self._silent:
            await listener.stop()
        self._cleanup()

    def _cleanup(self) -> None:
        if self._cert_dir is not None:
            shutil.rmtree(self._cert_dir, ignore_errors=True)
            self._cert_dir = None

    async def _start(self) -> None:
        for server in (self._modbus, self._opcua):
            if server is not None:
                await server.start()

    async def _stop(self) -> None:
        for server in (self._modbus, self._opcua):
            if server is not None:
                await server.stop()

    def _wanted_link(self) -> LinkState:
        if not self.plant.plc_reachable:
            return "down"
        return "up" if self.plant.plc_responsive else "hung"

    async def _apply_link(self) -> None:
        """Follow plc_dropout / plc_hang: servers, nothing, or silent listeners on the same ports."""
        wanted = self._wanted_link()
        log.info("PLC link %s -> %s at t=%.0fs", self._link, wanted, self.plant.t)
        if self._link == "up" and not self._user_stopped:
            await self._stop()
        for listener in self._silent:
            await listener.stop()
        self._silent = []
        self._link = wanted
        if self._user_stopped:
            return
        if wanted == "up":
            await self._start()
        elif wanted == "hung":
            ports = [srv.port for srv in (self._modbus, self._opcua) if srv is not None and srv.port]
            self._silent = [SilentListener(self.host, port) for port in ports]
            for listener in self._silent:
                await listener.start()

    async def _push(self) -> None:
        values = self.plant.vector()
        if self._modbus is not None:
            await self._modbus.update(self.plant.codec.encode(values))
        if self._opcua is not None:
            await self._opcua.update(values, self.plant.statuses(), datetime.now(UTC))

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self.tick_secs
            delay = next_at - loop.time()
            if delay < 0:  # fell behind: skip missed ticks instead of bunching them
                next_at += -(delay // self.tick_secs) * self.tick_secs
                delay = next_at - loop.time()
            await asyncio.sleep(delay)
            async with self._lock:
                if self.speed > 0:
                    self.plant.step(self.tick_secs * self.speed)
                    if self._wanted_link() != self._link:
                        await self._apply_link()
                await self._push()
