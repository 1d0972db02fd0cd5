"""SimulatedPlant lifecycle: PLC dropout and restart on the same ports, generated config, arguments."""

from __future__ import annotations

import asyncio
import tomllib
from typing import Any

import pytest
from asyncua.client.client import Client
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.server import ModbusTcpServer
from sim_support import read_all_modbus

from agent.config import parse_config
from connectors.modbus_config import ModbusSource
from connectors.opcua_config import OpcuaSource
from simulator.runner import SimulatedPlant


async def modbus_reachable(port: int) -> bool:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0, reconnect_delay=0)
    try:
        return bool(await client.connect())
    finally:
        client.close()


async def opcua_reachable(endpoint: str) -> bool:
    client = Client(endpoint, timeout=2)
    try:
        await client.connect()
    except (OSError, TimeoutError):
        return False
    await client.disconnect()
    return True


@pytest.mark.asyncio
async def test_plc_dropout_refuses_connections_then_recovers_on_the_same_ports() -> None:
    async with SimulatedPlant(speed=0, scenario="plc_dropout@20s+60s") as sim:
        mb_port, endpoint = sim.modbus_port, sim.opcua_endpoint
        assert await modbus_reachable(mb_port) and await opcua_reachable(endpoint)
        await sim.advance(30.0)
        assert not sim.servers_running
        assert not await modbus_reachable(mb_port)
        assert not await opcua_reachable(endpoint)
        await sim.advance(60.0)
        assert sim.servers_running
        assert (sim.modbus_port, sim.opcua_endpoint) == (mb_port, endpoint)
        assert await read_all_modbus(mb_port, sim.plant.tagmap) == sim.values()
        assert await opcua_reachable(endpoint)


@pytest.mark.asyncio
async def test_plc_hang_accepts_connections_but_answers_nothing_then_recovers() -> None:
    async with SimulatedPlant(speed=0, scenario="plc_hang@20s+60s") as sim:
        mb_port, endpoint = sim.modbus_port, sim.opcua_endpoint
        await sim.advance(30.0)
        assert not sim.servers_running
        # TCP still connects (the network stack is alive) ...
        _, writer = await asyncio.open_connection("127.0.0.1", mb_port)
        writer.close()
        client = AsyncModbusTcpClient("127.0.0.1", port=mb_port, timeout=0.5, retries=0, reconnect_delay=0)
        assert await client.connect()
        # ... but no request is ever answered: a timeout, not a refusal
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(ModbusException):
            await client.read_holding_registers(100, count=2, device_id=1)
        assert loop.time() - t0 >= 0.45
        client.close()
        opc = Client(endpoint, timeout=0.5)
        with pytest.raises((TimeoutError, OSError)):
            await opc.connect()
        await sim.advance(60.0)
        assert sim.servers_running
        assert (sim.modbus_port, sim.opcua_endpoint) == (mb_port, endpoint)
        assert await read_all_modbus(mb_port, sim.plant.tagmap) == sim.values()
        assert await opcua_reachable(endpoint)


@pytest.mark.asyncio
async def test_stop_and_start_servers_emulate_a_plc_restart() -> None:
    async with SimulatedPlant(speed=0) as sim:
        port = sim.modbus_port
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0, reconnect_delay=0)
        await client.connect()
        assert not (await client.read_holding_registers(100, count=2, device_id=1)).isError()
        await sim.stop_servers()
        await asyncio.sleep(0.1)
        assert not client.connected  # the open connection was reset
        client.close()
        assert not await modbus_reachable(port)
        await sim.advance(30.0)  # the plant keeps running while its PLC is down
        await sim.start_servers()
        assert sim.modbus_port == port
        assert await read_all_modbus(port, sim.plant.tagmap) == sim.values()
        async with Client(sim.opcua_endpoint, timeout=10) as c:
            value = await c.get_node("ns=2;s=Kiln1.FeedRate").read_value()
        assert value == sim.values()["kiln1.feed_tph"]


@pytest.mark.asyncio
async def test_a_restarted_modbus_server_listens_only_once_its_registers_hold_the_plant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client reconnecting the instant a PLC restarts must read the plant, not a zeroed image."""
    seen: list[list[int]] = []
    serve = ModbusTcpServer.serve_forever

    async def spy(self: ModbusTcpServer, *args: Any, **kwargs: Any) -> Any:
        regs = await self.context.async_getValues(1, 3, 0, 20)  # holding, as it starts
        assert isinstance(regs, list), regs  # not an exception code
        seen.append([int(r) for r in regs])
        return await serve(self, *args, **kwargs)

    async with SimulatedPlant(speed=0, opcua=False) as sim:
        monkeypatch.setattr(ModbusTcpServer, "serve_forever", spy)
        await sim.stop_servers()
        await sim.start_servers()
        image = sim.plant.codec.encode(sim.plant.vector())["holding"][:20].tolist()
    assert any(image) and seen == [image]


@pytest.mark.asyncio
async def test_user_stop_wins_over_the_end_of_a_dropout() -> None:
    async with SimulatedPlant(speed=0, scenario="plc_dropout@0s+30s", opcua=False) as sim:
        await sim.advance(10.0)
        assert not sim.servers_running
        await sim.stop_servers()
        await sim.advance(60.0)
        assert not sim.servers_running  # stays down until start_servers()
        await sim.start_servers()
        assert sim.servers_running


@pytest.mark.asyncio
async def test_config_toml_points_the_agent_at_the_running_servers() -> None:
    async with SimulatedPlant(speed=0, lines=2, extra_tags=10) as sim:
        cfg = parse_config(tomllib.loads(sim.config_toml(site="siteX")))
        modbus = next(s for s in cfg.sources if isinstance(s, ModbusSource))
        opcua = next(s for s in cfg.sources if isinstance(s, OpcuaSource))
        assert modbus.port == sim.modbus_port and modbus.unit_id == sim.unit_id
        assert opcua.endpoint == sim.opcua_endpoint
        assert cfg.agent.site == "siteX"
        assert len(cfg.all_tags()) == len(sim.plant.tagmap)
        only_modbus = parse_config(tomllib.loads(sim.config_toml(opcua_port=None)))
        assert [s.type for s in only_modbus.sources] == ["modbus"]


def test_bad_arguments_are_rejected_before_anything_starts() -> None:
    with pytest.raises(ValueError, match="speed"):
        SimulatedPlant(speed=-1)
    with pytest.raises(ValueError, match="at least one"):
        SimulatedPlant(modbus=False, opcua=False)
    with pytest.raises(ValueError, match="unknown scenario"):
        SimulatedPlant(scenario="meltdown")
