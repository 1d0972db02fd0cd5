"""The generated agent config: valid, complete, and identical to the shipped deploy sample."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from agent.config import parse_config
from connectors.modbus_config import ModbusSource
from connectors.opcua_config import OpcuaSource
from rules.assets import TAG_ROLES
from simulator.config_gen import DEFAULT_MODBUS_PORT, DEFAULT_OPCUA_PORT, agent_config_toml
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
        optional = {"fuel_ncv_tag"}  # the kiln uses the constant fuel_ncv_mj_per_kg instead
        missing = set(TAG_ROLES[asset.type]) - set(asset.roles()) - optional
        assert not missing, f"{asset.id} lacks roles {missing}"
    kiln = by_id["kiln1"]
    assert kiln.feed_to_clinker == 1.6 and kiln.fuel_ncv_mj_per_kg == 25.0  # docs/kpis.md §1, §6
    assert kiln.nominal_feed_tph == 330.0
    assert kiln.target_specific_heat_kcal_per_kg == 735.0
    assert kiln.design_ph_exit_temp_c == 320.0
    assert kiln.role_tags("fuel_tph") == ["kiln1.main_burner_coal_tph", "kiln1.calciner_coal_tph"]
    assert by_id["whr1"].kiln == "kiln1"
    assert all(by_id[m].rated_power_kw for m in ("raw_mill1", "coal_mill1", "cement_mill1"))
    assert by_id["plant"].role_tags("production_running") == ["plant.production_running"]


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
