"""Every signal over a real pymodbus client against the simulator's Modbus TCP server (loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from pymodbus.client import AsyncModbusTcpClient
from sim_support import Readings, read_all_modbus

from simulator.runner import SimulatedPlant

pytestmark = pytest.mark.asyncio(loop_scope="module")

READ_CODES = {1, 2, 3, 4}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim() -> AsyncIterator[SimulatedPlant]:
    async with SimulatedPlant(speed=0, seed=21, opcua=False) as plant:
        yield plant


async def test_every_tag_reads_back_exactly_as_the_model_serves_it(sim: SimulatedPlant) -> None:
    wire = await read_all_modbus(sim.modbus_port, sim.plant.tagmap)
    expected = sim.values()
    assert set(wire) == set(expected)
    mismatched = {k: (wire[k], expected[k]) for k in wire if wire[k] != expected[k]}
    assert not mismatched


async def test_normal_signals_read_over_the_wire_are_in_domain_ranges(sim: SimulatedPlant) -> None:
    rows = []
    for _ in range(30):
        wire = await read_all_modbus(sim.modbus_port, sim.plant.tagmap)
        rows.append([wire[n] for n in sim.plant.tagmap.names])
        await sim.advance(20.0, step_secs=10.0)
    r = Readings(sim.plant.tagmap, __import__("numpy").array(rows))
    for t in sim.plant.tagmap.tags:
        if not (t.counter or t.is_bool):
            lo, hi = t.normal
            assert lo <= r.mean(t.name) <= hi, t.name  # docs/kpis.md §6
    assert 700.0 <= r.shc_kcal_per_kg() <= 780.0  # docs/kpis.md §1
    assert 14.0 <= r.raw_mill_kwh_per_t() <= 18.0  # docs/kpis.md §2
    assert 18.0 <= r.coal_mill_kwh_per_t() <= 25.0
    assert 26.0 < r.cement_mill_kwh_per_t() <= 34.0  # docs/kpis.md §3 GB 16780 grades 2-3
    assert 30.0 <= r.whr_kwh_per_t() <= 45.0  # docs/kpis.md §5
    assert r.false_air_pct().max() < 5.0  # docs/kpis.md §8
    assert r["kiln1.kiln_inlet_co_pct"].max() < 0.1
    assert set(r["kiln1.running"]) == {1.0} and set(r["plant.production_running"]) == {1.0}


async def test_advance_pushes_new_values_to_the_registers_at_once(sim: SimulatedPlant) -> None:
    before = await read_all_modbus(sim.modbus_port, sim.plant.tagmap)
    await sim.advance(60.0)
    after = await read_all_modbus(sim.modbus_port, sim.plant.tagmap)
    assert after == sim.values()
    assert after["kiln1.feed_tph"] != before["kiln1.feed_tph"]
    assert after["plant.incomer_kwh_total"] > before["plant.incomer_kwh_total"]


async def test_unknown_unit_id_answers_gateway_target_failed(sim: SimulatedPlant) -> None:
    client = AsyncModbusTcpClient("127.0.0.1", port=sim.modbus_port, timeout=3, retries=0)
    await client.connect()
    try:
        rr = await client.read_holding_registers(100, count=2, device_id=9)
        assert rr.isError() and rr.exception_code == 0x0B
        size = sim.plant.tagmap.table_size("holding")
        rr = await client.read_holding_registers(size, count=2, device_id=1)
        assert rr.isError() and rr.exception_code == 0x02  # past the map: ILLEGAL ADDRESS
    finally:
        client.close()


async def test_server_counts_function_codes_so_writes_are_visible(sim: SimulatedPlant) -> None:
    await read_all_modbus(sim.modbus_port, sim.plant.tagmap)
    assert set(sim.function_codes) <= READ_CODES
    assert sim.function_codes[3] > 0 and sim.function_codes[4] > 0
    assert sim.function_codes[1] > 0 and sim.function_codes[2] > 0
    client = AsyncModbusTcpClient("127.0.0.1", port=sim.modbus_port, timeout=3, retries=0)
    await client.connect()
    try:
        await client.write_register(5000, 1, device_id=1)
        await client.write_coil(0, True, device_id=1)
    finally:
        client.close()
    assert sim.function_codes[6] == 1 and sim.function_codes[5] == 1
    await sim.advance(1.0)  # the next scan overwrites whatever was written


async def test_running_clock_steps_the_plant_at_the_requested_speed() -> None:
    async with SimulatedPlant(speed=120.0, tick_secs=0.05, opcua=False) as sim:
        first = await read_all_modbus(sim.modbus_port, sim.plant.tagmap)
        await asyncio.sleep(0.6)  # the wall time the clock is measured over: the thing under test
        later = await read_all_modbus(sim.modbus_port, sim.plant.tagmap)
        assert sim.plant.t >= 30.0  # 0.6 s x 120 = 72 simulated s; generous for a loaded machine
        assert later["kiln1.energy_kwh_total"] > first["kiln1.energy_kwh_total"]
        assert later["kiln1.feed_tph"] != first["kiln1.feed_tph"]
