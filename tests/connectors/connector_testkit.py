# asyncua annotates plain ints/strs/datetimes as its own subclasses (ua.Int16, ua.DateTime, ...)
# mypy: disable-error-code="arg-type"
"""Real loopback servers for the connector tests, never a mock of the wire.

* :class:`ModbusTestServer` — pymodbus ``ModbusTcpServer`` with a ``SimDevice`` (separate coil,
  discrete, holding and input tables) on an ephemeral port. It records every request it receives
  (function code, address, count, unit id) so tests can count requests and prove that no write
  function code is ever sent, and it can inject faults: addresses answered with an exception,
  addresses that never answer, a device that stops answering altogether.
* :class:`OpcuaTestServer` — an asyncua ``Server`` on an ephemeral port with one namespace
  (``urn:kilnwatch:test``) and variables created on demand.
* :func:`wait_until` — sequence test steps on observable state (frames seen, ``stats``), not sleeps.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.common.node import Node
from asyncua.server.server import Server
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

TEST_NS = "urn:kilnwatch:test"

# asyncua servers log set-up chatter (no certificates, session timeout revised) at WARNING
logging.getLogger("asyncua.server").setLevel(logging.ERROR)


@dataclass
class ModbusTestServer:
    """A Modbus TCP device on 127.0.0.1 with request recording and fault injection."""

    holding: dict[int, int] = field(default_factory=dict)
    input: dict[int, int] = field(default_factory=dict)
    coils: dict[int, bool] = field(default_factory=dict)
    discrete: dict[int, bool] = field(default_factory=dict)
    unit: int = 1
    size: int = 2000
    port: int = 0
    #: (function code, address, count, unit id) of every request received, in order
    requests: list[tuple[int, int, int, int]] = field(default_factory=list)
    #: register addresses answered with ILLEGAL_ADDRESS when a read covers them
    illegal: set[int] = field(default_factory=set)
    #: register addresses that make a read covering them go unanswered
    silent: set[int] = field(default_factory=set)
    #: register addresses whose next covering read is lost once (then answered again)
    lose_next: set[int] = field(default_factory=set)
    #: answer nothing at all (a hung device)
    mute: bool = False
    #: answer every request with this exception code (e.g. 0x0B: gateway target failed)
    fail_all: int | None = None
    _server: ModbusTcpServer | None = None

    def _device(self) -> SimDevice:
        def regs(values: dict[int, int]) -> list[SimData]:
            words = [values.get(a, 0) for a in range(self.size)]
            return [SimData(address=0, values=words, datatype=DataType.REGISTERS)]

        def bits(values: dict[int, bool]) -> list[SimData]:
            flags = [bool(values.get(a, False)) for a in range(self.size)]
            return [SimData(address=0, values=flags, datatype=DataType.BITS)]

        return SimDevice(
            id=self.unit,
            simdata=(bits(self.coils), bits(self.discrete), regs(self.holding), regs(self.input)),
            action=self._action,
        )

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        covered = range(address, address + count)
        lost = self.lose_next.intersection(covered)
        if lost:
            self.lose_next -= lost
            await asyncio.sleep(3600)
        if self.mute or any(a in covered for a in self.silent):
            await asyncio.sleep(3600)
        if self.fail_all is not None:
            return ExcCodes(self.fail_all)
        if any(a in covered for a in self.illegal):
            return ExcCodes.ILLEGAL_ADDRESS
        return None

    def _trace(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.requests.append((pdu.function_code, pdu.address, pdu.count, pdu.dev_id))
        return pdu

    async def start(self) -> None:
        server = ModbusTcpServer(self._device(), address=("127.0.0.1", self.port), trace_pdu=self._trace)
        await server.serve_forever(background=True)
        assert server.transport is not None
        self.port = server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None
            await asyncio.sleep(0.05)

    async def set_holding(self, address: int, words: Sequence[int]) -> None:
        assert self._server is not None
        await self._server.context.async_setValues(self.unit, 16, address, list(words))

    def function_codes(self) -> set[int]:
        return {fc for fc, *_ in self.requests}


def modbus_source_dict(port: int, tags: Iterable[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    """A ``[[sources]]`` table for a test device with quick timeouts."""
    return {
        "name": "plc",
        "type": "modbus",
        "host": "127.0.0.1",
        "port": port,
        "unit_id": 1,
        "poll_interval_ms": 100,
        "timeout_ms": 200,
        "reconnect_min_ms": 50,
        "reconnect_max_ms": 200,
        "tags": list(tags),
        **overrides,
    }


# ------------------------------------------------------------------------------ OPC UA
@dataclass
class OpcuaTestServer:
    """An asyncua server on 127.0.0.1 with variables in ``urn:kilnwatch:test``."""

    port: int = 0
    namespaces: Sequence[str] = (TEST_NS,)
    security: Sequence[ua.SecurityPolicyType] = (ua.SecurityPolicyType.NoSecurity,)
    cert_file: Path | None = None
    key_file: Path | None = None
    users: dict[str, str] | None = None
    server: Server | None = None
    ns: int = 0
    nodes: dict[str, Node] = field(default_factory=dict)
    #: number of nodes in each Read request, and of items in each CreateMonitoredItems call
    read_sizes: list[int] = field(default_factory=list)
    create_sizes: list[int] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/kilnwatch"

    async def start(
        self,
        variables: dict[str, float] | None = None,
        limits: dict[str, int] | None = None,
        decoy: float | None = None,
    ) -> None:
        """Start with ``variables`` under ``Plant`` in the test namespace.

        With ``decoy``, every other registered namespace gets variables of the same names holding
        that value: a client that resolves ``nsu=`` ids to the wrong index reads the decoy.
        """
        from asyncua.common.callback import CallbackType
        from asyncua.server.user_managers import UserManager

        user_manager: UserManager | None = None
        if self.users is not None:
            users = self.users

            class _Users(UserManager):
                def get_user(
                    self,
                    iserver: Any,
                    username: str | None = None,
                    password: str | None = None,
                    certificate: Any = None,
                ) -> Any:
                    from asyncua.crypto.permission_rules import User, UserRole

                    if username in users and users[username] == password:
                        return User(role=UserRole.User)
                    return None

            user_manager = _Users()
        server = Server(user_manager=user_manager)
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{self.port}/kilnwatch")
        server.set_security_policy(list(self.security))
        if self.cert_file and self.key_file:
            await server.load_certificate(str(self.cert_file))
            await server.load_private_key(str(self.key_file))
        indexes = [await server.register_namespace(uri) for uri in self.namespaces]
        self.ns = indexes[list(self.namespaces).index(TEST_NS)] if TEST_NS in self.namespaces else 0
        self.server = server
        for name, limit in (limits or {}).items():
            await self.set_limit(name, limit)
        folder = await server.nodes.objects.add_folder(ua.NodeId("Plant", self.ns), "Plant")
        self.nodes = {}
        for name, value in (variables or {}).items():
            self.nodes[name] = await folder.add_variable(ua.NodeId(name, self.ns), name, float(value))
        if decoy is not None:
            for idx in indexes:
                if idx != self.ns:
                    other = await server.nodes.objects.add_folder(ua.NodeId("Plant", idx), "Plant")
                    for name in variables or {}:
                        await other.add_variable(ua.NodeId(name, idx), name, decoy)

        async def on_read(event: Any, dispatcher: Any) -> None:
            if event.is_external:  # reads by clients, not the server's own
                self.read_sizes.append(len(event.request_params.NodesToRead))

        async def on_create(event: Any, dispatcher: Any) -> None:
            self.create_sizes.append(len(event.request_params.ItemsToCreate))

        server.subscribe_server_callback(CallbackType.PreRead, on_read)
        server.subscribe_server_callback(CallbackType.ItemSubscriptionCreated, on_create)
        await server.start()
        assert server.bserver is not None
        self.port = server.bserver.port
        self.server = server

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None

    async def set_limit(self, name: str, value: int) -> None:
        """Advertise an OperationLimits value (``MaxNodesPerRead``, ``MaxMonitoredItemsPerCall``, ...)."""
        assert self.server is not None
        node = self.server.get_node(
            ua.NodeId(getattr(ObjectIds, f"Server_ServerCapabilities_OperationLimits_{name}"))
        )
        await node.write_value(ua.Variant(value, ua.VariantType.UInt32))

    def node_id(self, name: str) -> str:
        return f"ns={self.ns};s={name}"

    async def set(
        self,
        name: str,
        value: Any,
        *,
        status: int = StatusCodes.Good,
        source_ts: dt.datetime | None = None,
    ) -> None:
        assert self.server is not None
        variant = ua.Variant(value, ua.VariantType.Double) if isinstance(value, float) else ua.Variant(value)
        dv = ua.DataValue(
            variant,
            StatusCode=ua.StatusCode(status),
            SourceTimestamp=source_ts or dt.datetime.now(dt.UTC),
            ServerTimestamp=dt.datetime.now(dt.UTC),
        )
        await self.server.write_attribute_value(self.nodes[name].nodeid, dv)


def opcua_source_dict(endpoint: str, tags: Iterable[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    return {
        "name": "ua",
        "type": "opcua",
        "endpoint": endpoint,
        "mode": "poll",
        "poll_interval_ms": 100,
        "timeout_ms": 500,
        "reconnect_min_ms": 50,
        "reconnect_max_ms": 200,
        "tags": list(tags),
        **overrides,
    }
