"""The generated agent config: valid, complete, and identical to the shipped deploy sample."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from sim_support import Readings, run

from agent.config import parse_config
from connectors.modbus_config import ModbusSource
from connectors.opcua_config import OpcuaSource
from rules.assets import TAG_ROLES
from simulator.config_gen import DEFAULT_MODBUS_PORT, DEFAULT_OPCUA_PORT, agent_config_toml
from simulator.plant import PlantModel
from simulator.tagmap import build_tagmap

DEPLOY_SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "kilnwatch-sim.toml"


def test_deploy_sample_is_exactly_the_generated_config_for_default_ports() -> None:
    generated = agent_config_toml(modbus_port=DEFAULT_MODBUS_PORT, opcua_port=DEFAULT_OPCUA_PORT)
    assert DEPLOY_SAMPLE.read_text(encoding="utf-8") == generated, (
        "deploy/kilnwatch-sim.toml drifted: regenerate with `kilnwatch simulate --print-config > "
        "deploy/kilnwatch-sim.toml`"
    )


def test_generated_config_passes_the_agent_validator_with_every_role() -> None:
    cfg = parse_config(tomllib.loads(agent_config_toml(modbus_port=5020, opcua_port=4840)))
    assert cfg.agent.site == "plant1"
    modbus = [s for s in cfg.sources if isinstance(s, ModbusSource)]
    opcua = [s for s in cfg.sources if isinstance(s, OpcuaSource)]
    assert len(modbus) == 1 and modbus[0].port == 5020
    assert len(opcua) == 1 and opcua[0].endpoint == "opc.tcp://127.0.0.1:4840/kilnwatch"
    assert opcua[0].mode == "subscribe"
    assert {t.name.split(".")[0] for t in opcua[0].tags} == {"whr1"}
    assert len(cfg.all_tags()) == len(build_tagmap())
    by_id = {a.id: a for a in cfg.assets}
    assert set(by_id) == {"kiln1", "raw_mill1", "coal_mill1", "cement_mill1", "whr1", "plant"}
    for asset in cfg.assets:
        optional = {"fuel_tph", "fuel_ncv_tag"}  # the kiln lists its fuels as [[assets.fuels]] instead
        missing = set(TAG_ROLES[asset.type]) - set(asset.roles()) - optional
        assert not missing, f"{asset.id} lacks roles {missing}"
    kiln = by_id["kiln1"]
    assert kiln.feed_to_clinker == 1.6  # docs/kpis.md §1
    assert kiln.nominal_feed_tph == 330.0
    assert kiln.target_specific_heat_kcal_per_kg == 735.0
    assert kiln.design_ph_exit_temp_c == 320.0
    assert kiln.role_tags("fuel_tph") == [] and kiln.fuel_ncv_mj_per_kg is None
    assert kiln.fuels is not None and [f.name for f in kiln.fuels] == ["coal", "rdf", "biomass"]
    assert [f.name for f in kiln.fuels if f.marginal] == ["coal"]
    assert by_id["cement_mill1"].role_tags("clinker_feed_tph") == ["cement_mill1.clinker_feeder_tph"]
    assert by_id["whr1"].kiln == "kiln1"
    assert all(by_id[m].rated_power_kw for m in ("raw_mill1", "coal_mill1", "cement_mill1"))
    assert by_id["plant"].role_tags("production_running") == ["plant.production_running"]


def _kiln_and_cement_mill(text: str, k: int = 1) -> tuple[dict[str, Any], dict[str, Any]]:
    assets = {a["id"]: a for a in tomllib.loads(text)["assets"]}
    return assets[f"kiln{k}"], assets[f"cement_mill{k}"]


def test_kiln_lists_its_three_fuels_instead_of_the_single_fuel_keys() -> None:
    """docs/kpis.md §9 layout, read as plain TOML (independent of the agent's config model)."""
    text = agent_config_toml(modbus_port=5020, opcua_port=4840)
    kiln, _ = _kiln_and_cement_mill(text)
    assert not {"fuel_tph", "fuel_ncv_mj_per_kg", "fuel_ncv_tag", "fuel_type"} & set(kiln)
    assert kiln["fuels"] == [
        {
            "name": "coal",
            "category": "fossil",
            "tph": ["kiln1.main_burner_coal_tph", "kiln1.calciner_coal_tph"],
            "ncv_mj_per_kg": 25.0,
            "co2_kg_per_gj": 96.0,
            "biogenic_fraction": 0.0,
            "price_per_gj": 29.1,
            "marginal": True,
        },
        {
            "name": "rdf",
            "category": "alternative_fossil",
            "tph": "kiln1.rdf_tph",
            "ncv_mj_per_kg": 16.0,
            "co2_kg_per_gj": 88.0,
            "biogenic_fraction": 0.45,
        },
        {
            "name": "biomass",
            "category": "biomass",
            "tph": "kiln1.biomass_tph",
            "ncv_mj_per_kg": 12.0,
            "co2_kg_per_gj": 110.0,
            "biogenic_fraction": 1.0,
        },
    ]
    assert kiln["o2_basis"] == "dry" and kiln["ph_exit_co_pct"] == "kiln1.ph_exit_co_pct"
    agent = tomllib.loads(text)["agent"]
    assert (agent["currency"], agent["grid_co2_kg_per_kwh"], agent["electricity_price_per_kwh"]) == (
        "CNY",
        0.5306,
        0.65,
    )
    modbus_units = {t["name"]: t.get("unit") for s in tomllib.loads(text)["sources"] for t in s["tags"]}
    feeders = [t for f in kiln["fuels"] for t in ([f["tph"]] if isinstance(f["tph"], str) else f["tph"])]
    assert all(modbus_units[t] == "t/h" for t in feeders)  # every feeder is a served tag


def test_every_line_gets_its_own_fuels_and_clinker_feeder() -> None:
    text = agent_config_toml(modbus_port=5020, opcua_port=4840, lines=2)
    kiln, mill = _kiln_and_cement_mill(text, 2)
    assert [f["tph"] for f in kiln["fuels"]] == [
        ["kiln2.main_burner_coal_tph", "kiln2.calciner_coal_tph"],
        "kiln2.rdf_tph",
        "kiln2.biomass_tph",
    ]
    assert (mill["clinker_feed_tph"], mill["mic_moisture_pct"], mill["kiln"]) == (
        "cement_mill2.clinker_feeder_tph",
        2.0,
        "kiln2",
    )


def test_config_constants_describe_the_simulated_plant_in_normal_operation() -> None:
    """The design state of the loss attribution and the fuels' NCVs are what the plant does: SHC
    from the configured NCVs lands on the target, and the design O2 / temperatures on the means."""
    kiln, mill = _kiln_and_cement_mill(agent_config_toml(modbus_port=5020, opcua_port=4840))
    model = PlantModel(seed=5)
    r = Readings(model.tagmap, run(model, 12, step_secs=60.0))
    heat = 0.0
    for fuel in kiln["fuels"]:
        tags = [fuel["tph"]] if isinstance(fuel["tph"], str) else fuel["tph"]
        heat += sum(r.mean(t) for t in tags) * fuel["ncv_mj_per_kg"]
    shc = heat * 1000.0 / (r.mean("kiln1.feed_tph") / kiln["feed_to_clinker"]) / 4.1868
    assert shc == pytest.approx(kiln["target_specific_heat_kcal_per_kg"], rel=0.02)
    assert r.mean("kiln1.ph_exit_o2_pct") == pytest.approx(kiln["design_ph_exit_o2_pct"], abs=0.2)
    assert r.mean("kiln1.ph_exit_temp_c") == pytest.approx(kiln["design_ph_exit_temp_c"], abs=6.0)
    assert r.mean("kiln1.clinker_temp_c") == pytest.approx(kiln["design_clinker_temp_c"], abs=6.0)
    wet_share = r.clinker_share()
    dry_share = wet_share / (wet_share + (1 - wet_share) * (1 - mill["mic_moisture_pct"] / 100))
    assert 0.7 <= wet_share < dry_share <= 0.8  # docs/kpis.md §9 clinker factor, dry basis


def test_modbus_tags_carry_the_tag_map_locations() -> None:
    cfg = parse_config(tomllib.loads(agent_config_toml(modbus_port=1502, opcua_port=None)))
    tm = build_tagmap()
    (src,) = cfg.sources
    assert isinstance(src, ModbusSource)
    assert len(src.tags) == len(tm)  # WHR moves to Modbus when OPC UA is off
    for tag in src.tags:
        t = tm[tag.name]
        assert (tag.address, tag.table, tag.data_type, tag.scale, tag.unit) == (
            t.address,
            t.table,
            t.data_type,
            t.scale,
            t.unit,
        )
        if t.width > 1:
            assert tag.word_order == t.word_order
        if t.instrument:
            assert tag.min is not None and tag.max is not None
            assert tag.min < t.instrument[0] and tag.max > t.instrument[1]


@pytest.mark.parametrize(
    ("lines", "extra", "kwargs"),
    [
        (1, 0, {"modbus_port": None, "opcua_port": 4840}),
        (3, 200, {"modbus_port": 5020, "opcua_port": 4840}),
        (1, 20, {"modbus_port": 5020, "opcua_port": 4840, "extra_tags_via": "opcua", "use_nsu": True}),
        (
            1,
            0,
            {
                "modbus_port": 5020,
                "opcua_port": 4840,
                "opcua_security": "Basic256Sha256_SignAndEncrypt",
                "cert_file": "/etc/kilnwatch/agent-cert.der",
                "key_file": "/etc/kilnwatch/agent-key.pem",
                "opcua_mode": "poll",
                "site": "plantB",
            },
        ),
    ],
)
def test_config_variants_validate(lines: int, extra: int, kwargs: dict[str, Any]) -> None:
    cfg = parse_config(tomllib.loads(agent_config_toml(lines=lines, extra_tags=extra, **kwargs)))
    assert len(cfg.all_tags()) == len(build_tagmap(lines=lines, extra_tags=extra))
    assert len([a for a in cfg.assets if a.type == "kiln"]) == lines
    if kwargs.get("use_nsu"):
        opcua = next(s for s in cfg.sources if isinstance(s, OpcuaSource))
        assert all(t.node_id.startswith("nsu=urn:kilnwatch:simulator;s=") for t in opcua.tags)


def test_no_port_at_all_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        agent_config_toml(modbus_port=None, opcua_port=None)
