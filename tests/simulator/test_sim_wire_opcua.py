"""Every signal over a real asyncua client: values, units, status codes, subscriptions, security."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError
from sim_support import read_all_modbus, read_all_opcua

from simulator.opcua_server import generate_certificate
from simulator.runner import SimulatedPlant
from simulator.tagmap import NAMESPACE_INDEX, NAMESPACE_URI

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _value(dv: ua.DataValue) -> object:
    return None if dv.Value is None else dv.Value.Value


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim() -> AsyncIterator[SimulatedPlant]:
    async with SimulatedPlant(speed=0, seed=31, modbus=False) as plant:
        yield plant


@pytest_asyncio.fixture(loop_scope="module")
async def client(sim: SimulatedPlant) -> AsyncIterator[Client]:
    async with Client(sim.opcua_endpoint, timeout=10) as c:
        yield c


async def test_every_node_serves_the_model_value_with_good_status(
    sim: SimulatedPlant, client: Client
) -> None:
    dvs = await read_all_opcua(client, sim.plant.tagmap)
    expected = sim.values()
    now = datetime.now(UTC)
    for name, dv in dvs.items():
        assert dv.StatusCode is not None and dv.StatusCode.is_good(), name
        assert dv.Value is not None
        value = dv.Value.Value
        assert float(value) == expected[name], name
        assert dv.SourceTimestamp is not None
        source_ts: datetime = dv.SourceTimestamp
        assert abs(source_ts - now) < timedelta(minutes=5), name
    t = sim.plant.tagmap
    kinds = {name: dv.Value.VariantType for name, dv in dvs.items() if dv.Value is not None}
    assert kinds["whr1.generator_kwh_total"] == ua.VariantType.UInt32
    assert kinds["kiln1.running"] == ua.VariantType.Boolean
    assert kinds["kiln1.feed_tph"] == ua.VariantType.Double
    assert t["whr1.generator_kw"].node_id == "ns=2;s=WHR1.GeneratorPower"


async def test_address_space_has_a_folder_per_asset_and_units(sim: SimulatedPlant, client: Client) -> None:
    assert await client.get_namespace_index(NAMESPACE_URI) == NAMESPACE_INDEX
    names = {(await n.read_browse_name()).Name for n in await client.nodes.objects.get_children()}
    assert {"Plant", "Kiln1", "RawMill1", "CoalMill1", "CementMill1", "WHR1"} <= names
    gen = client.get_node("ns=2;s=WHR1.GeneratorPower")
    eu = await client.get_node("ns=2;s=WHR1.GeneratorPower.EngineeringUnits").read_value()
    assert eu.DisplayName.Text == "kW"
    assert eu.UnitId == int.from_bytes(b"KWT", "big")  # UN/CEFACT kilowatt
    eu_range = await client.get_node("ns=2;s=WHR1.GeneratorPower.EURange").read_value()
    assert (eu_range.Low, eu_range.High) == (0.0, 12000.0)
    type_def = await gen.read_type_definition()
    assert type_def is not None
    assert (type_def.NamespaceIndex, type_def.Identifier) == (0, ObjectIds.AnalogItemType)
    temp_eu = await client.get_node("ns=2;s=Kiln1.PreheaterExitTemp.EngineeringUnits").read_value()
    assert temp_eu.UnitId == int.from_bytes(b"CEL", "big")


@pytest.mark.parametrize(
    ("node", "tag", "eu_range"),
    [
        ("ns=2;s=Kiln1.RdfFeedRate", "kiln1.rdf_tph", (0.0, 15.0)),
        ("ns=2;s=Kiln1.BiomassFeedRate", "kiln1.biomass_tph", (0.0, 8.0)),
        ("ns=2;s=CementMill1.ClinkerFeedRate", "cement_mill1.clinker_feeder_tph", (0.0, 200.0)),
    ],
)
async def test_fuel_and_clinker_feeders_are_analog_items_in_tonnes_per_hour(
    sim: SimulatedPlant, client: Client, node: str, tag: str, eu_range: tuple[float, float]
) -> None:
    assert sim.plant.tagmap[tag].node_id == node
    var = client.get_node(node)
    dv = await var.read_data_value()
    assert dv.StatusCode is not None and dv.StatusCode.is_good()
    assert dv.Value is not None and dv.Value.VariantType == ua.VariantType.Double
    assert dv.Value.Value == sim.values()[tag] > 0.0
    eu = await client.get_node(node + ".EngineeringUnits").read_value()
    assert eu.DisplayName.Text == "t/h" and eu.UnitId == int.from_bytes(b"E18", "big")
    rng = await client.get_node(node + ".EURange").read_value()
    assert (rng.Low, rng.High) == eu_range
    type_def = await var.read_type_definition()
    assert type_def is not None and type_def.Identifier == ObjectIds.AnalogItemType


async def test_nodes_are_read_only(client: Client) -> None:
    node = client.get_node("ns=2;s=Kiln1.FeedRate")
    with pytest.raises(UaStatusCodeError) as info:
        await node.write_value(ua.DataValue(ua.Variant(1.0, ua.VariantType.Double)))
    assert "Bad" in type(info.value).__name__ or "Bad" in str(info.value)


async def test_subscription_notifies_changes_pushed_by_advance(sim: SimulatedPlant, client: Client) -> None:
    received: asyncio.Queue[float] = asyncio.Queue()

    class Handler:
        def datachange_notification(self, node: object, val: float, data: object) -> None:
            received.put_nowait(val)

    sub = await client.create_subscription(50, Handler())
    await sub.subscribe_data_change(client.get_node("ns=2;s=WHR1.GeneratorPower"))
    first = await asyncio.wait_for(received.get(), timeout=5)
    await sim.advance(30.0)
    second = await asyncio.wait_for(received.get(), timeout=5)
    await sub.delete()
    assert first != second
    assert second == sim.values()["whr1.generator_kw"]


async def test_sensor_freeze_is_exact_on_both_protocols_with_plc_status_codes() -> None:
    async with SimulatedPlant(speed=0, seed=5, scenario="sensor_freeze@1m") as sim:
        await sim.advance(120.0, step_secs=10.0)
        async with Client(sim.opcua_endpoint, timeout=10) as c:
            ua1 = await read_all_opcua(c, sim.plant.tagmap)
            mb1 = await read_all_modbus(sim.modbus_port, sim.plant.tagmap)
            await sim.advance(600.0, step_secs=10.0)
            ua2 = await read_all_opcua(c, sim.plant.tagmap)
            mb2 = await read_all_modbus(sim.modbus_port, sim.plant.tagmap)
            for name in ("kiln1.ph_exit_o2_pct", "kiln1.clinker_temp_c", "whr1.aqc_inlet_temp_c"):
                assert mb1[name] == mb2[name], name
                assert _value(ua1[name]) == _value(ua2[name]) == mb2[name], name
            assert mb1["kiln1.kiln_inlet_o2_pct"] != mb2["kiln1.kiln_inlet_o2_pct"]
            o2_status = ua2["kiln1.ph_exit_o2_pct"].StatusCode
            assert o2_status is not None and o2_status.is_good()  # stuck but undetected
            status = ua2["kiln1.clinker_temp_c"].StatusCode
            assert status is not None and status.value == StatusCodes.UncertainLastUsableValue
            await sim.advance(1800.0, step_secs=30.0)
            ua3 = await read_all_opcua(c, sim.plant.tagmap)
            mb3 = await read_all_modbus(sim.modbus_port, sim.plant.tagmap)
            bad = ua3["kiln1.clinker_temp_c"]
            assert bad.StatusCode is not None and bad.StatusCode.value == StatusCodes.BadSensorFailure
            assert bad.Value is None or bad.Value.Value is None  # Bad: no value (OPC UA Part 4 §7.7.1)
            assert mb3["kiln1.clinker_temp_c"] == mb1["kiln1.clinker_temp_c"]  # Modbus keeps the frozen value


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def secure_sim() -> AsyncIterator[SimulatedPlant]:
    async with SimulatedPlant(speed=0, modbus=False, opcua_security=True) as plant:
        yield plant


@pytest.mark.parametrize("mode", [ua.MessageSecurityMode.Sign, ua.MessageSecurityMode.SignAndEncrypt])
async def test_basic256sha256_connections_work_with_generated_certificates(
    secure_sim: SimulatedPlant, mode: ua.MessageSecurityMode
) -> None:
    sim = secure_sim
    assert sim.client_cert is not None and sim.server_cert_file is not None
    assert sim.server_cert_file.read_bytes()[:1] == b"\x30"  # DER
    c = Client(sim.opcua_endpoint, timeout=10)
    c.application_uri = "urn:kilnwatch:agent"
    await c.set_security(
        SecurityPolicyBasic256Sha256,
        str(sim.client_cert.cert),
        str(sim.client_cert.key),
        server_certificate=str(sim.server_cert_file),
        mode=mode,
    )
    async with c:
        assert c.security_policy.Mode == mode
        value = await c.get_node("ns=2;s=WHR1.GeneratorPower").read_value()
        assert value == sim.values()["whr1.generator_kw"]
        endpoints = await c.get_endpoints()
    policies = {(e.SecurityPolicyUri.rsplit("#", 1)[-1], e.SecurityMode) for e in endpoints}
    assert ("Basic256Sha256", ua.MessageSecurityMode.Sign) in policies
    assert ("Basic256Sha256", ua.MessageSecurityMode.SignAndEncrypt) in policies
    assert ("None", ua.MessageSecurityMode.None_) in policies
    cfg = sim.config_toml()
    assert 'security = "Basic256Sha256_SignAndEncrypt"' in cfg
    assert str(sim.client_cert.key) in cfg


async def _secure_client(sim: SimulatedPlant, cert: Path, key: Path) -> Client:
    assert sim.server_cert_file is not None
    c = Client(sim.opcua_endpoint, timeout=10)
    c.application_uri = "urn:kilnwatch:agent"
    await c.set_security(
        SecurityPolicyBasic256Sha256,
        str(cert),
        str(key),
        server_certificate=str(sim.server_cert_file),
        mode=ua.MessageSecurityMode.SignAndEncrypt,
    )
    return c


async def test_a_client_certificate_not_on_the_trust_list_gets_no_session(tmp_path: Path) -> None:
    """Like a PLC's trusted-certificates folder: the generated agent certificate and the ones
    passed in ``opcua_trusted_certs`` get a session; any other certificate is refused."""
    stranger = generate_certificate(tmp_path / "x", name="stranger", application_uri="urn:kilnwatch:agent", client=True)
    friend = generate_certificate(tmp_path / "y", name="friend", application_uri="urn:kilnwatch:agent", client=True)
    async with SimulatedPlant(speed=0, modbus=False, opcua_security=True, opcua_trusted_certs=[friend.cert]) as sim:
        c = await _secure_client(sim, stranger.cert, stranger.key)
        with pytest.raises(UaStatusCodeError) as err:
            await c.connect()
        assert err.value.code == StatusCodes.BadCertificateUntrusted
        with contextlib.suppress(Exception):
            await c.disconnect()
        for files in (friend, sim.client_cert):
            assert files is not None
            async with await _secure_client(sim, files.cert, files.key) as ok:
                assert await ok.get_node("ns=2;s=WHR1.GeneratorPower").read_value() == sim.values()["whr1.generator_kw"]
