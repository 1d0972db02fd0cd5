"""The kiln KPIs of docs/kpis.md §9-§11 computed on NumPy arrays, with the same guard as the stages.

Fuels, CSI CO2 parts, the loss split and the money of a deviation arrive in the asset model as
(windows x assets) arrays (rules/fuels.py, rules/losses.py). Turning them into Polars expressions
would double the size of the KPI plan, whose cost is mostly per expression, not per row: measured,
the 16 KPIs added with fuels made every rule tick about 30 % slower at 10,000 tags. Computed here in
a few array operations each, they reach the KPI frame as finished ``<kpi>``, ``<kpi>__reason`` and
``<kpi>__gf`` columns, and the stages (rules/stages.py) only read them.

:func:`guard` is the NumPy twin of ``rules.stages._kpi``: the first matching check gives the reason,
then "no good data" (NaN), "implausible value" (not finite or huge), "partial data" (good fraction
below half, value kept); informational reasons keep the value too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import polars as pl

from rules import constants as C

F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]
Pair = tuple[F64, F64]

#: Reason texts by code; code 0 = no reason.
REASONS: tuple[str | None, ...] = (
    None,
    C.REASON_NO_DATA,
    C.REASON_KILN_STOPPED,
    C.REASON_NO_FUEL,
    C.REASON_IMPLAUSIBLE,
    C.REASON_PARTIAL,
    C.REASON_UPPER_BOUND,
    C.REASON_LOW_CONFIDENCE,
)
_CODE = {r: i for i, r in enumerate(REASONS)}
_REASON_ARRAY = np.array(REASONS, dtype=object)
_KEEP = np.array([r is None or r in C.INFORMATIONAL_REASONS for r in REASONS])

Check = tuple[Bool, str]

_NULLS: dict[tuple[int, pl.DataType], pl.Series] = {}


def nulls(name: str, n: int, dtype: pl.DataType) -> pl.Series:
    """An all-NULL column of ``n`` rows: a cheap copy of a cached one (building it costs ~70 µs, and
    a rule tick needs dozens; Polars copies the buffers on the first write, so scatter is safe)."""
    key = (n, dtype)
    cached = _NULLS.get(key)
    if cached is None:
        if len(_NULLS) > 64:  # window counts vary (backfill chunks): keep the cache small
            _NULLS.clear()
        cached = _NULLS[key] = pl.repeat(None, n, dtype=dtype, eager=True)
    return cached.clone().alias(name)


def guard(value: F64, gf: F64, checks: Sequence[Check]) -> tuple[F64, npt.NDArray[np.uint8], F64]:
    """(value NaN where a reason nulls it, reason codes, good fraction) - see the module docstring."""
    code = np.zeros(value.shape, dtype=np.uint8)
    unset = np.ones(value.shape, dtype=bool)
    rules = [
        *checks,
        (np.isnan(value), C.REASON_NO_DATA),
        (~np.isfinite(value) | (np.abs(np.nan_to_num(value)) > C.MAX_ABS_KPI_VALUE), C.REASON_IMPLAUSIBLE),
        (gf < C.PARTIAL_DATA_GOOD_FRACTION, C.REASON_PARTIAL),
    ]
    for cond, why in rules:
        hit = unset & cond
        code[hit] = _CODE[why]
        unset &= ~hit
    keep = _KEEP[code]
    return np.where(keep, value, np.nan), code, gf


def min_gf(*gfs: F64) -> F64:
    """Smallest good fraction of the inputs, a missing one counting as 0 (``_gf`` of the stages)."""
    out = np.nan_to_num(gfs[0], nan=0.0)
    for g in gfs[1:]:
        out = np.minimum(out, np.nan_to_num(g, nan=0.0))
    return out


def kiln_columns(
    values: Mapping[str, Pair],
    fuel_cols: Mapping[str, Pair],
    loss_cols: Mapping[str, F64],
    params: Mapping[str, F64],
    fuel_kpis: Sequence[str],
    shape: tuple[int, int],
) -> list[pl.Series]:
    """The §9-§11 kiln KPIs as finished columns of the signal frame (rows: window-major, then asset).

    ``params`` are per-asset arrays (A,): ``feed_to_clinker``, ``min_product_tph``,
    ``calcination_co2_kg_per_t``, ``target_specific_heat_kcal_per_kg``, ``nominal_feed_tph``,
    ``_marg_price``, ``_marg_co2``, ``_is_kiln`` (1 for kilns). Rows of assets a KPI does not apply
    to get values that the model's applicability mask drops, and no reason.
    """
    # only the kiln columns are computed (a fifth of the assets on a typical site), then scattered
    kilns = np.flatnonzero(params["_is_kiln"] > 0)
    full_shape = shape
    shape = (shape[0], len(kilns))
    values = {k: (v[:, kilns], g[:, kilns]) for k, (v, g) in values.items()}
    fuel_cols = {k: (v[:, kilns], g[:, kilns]) for k, (v, g) in fuel_cols.items()}
    loss_cols = {k: v[:, kilns] for k, v in loss_cols.items()}
    params = {k: v[kilns] for k, v in params.items()}
    nan = np.full(shape, np.nan)
    feed, feed_gf = values.get("kiln_feed_tph", (nan, nan))
    heat, heat_gf = fuel_cols.get("_heat", (nan, nan))
    with np.errstate(divide="ignore", invalid="ignore"):
        clinker = feed / params["feed_to_clinker"]
        kiln: list[Check] = [
            (np.isnan(feed), C.REASON_NO_DATA),
            (clinker < params["min_product_tph"], C.REASON_KILN_STOPPED),
        ]
        fuel: list[Check] = [(np.isnan(heat), C.REASON_NO_DATA)]
        no_fuel: list[Check] = [*fuel, (heat <= 0.0, C.REASON_NO_FUEL)]
        gf_kf = min_gf(feed_gf, heat_gf)
        gf_h = min_gf(heat_gf)

        def col(name: str) -> F64:
            return fuel_cols[name][0] if name in fuel_cols else nan

        out: dict[str, tuple[F64, npt.NDArray[np.uint8], F64]] = {}
        for name in fuel_kpis:
            v, g = fuel_cols[name]
            out[name] = guard(v, min_gf(g), [])
        # docs/kpis.md §9.2: shares of the kiln's heat input (§9.5: 24.11 % / 11.25 %)
        out["thermal_substitution_pct"] = guard(col("_e_alt") / heat * 100.0, gf_h, no_fuel)
        out["biomass_energy_pct"] = guard(col("_e_bio") / heat * 100.0, gf_h, no_fuel)
        # protocol lines 059c / 071: gross = calcination + fossil CO2 of the fuels, net = gross - fossil
        # CO2 of alternative fuels, biogenic CO2 a memo (§9.5: 796.0 / 760.0 kg/t clinker)
        calc = params["calcination_co2_kg_per_t"]
        fossil, alt = col("_co2_fossil"), col("_co2_alt")
        out["co2_gross_kg_per_t_clinker"] = guard(calc + fossil / clinker, gf_kf, [*kiln, *fuel])
        out["co2_net_kg_per_t_clinker"] = guard(calc + (fossil - alt) / clinker, gf_kf, [*kiln, *fuel])
        out["co2_biogenic_kg_per_t_clinker"] = guard(col("_co2_bio") / clinker, gf_kf, [*kiln, *fuel])
        # docs/kpis.md §10: the loss split (computed in rules/losses.py), NaN where its inputs are bad
        t_gf, o2_gf = values.get("ph_exit_temp_c", (nan, nan))[1], values.get("ph_exit_o2_pct", (nan, nan))[1]
        gf_loss = min_gf(feed_gf, heat_gf, t_gf, o2_gf)
        upper = loss_cols["_loss_co_upper"].astype(bool)
        low = loss_cols["_loss_low_conf"].astype(bool)
        for name, key, extra in (
            ("loss_exit_gas_temp_kcal_per_kg", "_loss_t", []),
            ("loss_excess_air_kcal_per_kg", "_loss_o2", []),
            ("loss_co_kcal_per_kg", "_loss_co", [(upper, C.REASON_UPPER_BOUND)]),
            ("loss_unattributed_kcal_per_kg", "_loss_rest", [(low, C.REASON_LOW_CONFIDENCE)]),
        ):
            out[name] = guard(loss_cols[key], gf_loss, [*kiln, *fuel, *extra])
        tcl_gf = values.get("clinker_temp_c", (nan, nan))[1]
        out["loss_clinker_temp_kcal_per_kg"] = guard(
            loss_cols["_loss_tcl"], min_gf(gf_loss, tcl_gf), [*kiln, *fuel]
        )
        steady = np.where(
            np.isnan(feed), np.nan, (feed >= C.STEADY_FEED_FRACTION * params["nominal_feed_tph"]) * 1.0
        )
        out["steady_state_flag"] = guard(steady, min_gf(feed_gf), [(np.isnan(feed), C.REASON_NO_DATA)])
        # docs/kpis.md §11: (SHC - target) x 4.1868e-3 GJ/t x clinker t/h = heat input - the target's heat
        # at this clinker rate (60 kcal/kg at 208.33 t/h = 52.34 GJ/h), priced and CO2-rated with the
        # marginal fuel
        excess = heat - params["target_specific_heat_kcal_per_kg"] * C.KJ_PER_KCAL / 1000.0 * clinker
        ex = guard(excess, gf_kf, [*kiln, *fuel])
        out["excess_heat_gj_per_h"] = ex
        inherit: list[Check] = [(np.isnan(ex[0]), C.REASON_NO_DATA)]
        out["excess_fuel_cost_per_h"] = guard(ex[0] * params["_marg_price"], ex[2], inherit)
        out["excess_co2_kg_per_h"] = guard(ex[0] * params["_marg_co2"], ex[2], inherit)
        # an inherited reason is the source's, not "no good data"
        for name in ("excess_fuel_cost_per_h", "excess_co2_kg_per_h"):
            v, code, g = out[name]
            out[name] = (v, np.where(np.isnan(ex[0]) & (ex[1] > 0), ex[1], code), g)
    # rows of other assets: NULL and no reason (their KPI rows are never emitted); the reasons are
    # scattered into an all-NULL column instead of building a Python string per row
    series: list[pl.Series] = []
    n = full_shape[0] * full_shape[1]
    for name, (v, code, g) in out.items():
        value, good = np.full(full_shape, np.nan), np.full(full_shape, np.nan)
        codes = np.zeros(full_shape, dtype=np.uint8)
        value[:, kilns], good[:, kilns], codes[:, kilns] = v, g, code
        flat = codes.reshape(-1)
        nz = np.flatnonzero(flat)
        reason = nulls(f"{name}__reason", n, pl.String())
        if nz.size:
            reason = reason.scatter(nz, pl.Series(_REASON_ARRAY[flat[nz]].tolist(), dtype=pl.String))
        series.append(pl.Series(name, value.reshape(-1), dtype=pl.Float64, nan_to_null=True))
        series.append(reason)
        series.append(pl.Series(f"{name}__gf", good.reshape(-1), dtype=pl.Float64, nan_to_null=True))
    return series


#: KPIs of this module (the per-fuel ones are added per site).
ARRAY_KPIS: tuple[str, ...] = (
    "thermal_substitution_pct",
    "biomass_energy_pct",
    "co2_gross_kg_per_t_clinker",
    "co2_net_kg_per_t_clinker",
    "co2_biogenic_kg_per_t_clinker",
    "loss_exit_gas_temp_kcal_per_kg",
    "loss_excess_air_kcal_per_kg",
    "loss_co_kcal_per_kg",
    "loss_unattributed_kcal_per_kg",
    "loss_clinker_temp_kcal_per_kg",
    "steady_state_flag",
    "excess_heat_gj_per_h",
    "excess_fuel_cost_per_h",
    "excess_co2_kg_per_h",
)
