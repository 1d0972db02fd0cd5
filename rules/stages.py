"""The KPI formulas as Polars expression stages (docs/kpis.md §1-§5, §8): pure expression builders.

:func:`stage_a` computes each asset's KPIs from its own signal roles; :func:`stage_c` the
cross-asset ones (mill power allocated to clinker, WHR credited to its kiln) once the linked
figures are joined onto each row (rules/asset_model.py does the join). Every KPI comes as three
columns ``<kpi>``, ``<kpi>__reason``, ``<kpi>__gf`` and passes through the same guard
(:func:`_kpi`): NULL with a reason below a minimum denominator or without good data, never inf or NaN.

Separate from the catalogue (rules/catalogue.py: names and units, no Polars expressions) and from
the model (rules/asset_model.py: per-site data) so the formulas can be read, and checked against
docs/kpis.md, in one place. The stages are built once per model, not per evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import polars as pl

from rules import constants as C
from rules.catalogue import MILLS

#: Engine for the per-window plans: tens to thousands of rows, where the in-memory engine's lower fixed
#: cost wins (about 3x faster than the default streaming engine for a one-window KPI frame).
SMALL_ENGINE: Final = "in-memory"


def _c(name: str) -> pl.Expr:
    return pl.col(name)


def _gf(*roles: str) -> pl.Expr:
    return pl.min_horizontal(*[pl.col(f"{r}__gf").fill_null(0.0) for r in roles])


Check = tuple[pl.Expr, str | pl.Expr]


@dataclass(frozen=True, slots=True)
class _KpiExprs:
    """A KPI in three passes: raw value and gf, then its reason, then the value NULLed by the reason.

    Materialising the raw value first keeps every expression tree small (no formula is repeated
    inside the reason), which keeps Polars' planning time per evaluation low.
    """

    raw: tuple[pl.Expr, ...]
    reason: pl.Expr
    final: pl.Expr


def _kpi(name: str, value: pl.Expr, checks: Sequence[Check], gf: pl.Expr) -> _KpiExprs:
    """``name``, ``name__reason``, ``name__gf``: the value is NULL whenever a reason applies.

    ``checks`` are (condition, reason) in priority order; a NULL condition never matches. Any NULL
    left over is "no good data"; a non-finite or huge value is "implausible value"; a valid value
    computed from a window with little good data is kept and flagged "partial data".
    """
    v, g = pl.col(f"_v_{name}"), pl.col(f"{name}__gf")
    ok = v.is_finite() & (v.abs() <= C.MAX_ABS_KPI_VALUE)
    rules: list[tuple[pl.Expr, pl.Expr]] = [
        (cond, pl.lit(why, dtype=pl.String) if isinstance(why, str) else why) for cond, why in checks
    ]
    rules += [
        (v.is_null(), pl.lit(C.REASON_NO_DATA)),
        (~ok, pl.lit(C.REASON_IMPLAUSIBLE)),
        (g < C.PARTIAL_DATA_GOOD_FRACTION, pl.lit(C.REASON_PARTIAL)),
    ]
    reason: pl.Expr = pl.lit(None, dtype=pl.String)
    for cond, why in reversed(rules):
        reason = pl.when(cond).then(why).otherwise(reason)
    r = pl.col(f"{name}__reason")
    return _KpiExprs(
        raw=(value.cast(pl.Float64).alias(f"_v_{name}"), gf.cast(pl.Float64).alias(f"{name}__gf")),
        reason=reason.alias(f"{name}__reason"),
        final=pl.when(r.is_null() | r.is_in(C.INFORMATIONAL_REASONS)).then(v).otherwise(None).alias(name),
    )


def _passes(items: Sequence[_KpiExprs | pl.Expr]) -> list[list[pl.Expr]]:
    """``with_columns`` passes for a group of KPIs (and helper columns) that do not read each other."""
    raw = [e for i in items for e in (i.raw if isinstance(i, _KpiExprs) else (i,))]
    kpis = [i for i in items if isinstance(i, _KpiExprs)]
    return [raw, [k.reason for k in kpis], [k.final for k in kpis]]


def _inherit(*kpis: str) -> list[Check]:
    """A KPI computed from other KPIs is NULL for their reasons."""
    return [(_c(k).is_null(), _c(f"{k}__reason")) for k in kpis]


def stage_a() -> list[list[pl.Expr]]:
    """Per-asset KPIs from the asset's own roles (docs/kpis.md §1, §2, §4, §5, §8, §9). Several passes.

    The kiln KPIs of fuels, CSI CO2, the loss split and money (docs/kpis.md §9-§11) arrive finished
    in the signal frame (rules/kiln_arrays.py); ``co2_kg_per_t_clinker`` reads the gross CO2 there.
    """
    feed, f_ratio = _c("kiln_feed_tph"), _c("feed_to_clinker")
    power, mill_feed, min_tph = _c("power_kw"), _c("feed_tph"), _c("min_product_tph")
    is_kiln = _c("type") == "kiln"
    clinker = feed / f_ratio  # docs/kpis.md §1: clinker from kiln feed, m_cl = m_feed / F
    kiln_checks: list[Check] = [
        (feed.is_null(), C.REASON_NO_DATA),
        (clinker < min_tph, C.REASON_KILN_STOPPED),
    ]
    heat_col = _c("_heat")
    fuel_checks: list[Check] = [(heat_col.is_null(), C.REASON_NO_DATA)]
    # sum over the kiln's fuels of t/h x MJ/kg = GJ/h (rules/fuels.py; docs/kpis.md §1 worked example 1:
    # 17 x 25 = 425 GJ/h; §9.5: 510 + 96 + 42 + 24 = 672 GJ/h)
    heat = heat_col
    shc = heat * 1000.0 / clinker  # MJ/t clinker
    o2_out, o2_in = _c("ph_exit_o2_pct"), _c("kiln_inlet_o2_pct")
    gen, aux = _c("generator_kw"), _c("aux_kw")
    first: list[_KpiExprs | pl.Expr] = [
        _kpi("clinker_tph", clinker, [], _gf("kiln_feed_tph")),
        _kpi("heat_input_gj_per_h", heat, fuel_checks, _gf("_heat")),
        _kpi(
            "specific_heat_mj_per_t_clinker",
            shc,
            [*kiln_checks, *fuel_checks],
            _gf("kiln_feed_tph", "_heat"),
        ),
        # docs/kpis.md §9.2: clinker factor on a dry basis, the non-clinker components' moisture
        # removed (§9.5: 150 clinker of 201.3 wet / 199.996 dry t/h -> 75.00 %)
        _kpi(
            "clinker_factor_pct",
            _c("clinker_feed_tph")
            / (
                _c("clinker_feed_tph")
                + (mill_feed - _c("clinker_feed_tph")) * (1.0 - _c("mic_moisture_pct") / 100.0)
            )
            * 100.0,
            [
                (mill_feed.is_null() | _c("clinker_feed_tph").is_null(), C.REASON_NO_DATA),
                (mill_feed < min_tph, C.REASON_MILL_IDLE),
                (_c("clinker_feed_tph") > mill_feed * 1.001, C.REASON_IMPLAUSIBLE),
            ],
            _gf("feed_tph", "clinker_feed_tph"),
        ),
        _kpi(
            "specific_power_kwh_per_t",
            pl.when(is_kiln).then(power / clinker).otherwise(power / mill_feed),
            [
                (is_kiln & feed.is_null(), C.REASON_NO_DATA),
                (is_kiln & (clinker < min_tph), C.REASON_KILN_STOPPED),
                (~is_kiln & mill_feed.is_null(), C.REASON_NO_DATA),
                (~is_kiln & (mill_feed < min_tph), C.REASON_MILL_IDLE),
                (power.is_null(), C.REASON_NO_DATA),
            ],
            pl.when(is_kiln).then(_gf("power_kw", "kiln_feed_tph")).otherwise(_gf("power_kw", "feed_tph")),
        ),
        _kpi(
            "preheater_false_air_pct",
            # docs/kpis.md §8: % of inlet gas = (O2_out - O2_in) / (21 - O2_out) x 100 (ex. 2: 15.43 %)
            (o2_out - o2_in) / (C.AIR_O2_PCT - o2_out) * 100.0,
            [
                (o2_out.is_null() | o2_in.is_null(), C.REASON_NO_DATA),
                (C.AIR_O2_PCT - o2_out < C.MIN_O2_MARGIN_PCT, C.REASON_O2_AT_AIR),
            ],
            _gf("ph_exit_o2_pct", "kiln_inlet_o2_pct"),
        ),
        _kpi("whr_net_kw", gen - aux, [], _gf("generator_kw", "aux_kw")),  # docs/kpis.md §5
        _kpi(
            "compressor_share_pct",
            _c("compressor_kw") / power * 100.0,
            [
                (_c("compressor_kw").is_null() | power.is_null(), C.REASON_NO_DATA),
                (power < C.MIN_PLANT_POWER_KW, C.REASON_PLANT_STOPPED),
            ],
            _gf("compressor_kw", "power_kw"),
        ),
        _kpi(
            "fineness_blaine_cm2_per_g__kpi",
            _c("fineness_blaine_cm2_per_g"),
            [],
            _gf("fineness_blaine_cm2_per_g"),
        ),
        _kpi("power_kw__kpi", power, [], _gf("power_kw")),
        _kpi("feed_tph__kpi", mill_feed, [], _gf("feed_tph")),
        # helpers for the cross-asset pass
        clinker.alias("_clinker_raw"),
        pl.when(is_kiln)
        .then(clinker >= min_tph)
        .when(_c("type").is_in(MILLS))
        .then(mill_feed >= min_tph)
        .otherwise(None)
        .alias("_producing"),
    ]
    mj = _c("specific_heat_mj_per_t_clinker")
    second: list[_KpiExprs | pl.Expr] = [
        # docs/kpis.md §1: 1 kcal/kg = 4.1868 MJ/t (worked example 1: 3778 MJ/t -> 902.3 kcal/kg)
        _kpi(
            "specific_heat_kcal_per_kg_clinker",
            mj / C.KJ_PER_KCAL,
            _inherit("specific_heat_mj_per_t_clinker"),
            _c("specific_heat_mj_per_t_clinker__gf"),
        ),
        # docs/kpis.md §3: fuel term = MJ/t / 29.3076 MJ/kgce (worked example 1: 128.9 kgce/t)
        _kpi(
            "clinker_coal_kgce_per_t",
            mj / C.MJ_PER_KGCE,
            _inherit("specific_heat_mj_per_t_clinker"),
            _c("specific_heat_mj_per_t_clinker__gf"),
        ),
        # docs/kpis.md §4: calcination EF + fuel GJ/t x fuel EF kg CO2/GJ (worked example 1: 882.4 kg/t);
        # with several fuels the same as the protocol's gross CO2 (docs/kpis.md §9)
        _kpi(
            "co2_kg_per_t_clinker",
            _c("co2_gross_kg_per_t_clinker"),
            _inherit("co2_gross_kg_per_t_clinker"),
            _c("co2_gross_kg_per_t_clinker__gf"),
        ),
    ]
    return [*_passes(first), *_passes(second)]


def stage_c(net_whr: bool) -> list[list[pl.Expr]]:
    """Cross-asset KPIs, after mills, WHR and kiln figures were joined onto each row (docs/kpis.md §2, §3, §5)."""
    is_kiln = _c("type") == "kiln"
    cl = _c("_clinker_raw")
    min_tph = _c("min_product_tph")
    f_ratio = _c("feed_to_clinker")
    has_raw, has_coal, has_whr = _c("_has_raw"), _c("_has_coal"), _c("_has_whr")
    raw_kw, raw_feed, coal_kw, coal_feed = _c("_raw_kw"), _c("_raw_feed"), _c("_coal_kw"), _c("_coal_feed")
    # docs/kpis.md §2: clinker comprehensive electricity allocates raw-meal grinding via F (kWh/t raw meal x
    # t raw meal per t clinker) and coal grinding via the coal/clinker ratio. A stopped mill's standby
    # draw is charged per t clinker as measured.
    raw_part = (
        pl.when(~has_raw)
        .then(0.0)
        .when(raw_feed >= _c("_raw_min_feed"))
        .then(raw_kw / raw_feed * f_ratio)
        .otherwise(raw_kw / cl)
    )
    coal_part = (
        pl.when(~has_coal)
        .then(0.0)
        .when((coal_feed >= _c("_coal_min_feed")) & _c("fuel_tph").is_not_null())
        .then(coal_kw / coal_feed * _c("fuel_tph") / cl)
        .otherwise(coal_kw / cl)
    )
    whr_part = pl.when(has_whr).then(_c("_whr_net_kw") / cl).otherwise(0.0) if net_whr else pl.lit(0.0)
    power_checks: list[Check] = [
        (_c("kiln_feed_tph").is_null(), C.REASON_NO_DATA),
        (cl < min_tph, C.REASON_KILN_STOPPED),
        (_c("power_kw").is_null(), C.REASON_NO_DATA),
        (has_raw & (raw_kw.is_null() | raw_feed.is_null()), C.REASON_NO_DATA),
        (has_coal & (coal_kw.is_null() | coal_feed.is_null()), C.REASON_NO_DATA),
    ]
    if net_whr:
        power_checks.append((has_whr & _c("_whr_net_kw").is_null(), C.REASON_NO_DATA))
    power_gf = pl.min_horizontal(
        _gf("kiln_feed_tph", "power_kw"),
        pl.when(has_raw).then(_c("_raw_gf").fill_null(0.0)).otherwise(1.0),
        pl.when(has_coal).then(_c("_coal_gf").fill_null(0.0)).otherwise(1.0),
        pl.when(has_whr & pl.lit(net_whr)).then(_c("_whr_gf").fill_null(0.0)).otherwise(1.0),
    )
    kcl, kmin = _c("_k_clinker"), _c("_k_min")
    whr_checks: list[Check] = [(kcl.is_null(), C.REASON_NO_DATA), (kcl < kmin, C.REASON_KILN_STOPPED)]
    first: list[_KpiExprs | pl.Expr] = [
        _kpi(
            "clinker_power_kwh_per_t",
            pl.when(is_kiln).then(_c("power_kw") / cl + raw_part + coal_part - whr_part),
            power_checks,
            power_gf,
        ),
        # docs/kpis.md §5: gross and net WHR generation per t of the credited kiln's clinker (ex. 2: 41.28 / 37.92)
        _kpi(
            "whr_kwh_per_t_clinker",
            _c("generator_kw") / kcl,
            whr_checks,
            pl.min_horizontal(_gf("generator_kw"), _c("_k_gf").fill_null(0.0)),
        ),
        _kpi(
            "whr_net_kwh_per_t_clinker",
            _c("whr_net_kw") / kcl,
            [*whr_checks, *_inherit("whr_net_kw")],
            pl.min_horizontal(_gf("generator_kw", "aux_kw"), _c("_k_gf").fill_null(0.0)),
        ),
    ]
    k_co2 = _c("_k_co2_gross")
    second: list[_KpiExprs | pl.Expr] = [
        # docs/kpis.md §9.2: clinker factor x the kiln's gross CO2 per t clinker, direct CO2 only
        # (§9.5: 0.75 x 796.0 = 597.0 kg/t cement)
        _kpi(
            "co2_gross_kg_per_t_cement",
            _c("clinker_factor_pct") / 100.0 * k_co2,
            [*_inherit("clinker_factor_pct"), (k_co2.is_null(), C.REASON_NO_DATA)],
            pl.min_horizontal(_c("clinker_factor_pct__gf"), _c("_k_co2_gross_gf").fill_null(0.0)),
        ),
        # docs/kpis.md §3: comprehensive = fuel term + electricity x 0.1229 kgce/kWh (ex. 1: 128.9 + 6.760)
        _kpi(
            "clinker_energy_kgce_per_t",
            _c("clinker_coal_kgce_per_t") + _c("clinker_power_kwh_per_t") * C.KGCE_PER_KWH,
            _inherit("clinker_coal_kgce_per_t", "clinker_power_kwh_per_t"),
            pl.min_horizontal(_c("clinker_coal_kgce_per_t__gf"), _c("clinker_power_kwh_per_t__gf")),
        ),
    ]
    return [*_passes(first), *_passes(second)]
