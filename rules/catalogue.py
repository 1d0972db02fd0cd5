"""The KPI catalogue and the names rules may use: what kilnwatch computes, in which unit, for which assets.

Owns the vocabulary (signal roles per asset type, asset parameters, external names), the KPI
catalogue :data:`KPIS` (name, unit, asset types, needed roles, formula as text, docs/kpis.md
section), unit lookup, and the layout of a stored ``kpi`` row (docs/auditors.md).

Kept apart from the computation (rules/stages.py builds the Polars expressions, rules/asset_model.py
applies them to a site) because rule-pack validation and the agent's M&V store need the names, units
and row layout without the evaluation machinery. Formulas: docs/kpis.md; roles: docs/configuration.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from rules.assets import TAG_ROLES

# ------------------------------------------------------------------------------------ vocabulary
#: The NCV role names a tag in the config (``fuel_ncv_tag``) but is a value in MJ/kg to the KPIs.
NCV = "fuel_ncv_mj_per_kg"

#: Signal roles as seen by KPIs and rules (docs/configuration.md), by asset type.
ROLES_BY_TYPE: dict[str, tuple[str, ...]] = {
    t: tuple(NCV if r == "fuel_ncv_tag" else r for r in roles) for t, roles in TAG_ROLES.items()
}
ALL_ROLES: tuple[str, ...] = tuple(dict.fromkeys(r for rs in ROLES_BY_TYPE.values() for r in rs))


def role_aggregation(role: str) -> str:
    """How the tags of a role combine: flows and powers add up (docs/configuration.md); temperatures,
    concentrations and fineness of several measuring points are averaged; run flags take the max."""
    if role.endswith(("_tph", "_kw")):
        return "sum"
    if role in ("running", "production_running"):
        return "max"
    return "mean"


#: Asset parameters usable in rule conditions (None on an asset = rule not applicable to it).
PARAMS: tuple[str, ...] = (
    "feed_to_clinker",
    "nominal_feed_tph",
    "nominal_clinker_tph",
    "target_specific_heat_kcal_per_kg",
    "design_ph_exit_temp_c",
    "design_ph_exit_o2_pct",
    "design_clinker_temp_c",
    "mic_moisture_pct",
    "rated_power_kw",
    "typical_specific_power_kwh_per_t",
    "fuel_co2_kg_per_gj",
    "calcination_co2_kg_per_t",
    "min_product_tph",
)

#: Names fed from outside the sample stream (:meth:`rules.engine.RuleEngine.set_external`), NULL
#: until fed: ``baseline_deviation_pct`` = 100·(actual − expected)/expected of the asset's live M&V
#: baseline over the last hour (docs/kpis.md §8 mill inefficiency: kWh/t > EnB prediction × 1.10).
#: ``excess_energy_kwh_per_h`` = energy above that baseline per hour, and its money
#: (``excess_power_cost_per_h``, × electricity price) and CO2 (``excess_power_co2_kg_per_h``, × grid
#: factor) (docs/kpis.md §11).
EXTERNAL: tuple[str, ...] = (
    "baseline_deviation_pct",
    "excess_energy_kwh_per_h",
    "excess_power_cost_per_h",
    "excess_power_co2_kg_per_h",
)


@dataclass(frozen=True, slots=True)
class KpiSpec:
    """One KPI: name (unit in the name), unit label, asset types, the roles it needs, its formula."""

    name: str
    unit: str
    types: tuple[str, ...]
    needs: tuple[str, ...]
    formula: str
    ref: str
    #: Roles the credited kiln must have (WHR KPIs per t of that kiln's clinker).
    kiln_needs: tuple[str, ...] = ()
    #: Asset parameters that must be configured (a target, design values, a price).
    params: tuple[str, ...] = ()
    #: At least one of these roles must be configured (the CO loss: PH exit or kiln inlet CO).
    any_of: tuple[str, ...] = ()
    #: Site settings that must be configured (``grid_co2_kg_per_kwh``, ``electricity_price_per_kwh``).
    site: tuple[str, ...] = ()


#: Parameters the loss attribution needs: the target (= design specific heat) and the design state.
LOSS_PARAMS: tuple[str, ...] = (
    "target_specific_heat_kcal_per_kg",
    "design_ph_exit_temp_c",
    "design_ph_exit_o2_pct",
)

#: Asset types that grind (own product = mill feed; docs/kpis.md §2).
MILLS: tuple[str, ...] = ("raw_mill", "coal_mill", "cement_mill")

KPIS: tuple[KpiSpec, ...] = (
    KpiSpec("clinker_tph", "t/h", ("kiln",), ("kiln_feed_tph",), "kiln feed / feed_to_clinker", "§1"),
    KpiSpec("heat_input_gj_per_h", "GJ/h", ("kiln",), ("fuel_tph",), "sum of fuel t/h x NCV MJ/kg", "§1"),
    KpiSpec(
        "specific_heat_mj_per_t_clinker",
        "MJ/t",
        ("kiln",),
        ("kiln_feed_tph", "fuel_tph"),
        "heat input x 1000 / clinker t/h",
        "§1",
    ),
    KpiSpec(
        "specific_heat_kcal_per_kg_clinker",
        "kcal/kg",
        ("kiln",),
        ("kiln_feed_tph", "fuel_tph"),
        "specific heat MJ/t / 4.1868",
        "§1",
    ),
    KpiSpec(
        "clinker_coal_kgce_per_t",
        "kgce/t",
        ("kiln",),
        ("kiln_feed_tph", "fuel_tph"),
        "specific heat MJ/t / 29.3076 (GB 16780 fuel term)",
        "§1, §3",
    ),
    KpiSpec(
        "clinker_power_kwh_per_t",
        "kWh/t",
        ("kiln",),
        ("kiln_feed_tph", "power_kw"),
        "(kiln kW + raw-mill kWh/t x F + coal-mill kWh/t x coal/clinker - WHR net kW) / clinker",
        "§2, §3",
    ),
    KpiSpec(
        "clinker_energy_kgce_per_t",
        "kgce/t",
        ("kiln",),
        ("kiln_feed_tph", "fuel_tph", "power_kw"),
        "clinker coal kgce/t + clinker power kWh/t x 0.1229",
        "§3",
    ),
    KpiSpec(
        "co2_kg_per_t_clinker",
        "kg/t",
        ("kiln",),
        ("kiln_feed_tph", "fuel_tph"),
        "calcination EF (525, or 7.85 CaO% + 10.92 MgO%) + specific heat GJ/t x fuel EF kg/GJ",
        "§4",
    ),
    KpiSpec(
        "preheater_false_air_pct",
        "%",
        ("kiln",),
        ("ph_exit_o2_pct", "kiln_inlet_o2_pct"),
        "(O2 PH exit - O2 kiln inlet) / (21 - O2 PH exit) x 100, % of inlet gas",
        "§8",
    ),
    KpiSpec(
        "specific_power_kwh_per_t",
        "kWh/t",
        ("kiln", *MILLS),
        ("power_kw",),
        "power kW / own product t/h (clinker for kilns, mill feed for mills)",
        "§2",
    ),
    KpiSpec("power_kw", "kW", ("kiln", *MILLS, "plant"), ("power_kw",), "sum of drive powers", "§2"),
    KpiSpec("feed_tph", "t/h", MILLS, ("feed_tph",), "mill feed (own product)", "§2"),
    KpiSpec(
        "fineness_blaine_cm2_per_g",
        "cm2/g",
        ("cement_mill",),
        ("fineness_blaine_cm2_per_g",),
        "Blaine fineness (window mean)",
        "§6, §7",
    ),
    KpiSpec("whr_net_kw", "kW", ("whr",), ("generator_kw", "aux_kw"), "generator kW - WHR aux kW", "§5"),
    KpiSpec(
        "whr_kwh_per_t_clinker",
        "kWh/t",
        ("whr",),
        ("generator_kw",),
        "generator kW / credited kiln's clinker t/h (gross)",
        "§5",
        kiln_needs=("kiln_feed_tph",),
    ),
    KpiSpec(
        "whr_net_kwh_per_t_clinker",
        "kWh/t",
        ("whr",),
        ("generator_kw", "aux_kw"),
        "WHR net kW / credited kiln's clinker t/h",
        "§5",
        kiln_needs=("kiln_feed_tph",),
    ),
    KpiSpec(
        "compressor_share_pct",
        "%",
        ("plant",),
        ("power_kw", "compressor_kw"),
        "compressor kW / plant kW x 100",
        "§8",
    ),
    # ---- fuels and CSI/GCCA protocol CO2 (docs/kpis.md §9); per-fuel ``fuel_<name>_gj_per_h``
    # KPIs are added per site by the asset model (rules/fuels.py)
    KpiSpec(
        "thermal_substitution_pct",
        "%",
        ("kiln",),
        ("fuel_tph",),
        "heat of alternative fossil/mixed + biomass fuels / kiln heat input x 100",
        "§9",
    ),
    KpiSpec(
        "biomass_energy_pct",
        "%",
        ("kiln",),
        ("fuel_tph",),
        "sum of fuel heat x biogenic share / kiln heat input x 100",
        "§9",
    ),
    KpiSpec(
        "co2_gross_kg_per_t_clinker",
        "kg/t",
        ("kiln",),
        ("kiln_feed_tph", "fuel_tph"),
        "calcination + fossil CO2 of all kiln fuels (biogenic share excluded) / clinker",
        "§9",
    ),
    KpiSpec(
        "co2_net_kg_per_t_clinker",
        "kg/t",
        ("kiln",),
        ("kiln_feed_tph", "fuel_tph"),
        "gross - fossil CO2 of alternative fuels, per t clinker",
        "§9",
    ),
    KpiSpec(
        "co2_biogenic_kg_per_t_clinker",
        "kg/t",
        ("kiln",),
        ("kiln_feed_tph", "fuel_tph"),
        "biogenic CO2 of the fuels per t clinker (memo item, in neither gross nor net)",
        "§9",
    ),
    # ---- loss attribution (docs/kpis.md §10): deviation from target = sum of the five
    KpiSpec(
        "loss_exit_gas_temp_kcal_per_kg",
        "kcal/kg",
        ("kiln",),
        ("kiln_feed_tph", "fuel_tph", "ph_exit_temp_c"),
        "Shapley share of the preheater exit temperature (with fuel feedback)",
        "§10",
        params=LOSS_PARAMS,
    ),
    KpiSpec(
        "loss_excess_air_kcal_per_kg",
        "kcal/kg",
        ("kiln",),
        ("kiln_feed_tph", "fuel_tph", "ph_exit_o2_pct"),
        "Shapley share of the preheater exit O2 (excess and false air)",
        "§10",
        params=LOSS_PARAMS,
    ),
    KpiSpec(
        "loss_co_kcal_per_kg",
        "kcal/kg",
        ("kiln",),
        ("kiln_feed_tph", "fuel_tph"),
        "Shapley share of CO (PH exit; kiln inlet CO = upper bound)",
        "§10",
        params=LOSS_PARAMS,
        any_of=("ph_exit_co_pct", "kiln_inlet_co_pct"),
    ),
    KpiSpec(
        "loss_clinker_temp_kcal_per_kg",
        "kcal/kg",
        ("kiln",),
        ("kiln_feed_tph", "fuel_tph", "clinker_temp_c"),
        "Shapley share of the clinker temperature at the cooler exit",
        "§10",
        params=(*LOSS_PARAMS, "design_clinker_temp_c"),
    ),
    KpiSpec(
        "loss_unattributed_kcal_per_kg",
        "kcal/kg",
        ("kiln",),
        ("kiln_feed_tph", "fuel_tph"),
        "measured - modelled specific heat (shell, cooler air, feed chemistry, weigher/NCV error)",
        "§10",
        params=LOSS_PARAMS,
    ),
    KpiSpec(
        "steady_state_flag",
        "flag",
        ("kiln",),
        ("kiln_feed_tph", "fuel_tph"),
        "1 when the window's kiln feed is at least 80 % of nominal and no 1-min window from 2 h before it "
        "was below that, stopped or without data (rules/steady.py), else 0 (informs the loss split)",
        "§10",
        params=("nominal_feed_tph",),
    ),
    # ---- money and CO2 of the deviation from target (docs/kpis.md §11)
    KpiSpec(
        "excess_heat_gj_per_h",
        "GJ/h",
        ("kiln",),
        ("kiln_feed_tph", "fuel_tph"),
        "(specific heat - target) kcal/kg x 4.1868e-3 x clinker t/h",
        "§11",
        params=("target_specific_heat_kcal_per_kg",),
    ),
    KpiSpec(
        "excess_fuel_cost_per_h",
        "/h",
        ("kiln",),
        ("kiln_feed_tph", "fuel_tph"),
        "excess heat GJ/h x marginal fuel price per GJ",
        "§11",
        params=("target_specific_heat_kcal_per_kg", "_marg_price"),
    ),
    KpiSpec(
        "excess_co2_kg_per_h",
        "kg/h",
        ("kiln",),
        ("kiln_feed_tph", "fuel_tph"),
        "excess heat GJ/h x marginal fuel CO2 factor x (1 - biogenic share)",
        "§11",
        params=("target_specific_heat_kcal_per_kg", "_marg_co2"),
    ),
    # ---- clinker factor (docs/kpis.md §9)
    KpiSpec(
        "clinker_factor_pct",
        "%",
        ("cement_mill",),
        ("feed_tph", "clinker_feed_tph"),
        "clinker / (clinker + (feed - clinker) x (1 - MIC moisture)) x 100, dry basis",
        "§9",
    ),
    KpiSpec(
        "co2_gross_kg_per_t_cement",
        "kg/t",
        ("cement_mill",),
        ("feed_tph", "clinker_feed_tph"),
        "clinker factor x the kiln's gross CO2 per t clinker (direct only)",
        "§9",
        kiln_needs=("kiln_feed_tph", "fuel_tph"),
    ),
)
KPI_BY_NAME: dict[str, KpiSpec] = {k.name: k for k in KPIS}
KPI_UNITS: dict[str, str] = {k.name: k.unit for k in KPIS}
KPI_NAMES: tuple[str, ...] = tuple(KPI_BY_NAME)

#: Names the rule engine may read on a WHR asset, taken from the credited kiln.
WHR_INHERITED: tuple[str, ...] = ("clinker_tph", "kiln_feed_tph", "nominal_feed_tph", "nominal_clinker_tph")
#: Every name a rule condition may use.
VOCABULARY: frozenset[str] = (
    frozenset(ALL_ROLES) | frozenset(KPI_NAMES) | frozenset(PARAMS) | frozenset(EXTERNAL)
)


def vocabulary_for(asset_type: str) -> frozenset[str]:
    """Names that can exist on an asset of this type (rule load check when ``asset_type`` is given)."""
    names = set(ROLES_BY_TYPE[asset_type]) | {k.name for k in KPIS if asset_type in k.types}
    params = {
        "kiln": {p for p in PARAMS if p not in ("typical_specific_power_kwh_per_t", "mic_moisture_pct")},
        "whr": {"nominal_feed_tph", "nominal_clinker_tph"},
        "plant": {"rated_power_kw"},
    }.get(
        asset_type,
        {"nominal_feed_tph", "rated_power_kw", "typical_specific_power_kwh_per_t", "min_product_tph"},
    )
    if asset_type == "cement_mill":
        params = params | {"mic_moisture_pct"}
    names |= params | set(EXTERNAL)
    if asset_type == "whr":
        names |= set(WHR_INHERITED)
    return frozenset(names)


_UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_kcal_per_kg", "kcal/kg"),
    ("_mj_per_kg", "MJ/kg"),
    ("_kwh_per_t", "kWh/t"),
    ("_kwh_per_h", "kWh/h"),
    ("_kg_per_h", "kg/h"),
    ("_gj_per_h", "GJ/h"),
    ("_cm2_per_g", "cm2/g"),
    ("_kg_per_gj", "kg/GJ"),
    ("_kg_per_t", "kg/t"),
    ("_temp_c", "°C"),
    ("_tph", "t/h"),
    ("_kw", "kW"),
    ("_pct", "%"),
)


def unit_of(name: str, tag_units: dict[str, str] | None = None, tags: Sequence[str] = ()) -> str:
    """Unit of a KPI, role or parameter: the KPI catalogue, the tag's configured unit, or the suffix."""
    if name in KPI_UNITS:
        return KPI_UNITS[name]
    if tag_units:
        for t in tags:
            if tag_units.get(t):
                return tag_units[t]
    for suffix, unit in _UNIT_SUFFIXES:
        if name.endswith(suffix):
            return unit
    return ""


# ------------------------------------------------------------------------------------ stored rows
#: Columns of a long ``kpi`` row as stored in the ``kpi`` table (docs/auditors.md).
KPI_ROW_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Datetime("us", "UTC"),
    "site": pl.String(),
    "asset": pl.String(),
    "kpi": pl.String(),
    "value": pl.Float64(),
    "unit": pl.String(),
    "window_secs": pl.Int32(),
    "good_fraction": pl.Float64(),
    "reason": pl.String(),
}


#: KPIs that pass a role through under the role's own name keep their value column as ``<name>__kpi``.
PASSTHROUGH_KPIS: frozenset[str] = frozenset({"power_kw", "feed_tph", "fineness_blaine_cm2_per_g"})


def kpi_column(name: str) -> str:
    """Column of a KPI's value in the KPI frame (roles keep their own name)."""
    return f"{name}__kpi" if name in PASSTHROUGH_KPIS else name


def empty_kpi_rows() -> pl.DataFrame:
    """No ``kpi`` rows, with the stored columns and types."""
    return pl.DataFrame(schema=KPI_ROW_SCHEMA)
