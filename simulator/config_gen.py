"""Generate the complete agent config (docs/configuration.md) for the simulated plant from the tag map.

The kiln, mill and site signals are read over Modbus TCP (one source for all lines), the WHR signals
over OPC UA (mode subscribe) — as on a plant where the WHR island has its own DCS. Filler tags go to
the Modbus source unless ``extra_tags_via="opcua"``. With one of the servers disabled everything is
read from the other. ``deploy/kilnwatch-sim.toml`` is this output for the default ports and a test
keeps the two identical.

Every number an asset carries (NCVs, CO2 factors, design state of the loss attribution, clinker
share moisture, prices) is a simulator constant (simulator/plant/constants.py), so the agent's
KPIs describe the simulated plant exactly: its fuel mix as ``[[assets.fuels]]`` (docs/kpis.md §9),
the design state the heat-balance attribution compares against (docs/kpis.md §10).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

from simulator.plant import (
    BIOMASS_BIOGENIC_FRACTION,
    BIOMASS_CO2_KG_PER_GJ,
    BIOMASS_NCV_MJ_PER_KG,
    CEMENT_MIC_MOISTURE_PCT,
    CEMENT_MILL_RATED_KW,
    COAL_CO2_KG_PER_GJ,
    COAL_MILL_RATED_KW,
    COAL_NCV_MJ_PER_KG,
    COAL_PRICE_PER_GJ,
    CURRENCY,
    DESIGN_CLINKER_TEMP_C,
    DESIGN_PH_EXIT_O2_PCT,
    DESIGN_PH_EXIT_TEMP_C,
    ELECTRICITY_PRICE_PER_KWH,
    FEED_TO_CLINKER,
    GRID_CO2_KG_PER_KWH,
    KILN_RATED_KW,
    NOMINAL_FEED_TPH,
    RAW_MILL_RATED_KW,
    RDF_BIOGENIC_FRACTION,
    RDF_CO2_KG_PER_GJ,
    RDF_NCV_MJ_PER_KG,
    TARGET_SHC_KCAL_PER_KG,
)
from simulator.tagmap import Tag, TagMap, build_tagmap

DEFAULT_MODBUS_PORT = 5020
DEFAULT_OPCUA_PORT = 4840
#: Plausibility limits written to the config: the transmitter range widened by this share of its span.
LIMIT_MARGIN = 0.01
Security = Literal["None", "Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt"]


def _fmt(value: float) -> str:
    """A TOML float that reads naturally (``1.0``, ``0.1``, ``-0.5``)."""
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return f"{int(value)}.0"
    return repr(float(value))


def _str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _list(values: Iterable[str]) -> str:
    return "[" + ", ".join(_str(v) for v in values) + "]"


def _limits(t: Tag) -> list[str]:
    if t.instrument is None:
        return []
    lo, hi = t.instrument
    pad = (hi - lo) * LIMIT_MARGIN
    return [f"  min = {_fmt(round(lo - pad, 6))}", f"  max = {_fmt(round(hi + pad, 6))}"]


def _modbus_tag(t: Tag) -> str:
    lines = [
        "  [[sources.tags]]",
        f"  name = {_str(t.name)}",
        f"  register = {t.address}",
        f'  table = "{t.table}"',
        f'  data_type = "{t.data_type}"',
    ]
    if t.width > 1:
        lines.append(f'  word_order = "{t.word_order}"')
    if t.scale != 1.0:
        lines.append(f"  scale = {_fmt(t.scale)}")
    if t.unit:
        lines.append(f"  unit = {_str(t.unit)}")
    lines += _limits(t)
    return "\n".join(lines)


def _opcua_tag(t: Tag) -> str:
    lines = ["  [[sources.tags]]", f"  name = {_str(t.name)}", f"  node_id = {_str(t.node_id)}"]
    if t.unit:
        lines.append(f"  unit = {_str(t.unit)}")
    lines += _limits(t)
    return "\n".join(lines)


def _assets(tagmap: TagMap) -> list[str]:
    out: list[str] = []
    for asset, kind, line in tagmap.assets():
        a = asset
        block = ["[[assets]]", f"id = {_str(a)}", f'type = "{kind}"']
        if kind == "kiln":
            block += [
                f"feed_to_clinker = {_fmt(FEED_TO_CLINKER)}",
                f"kiln_feed_tph = {_str(a + '.feed_tph')}",
                f"power_kw = {_list([a + '.main_drive_kw', a + '.id_fan_kw', a + '.cooler_fans_kw'])}",
                f"ph_exit_temp_c = {_str(a + '.ph_exit_temp_c')}",
                f"ph_exit_o2_pct = {_str(a + '.ph_exit_o2_pct')}",
                f"kiln_inlet_o2_pct = {_str(a + '.kiln_inlet_o2_pct')}",
                f"kiln_inlet_co_pct = {_str(a + '.kiln_inlet_co_pct')}",
                f"ph_exit_co_pct = {_str(a + '.ph_exit_co_pct')}",
                f"clinker_temp_c = {_str(a + '.clinker_temp_c')}",
                f"secondary_air_temp_c = {_str(a + '.secondary_air_temp_c')}",
                f"tertiary_air_temp_c = {_str(a + '.tertiary_air_temp_c')}",
                f"nominal_feed_tph = {_fmt(NOMINAL_FEED_TPH)}",
                f"target_specific_heat_kcal_per_kg = {_fmt(TARGET_SHC_KCAL_PER_KG)}",
                f"design_ph_exit_temp_c = {_fmt(DESIGN_PH_EXIT_TEMP_C)}",
                f"design_ph_exit_o2_pct = {_fmt(DESIGN_PH_EXIT_O2_PCT)}",
                f"design_clinker_temp_c = {_fmt(DESIGN_CLINKER_TEMP_C)}",
                'o2_basis = "dry"',
                f"rated_power_kw = {_fmt(KILN_RATED_KW)}",
                *_fuels(a),
            ]
        elif kind == "raw_mill":
            block += _mill(a, ["main_drive_kw", "fan_kw", "separator_kw"], RAW_MILL_RATED_KW)
        elif kind == "coal_mill":
            block += _mill(a, ["main_drive_kw", "fan_kw"], COAL_MILL_RATED_KW)
        elif kind == "cement_mill":
            block += _mill(a, ["main_drive_kw", "separator_kw", "fan_kw"], CEMENT_MILL_RATED_KW)
            block.insert(-2, f"fineness_blaine_cm2_per_g = {_str(a + '.fineness_blaine_cm2_per_g')}")
            block += [
                f"clinker_feed_tph = {_str(a + '.clinker_feeder_tph')}",
                f"mic_moisture_pct = {_fmt(CEMENT_MIC_MOISTURE_PCT)}",
                f'kiln = "kiln{line}"',
            ]
        elif kind == "whr":
            block += [
                f"generator_kw = {_str(a + '.generator_kw')}",
                f"aux_kw = {_str(a + '.aux_kw')}",
                f"aqc_inlet_temp_c = {_str(a + '.aqc_inlet_temp_c')}",
                f"sp_inlet_temp_c = {_str(a + '.sp_inlet_temp_c')}",
                f'kiln = "kiln{line}"',
            ]
        elif kind == "plant":
            block += [
                'power_kw = "plant.incomer_kw"',
                'compressor_kw = "plant.compressor_kw"',
                'production_running = "plant.production_running"',
            ]
        out.append("\n".join(block))
    return out


def _fuels(a: str) -> list[str]:
    """The kiln's fuel mix as ``[[assets.fuels]]`` (docs/kpis.md §9): coal is the marginal fuel the
    kiln trims (priced, so a deviation has a cost); RDF and sawdust run at fixed feeder rates."""
    fuels = [
        [
            'name = "coal"',
            'category = "fossil"',
            f"tph = {_list([a + '.main_burner_coal_tph', a + '.calciner_coal_tph'])}",
            f"ncv_mj_per_kg = {_fmt(COAL_NCV_MJ_PER_KG)}",
            f"co2_kg_per_gj = {_fmt(COAL_CO2_KG_PER_GJ)}",
            "biogenic_fraction = 0.0",
            f"price_per_gj = {_fmt(COAL_PRICE_PER_GJ)}",
            "marginal = true",
        ],
        [
            'name = "rdf"',
            'category = "alternative_fossil"',
            f"tph = {_str(a + '.rdf_tph')}",
            f"ncv_mj_per_kg = {_fmt(RDF_NCV_MJ_PER_KG)}",
            f"co2_kg_per_gj = {_fmt(RDF_CO2_KG_PER_GJ)}",
            f"biogenic_fraction = {_fmt(RDF_BIOGENIC_FRACTION)}",
        ],
        [
            'name = "biomass"',
            'category = "biomass"',
            f"tph = {_str(a + '.biomass_tph')}",
            f"ncv_mj_per_kg = {_fmt(BIOMASS_NCV_MJ_PER_KG)}",
            f"co2_kg_per_gj = {_fmt(BIOMASS_CO2_KG_PER_GJ)}",
            f"biogenic_fraction = {_fmt(BIOMASS_BIOGENIC_FRACTION)}",
        ],
    ]
    out: list[str] = []
    for keys in fuels:
        out += ["", "  [[assets.fuels]]", *("  " + k for k in keys)]
    return out


def _mill(a: str, power: list[str], rated_kw: float) -> list[str]:
    return [
        f"feed_tph = {_str(a + '.feed_tph')}",
        f"power_kw = {_list(a + '.' + p for p in power)}",
        f"running = {_str(a + '.running')}",
        f"rated_power_kw = {_fmt(rated_kw)}",
    ]


def agent_config_toml(
    *,
    modbus_port: int | None,
    opcua_port: int | None,
    host: str = "127.0.0.1",
    site: str = "plant1",
    lines: int = 1,
    db_path: str = "data/kilnwatch.duckdb",
    extra_tags: int = 0,
    extra_tags_via: Literal["modbus", "opcua"] = "modbus",
    unit_id: int = 1,
    poll_interval_ms: int = 1000,
    timeout_ms: int = 1000,
    opcua_mode: Literal["subscribe", "poll"] = "subscribe",
    opcua_security: Security = "None",
    cert_file: str | None = None,
    key_file: str | None = None,
    use_nsu: bool = False,
) -> str:
    """The agent config for a simulator on ``host``; a ``None`` port means that server is off.

    Passes ``agent.config.parse_config(tomllib.loads(text))``.
    """
    if modbus_port is None and opcua_port is None:
        raise ValueError("at least one of modbus_port and opcua_port is needed")
    tagmap = build_tagmap(lines=lines, extra_tags=extra_tags)
    via_opcua: list[Tag] = []
    via_modbus: list[Tag] = []
    for t in tagmap.tags:
        wants_opcua = t.asset_type == "whr" or (t.asset_type == "filler" and extra_tags_via == "opcua")
        if opcua_port is not None and (wants_opcua or modbus_port is None):
            via_opcua.append(t)
        else:
            via_modbus.append(t)
    parts = [
        "# kilnwatch agent configuration for the bundled simulated cement plant.",
        "# Generated by `kilnwatch simulate --print-config` from simulator/tagmap.py; regenerate, do not edit.",
        f"# {lines} line(s), {len(tagmap)} tags: {len(via_modbus)} over Modbus TCP, {len(via_opcua)} over OPC UA.",
        "",
        "[agent]",
        f"site = {_str(site)}",
        f"db_path = {_str(db_path)}",
        "evaluate_every_secs = 10",
        "flush_every_secs = 5",
        "rule_files = []",
        f"currency = {_str(CURRENCY)}",
        f"grid_co2_kg_per_kwh = {_fmt(GRID_CO2_KG_PER_KWH)}",
        f"electricity_price_per_kwh = {_fmt(ELECTRICITY_PRICE_PER_KWH)}",
        "",
        "# [mqtt]                         # optional; without it alerts stay in the DuckDB outbox",
        '# url = "mqtt://127.0.0.1:1883"',
        '# topic_prefix = "kilnwatch"',
    ]
    if via_modbus:
        assert modbus_port is not None
        parts += [
            "",
            "[[sources]]",
            'name = "plant_plc"',
            'type = "modbus"',
            f"host = {_str(host)}",
            f"port = {modbus_port}",
            f"unit_id = {unit_id}",
            f"poll_interval_ms = {poll_interval_ms}",
            f"timeout_ms = {timeout_ms}",
            "",
            "\n\n".join(_modbus_tag(t) for t in via_modbus),
        ]
    if via_opcua:
        parts += [
            "",
            "[[sources]]",
            'name = "whr_opcua"',
            'type = "opcua"',
            f'endpoint = "opc.tcp://{host}:{opcua_port}/kilnwatch"',
            f'mode = "{opcua_mode}"',
            f"poll_interval_ms = {poll_interval_ms}",
            f"timeout_ms = {max(timeout_ms, 2000)}",
            f'security = "{opcua_security}"',
        ]
        if cert_file and key_file:
            parts += [f"cert_file = {_str(cert_file)}", f"key_file = {_str(key_file)}"]
        rendered = []
        for t in via_opcua:
            text = _opcua_tag(t)
            if use_nsu:
                text = text.replace(_str(t.node_id), _str(t.node_id_nsu))
            rendered.append(text)
        parts += ["", "\n\n".join(rendered)]
    for block in _assets(tagmap):
        parts += ["", block]
    return "\n".join(parts) + "\n"
