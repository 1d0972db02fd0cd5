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
    assert 700.0 <= r.shc_kcal_per_kg() <= 780.0  # docs/kpis.md §1, all three fuels
    assert 15.0 <= r.tsr_pct() <= 30.0  # docs/kpis.md §9: RDF + sawdust share of the heat
    assert 0.7 <= r.clinker_share() <= 0.8  # clinker feeder / cement mill feed
    assert 14.0 <= r.raw_mill_kwh_per_t() <= 18.0  # docs/kpis.md §2
    assert 18.0 <= r.coal_mill_kwh_per_t() <= 25.0
    assert 26.0 < r.cement_mill_kwh_per_t() <= 34.0  # docs/kpis.md §3 GB 16780 grades 2-3
    assert 30.0 <= r.whr_kwh_per_t() <= 45.0  # docs/kpis.md §5
    assert r.false_air_pct().max() < 5.0  # docs/kpis.md §8
    assert r["kiln1.kiln_inlet_co_pct"].max() < 0.1
    assert set(r["kiln1.running"]) == {1.0} and set(r["plant.production_running"]) == {1.0}


async def test_fuel_and_clinker_feeders_sit_after_the_original_registers(sim: SimulatedPlant) -> None:
    """The feeders added for the fuel mix and the clinker factor are float32 holding registers
    appended at 156/158 (kiln, big word order) and 160 (cement mill, little word order), read here
    with plain pymodbus calls: the addresses an agent config written before them never saw."""
    client = AsyncModbusTcpClient("127.0.0.1", port=sim.modbus_port, timeout=3, retries=0)
    await client.connect()
    try:
        rr = await client.read_holding_registers(156, count=6, device_id=1)
        assert not rr.isError(), rr
    finally:
        client.close()
    f32 = AsyncModbusTcpClient.DATATYPE.FLOAT32
    regs = rr.registers
    rdf = AsyncModbusTcpClient.convert_from_registers(regs[0:2], f32, word_order="big")
    biomass = AsyncModbusTcpClient.convert_from_registers(regs[2:4], f32, word_order="big")
    clinker = AsyncModbusTcpClient.convert_from_registers(regs[4:6], f32, word_order="little")
    values = sim.values()
    assert (rdf, biomass, clinker) == (
        values["kiln1.rdf_tph"],
        values["kiln1.biomass_tph"],
        values["cement_mill1.clinker_feeder_tph"],
    )
    assert isinstance(rdf, float) and isinstance(biomass, float) and isinstance(clinker, float)
    assert 5.0 < rdf < 8.0 and 1.5 < biomass < 3.5  # t/h, docs/simulator.md
    assert 0.7 < clinker / values["cement_mill1.feed_tph"] < 0.8


async def test_alternative_fuel_feeders_read_zero_over_the_wire_in_a_kiln_stop() -> None:
    async with SimulatedPlant(speed=0, seed=4, opcua=False, scenario="kiln_stop@2m") as stop:
        before = await read_all_modbus(stop.modbus_port, stop.plant.tagmap)
        await stop.advance(60.0 + 600.0, step_secs=10.0)  # feed and kiln drive run down within minutes
        after = await read_all_modbus(stop.modbus_port, stop.plant.tagmap)
    assert before["kiln1.rdf_tph"] > 4.0 and before["kiln1.biomass_tph"] > 1.0
    assert after["kiln1.rdf_tph"] == 0.0 and after["kiln1.biomass_tph"] == 0.0
    assert after["kiln1.feed_tph"] == 0.0 and after["kiln1.running"] == 0.0
    assert after["cement_mill1.clinker_feeder_tph"] > 50.0  # the cement mill grinds on from its silo


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
