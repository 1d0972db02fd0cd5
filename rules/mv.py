"""Measurement & verification: regression energy baselines, avoided energy and CUSUM (docs/kpis.md §7).

Pure functions over numpy arrays and Polars frames; the DuckDB side (aggregation of periods,
storage) lives in :mod:`agent.mv_store`.

Conventions, pinned here because the literature differs (docs/kpis.md §7):

* Model: ordinary least squares with an intercept, ``y = b0 + b1*x1 + ... + bk*xk``.
* ``p`` = number of fitted parameters **including the intercept** (k + 1); ``n - p`` is the
  residual degrees of freedom used for the standard errors, CV(RMSE) and NMBE.
* Residual = measured − predicted (``y - ŷ``).
* CV(RMSE) = 100·√(Σ(y−ŷ)²/(n−p)) / ȳ; NMBE = 100·Σ(y−ŷ) / ((n−p)·ȳ) (ASHRAE Guideline 14).
  In-sample OLS with an intercept gives NMBE = 0, so NMBE is only informative out of sample.
* Savings are "up is good": avoided = expected − actual, so a positive value is energy saved and a
  rising CUSUM (cumulative avoided energy) means persistent savings.
* ``baseline_deviation_pct`` = 100·(actual − expected)/expected has the *opposite* sign: it is
  positive when the asset uses more than its baseline, which is what an alert rule tests.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from common.values import to_utc
from rules.constants import MIN_PRODUCT_TPH

FloatArray = npt.NDArray[np.float64]
Granularity = Literal["hour", "day", "month"]
AggKind = Literal["integrate", "counter", "mean"]

GRANULARITIES: tuple[str, ...] = ("hour", "day", "month")

# EnPI Lite "Valid Model Requirements" (docs/kpis.md §7 [ENPI]).
ENPI_MODEL_P_MAX = 0.10  # overall F-test p-value
ENPI_VARIABLE_P_MAX = 0.20  # every variable
ENPI_BEST_VARIABLE_P_MAX = 0.10  # at least one variable
ENPI_R2_MIN = 0.50
#: Reporting-period driver check: within the baseline range or within mean ± 3 SD (docs/kpis.md §7 [ENPI]).
DRIVER_SD_LIMIT = 3.0

#: Too few periods for a trustworthy fit: fewer than a year of months, or fewer than this many points
#: per driver (rule of thumb, [U] in docs/kpis.md; a warning, not an error).
MIN_POINTS = 12
MIN_POINTS_PER_DRIVER = 10

#: ASHRAE Guideline 14 calibration criteria, (CV(RMSE) %, |NMBE| %) by data granularity (docs/kpis.md §7).
#: G14 defines monthly and hourly criteria only; daily data is held to the hourly ones.
G14_LIMITS: dict[str, tuple[float, float]] = {"month": (15.0, 5.0), "day": (30.0, 10.0), "hour": (30.0, 10.0)}

#: A period enters a fit or a savings row only with at least this fraction of its time covered by
#: data (CalTRACK daily data sufficiency ≥ 0.9, docs/kpis.md §7 [EEM]).
MIN_COVERAGE = 0.9


#: A reporting period whose driver lies further than this share of the baseline's driver range
#: outside that range is excluded from savings: the model is valid only within the data range it
#: was fitted on (IPMVP; ASHRAE Guideline 14), with a small margin for measurement noise.
DRIVER_RANGE_TOLERANCE = 0.10

#: Nominal hours of a period, for the stopped-asset threshold of a tonnes driver (a month ~ 730 h).
_PERIOD_HOURS: dict[str, float] = {"hour": 1.0, "day": 24.0, "month": 730.0}

#: Why a reporting period is excluded from savings (see :func:`exclusion_reasons`).
EXCLUDED_STOPPED = "asset stopped (driver ~0 or below 1 t/h)"
EXCLUDED_OUT_OF_RANGE = (
    f"driver outside the baseline range by more than {DRIVER_RANGE_TOLERANCE * 100:.0f} % of it "
    "(model not valid there)"
)


class MVError(ValueError):
    """A baseline cannot be fitted or applied (too little data, collinear drivers, missing column)."""


# --------------------------------------------------------------------------------------------
# How a quantity is turned into one value per period


@dataclass(frozen=True, slots=True)
class Aggregation:
    """How a KPI or tag is reduced to one value per period, and the unit of that value.

    ``integrate``: a rate (kW, t/h, GJ/h) becomes a quantity (kWh, t, GJ) = time-weighted mean
    rate x period hours. ``counter``: a running total (``*_kwh_total``) becomes its increase.
    ``mean``: intensive values (temperatures, fineness, specific KPIs) are time-weighted means.
    Integrated and counter quantities are *extensive*: they scale with the length of the period.
    """

    kind: AggKind
    unit: str

    @property
    def extensive(self) -> bool:
        return self.kind != "mean"


#: Rate suffix -> unit of the integrated quantity (value per hour x hours).
_RATE_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_kw", "kWh"),
    ("_mw", "MWh"),
    ("_tph", "t"),
    ("_t_per_h", "t"),
    ("_gj_per_h", "GJ"),
    ("_mj_per_h", "MJ"),
    ("_nm3_per_h", "Nm3"),
    ("_m3_per_h", "m3"),
)
#: Unit labels of averaged quantities by name suffix (labels only; the value is not converted).
_MEAN_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_cm2_per_g", "cm²/g"),
    ("_kwh_per_t", "kWh/t"),
    ("_kcal_per_kg_clinker", "kcal/kg"),
    ("_kcal_per_kg", "kcal/kg"),
    ("_mj_per_t_clinker", "MJ/t"),
    ("_kgce_per_t", "kgce/t"),
    ("_pct", "%"),
    ("_c", "°C"),
    ("_mbar", "mbar"),
    ("_rpm", "rpm"),
)
_COUNTER_UNITS: dict[str, str] = {"kwh": "kWh", "mwh": "MWh", "t": "t", "gj": "GJ", "nm3": "Nm3", "m3": "m3"}


def aggregation_for(name: str, unit: str | None = None) -> Aggregation:
    """The aggregation rule of a KPI or tag, decided by the unit suffix of its name.

    ``*_kw``/``*_mw`` -> integrate to kWh/MWh; ``*_tph``/``*_t_per_h`` -> integrate to t;
    ``*_gj_per_h`` etc. -> integrate; ``*_total`` (e.g. ``*_kwh_total``) -> counter increase;
    anything else (``*_kwh_per_t``, ``*_c``, ``*_pct``, ``*_cm2_per_g``) -> time-weighted mean.
    ``unit`` (from the ``kpi`` table) only labels mean values.
    """
    leaf = name.rsplit(".", 1)[-1].lower()
    if leaf.endswith("_total"):
        stem = leaf[: -len("_total")]
        last = stem.rsplit("_", 1)[-1] if "_" in stem else stem
        return Aggregation("counter", _COUNTER_UNITS.get(last, last))
    for suffix, out_unit in _RATE_SUFFIXES:
        if leaf.endswith(suffix):
            return Aggregation("integrate", out_unit)
    if unit:
        return Aggregation("mean", unit)
    for suffix, mean_unit in _MEAN_SUFFIXES:
        if leaf.endswith(suffix):
            return Aggregation("mean", mean_unit)
    return Aggregation("mean", "")


def per_unit(num: str, den: str) -> str:
    """Unit of a slope: ``kWh/t``, ``kWh/(cm²/g)``."""
    if not den:
        return num
    return f"{num}/({den})" if "/" in den else f"{num}/{den}"


# --------------------------------------------------------------------------------------------
# Ordinary least squares with the statistics auditors ask for


@dataclass(frozen=True, slots=True)
class OlsFit:
    """OLS estimates and fit statistics; arrays are aligned with ``[intercept, x1, ..., xk]``."""

    params: FloatArray
    std_errors: FloatArray
    t_values: FloatArray
    p_values: FloatArray
    n: int
    p: int  # fitted parameters incl. intercept
    sse: float
    r2: float
    adj_r2: float
    f_stat: float
    f_pvalue: float
    y_mean: float
    cv_rmse: float  # %, n - p denominator
    nmbe: float  # %, n - p denominator, residual = measured - predicted
    fitted: FloatArray
    residuals: FloatArray


def ols(y: npt.ArrayLike, x: npt.ArrayLike) -> OlsFit:
    """Fit ``y = b0 + X b`` by least squares (numpy ``lstsq``) with t-test p-values (scipy).

    ``x`` has one column per driver (shape ``(n,)`` or ``(n, k)``). Raises :class:`MVError` when
    there are not more points than parameters or the drivers are collinear/constant.
    """
    yv = np.asarray(y, dtype=np.float64).reshape(-1)
    xv = np.asarray(x, dtype=np.float64)
    if xv.ndim == 1:
        xv = xv.reshape(-1, 1)
    n, k = xv.shape
    if n != yv.shape[0]:
        raise MVError(f"target has {yv.shape[0]} points but drivers have {n}")
    if k < 1:
        raise MVError("at least one driver is needed")
    if not (np.all(np.isfinite(yv)) and np.all(np.isfinite(xv))):
        raise MVError("target and drivers must be finite (drop periods with missing data first)")
    p = k + 1
    if n <= p:
        raise MVError(f"{n} periods are too few for {p} parameters: need at least {p + 1}")
    design = np.column_stack([np.ones(n), xv])
    solution, _, rank, _ = np.linalg.lstsq(design, yv, rcond=None)
    params = np.asarray(solution, dtype=np.float64)
    if rank < p:
        raise MVError("drivers are collinear or constant over the baseline period: the fit is not unique")
    fitted = design @ params
    resid = yv - fitted  # measured - predicted (docs/kpis.md §7)
    dof = n - p
    sse = float(resid @ resid)
    y_mean = float(yv.mean())
    sst = float(((yv - y_mean) ** 2).sum())
    sigma2 = sse / dof
    # Covariance of the estimates: s² (XᵀX)⁻¹, through the pseudo-inverse for numerical stability.
    pinv = np.linalg.pinv(design)
    cov = sigma2 * (pinv @ pinv.T)
    bse = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        tvals = np.where(bse > 0, params / bse, np.copysign(np.inf, params))
    from scipy import stats  # imported here: ~60 MB resident that the daemon never needs otherwise

    pvals = 2.0 * stats.t.sf(np.abs(tvals), dof)
    r2 = 1.0 - sse / sst if sst > 0 else 1.0
    adj_r2 = 1.0 - (1.0 - r2) * (n - 1) / dof
    if sse > 0:
        f_stat = ((sst - sse) / k) / sigma2
        f_pvalue = float(stats.f.sf(f_stat, k, dof))
    else:
        f_stat, f_pvalue = math.inf, 0.0
    rmse_dof = math.sqrt(sigma2)
    cv_rmse = 100.0 * rmse_dof / y_mean if y_mean != 0 else math.inf
    nmbe = 100.0 * float(resid.sum()) / (dof * y_mean) if y_mean != 0 else math.inf
    return OlsFit(
        params=params,
        std_errors=bse,
        t_values=np.asarray(tvals, dtype=np.float64),
        p_values=np.asarray(pvals, dtype=np.float64),
        n=n,
        p=p,
        sse=sse,
        r2=r2,
        adj_r2=adj_r2,
        f_stat=float(f_stat),
        f_pvalue=f_pvalue,
        y_mean=y_mean,
        cv_rmse=cv_rmse,
        nmbe=nmbe,
        fitted=fitted,
        residuals=resid,
    )


def enpi_lite_checks(fit: OlsFit, drivers: Sequence[str]) -> list[str]:
    """Reasons the model fails the EnPI Lite validity requirements (docs/kpis.md §7); empty = valid."""
    problems: list[str] = []
    if not fit.f_pvalue < ENPI_MODEL_P_MAX:
        problems.append(f"model F-test p = {fit.f_pvalue:.3g} is not < {ENPI_MODEL_P_MAX} (EnPI Lite)")
    var_p = fit.p_values[1:]
    for name, pv in zip(drivers, var_p, strict=True):
        if not pv < ENPI_VARIABLE_P_MAX:
            problems.append(f"driver {name}: p = {pv:.3g} is not < {ENPI_VARIABLE_P_MAX} (EnPI Lite)")
    if not np.any(var_p < ENPI_BEST_VARIABLE_P_MAX):
        problems.append(f"no driver has p < {ENPI_BEST_VARIABLE_P_MAX} (EnPI Lite)")
    if not fit.r2 >= ENPI_R2_MIN:
        problems.append(f"R² = {fit.r2:.3f} is below {ENPI_R2_MIN} (EnPI Lite)")
    return problems


# --------------------------------------------------------------------------------------------
# The baseline model


@dataclass(frozen=True, slots=True)
class Baseline:
    """A fitted energy baseline (EnB) of one asset: what its target would be, given the drivers.

    ``std_errors`` and ``p_values`` are aligned with ``("intercept", *drivers)``; ``coefficients``
    with ``drivers`` only. ``target_kind``/``driver_kinds`` record how each variable was reduced per
    period (see :func:`aggregation_for`) so that the reporting period is aggregated the same way.
    """

    baseline_id: str
    site: str
    asset: str
    target: str
    drivers: tuple[str, ...]
    granularity: str
    period_from: datetime
    period_to: datetime
    n: int
    intercept: float
    coefficients: tuple[float, ...]
    std_errors: tuple[float, ...]
    p_values: tuple[float, ...]
    r2: float
    adj_r2: float
    cv_rmse: float
    nmbe: float
    f_pvalue: float
    target_mean: float
    valid: bool
    warnings: tuple[str, ...]
    unit: str
    fitted_at: datetime
    target_kind: str = "integrate"
    driver_kinds: tuple[str, ...] = ()
    driver_units: tuple[str, ...] = ()
    driver_min: tuple[float, ...] = ()
    driver_max: tuple[float, ...] = ()
    driver_mean: tuple[float, ...] = ()
    driver_sd: tuple[float, ...] = ()

    @property
    def target_extensive(self) -> bool:
        """True when the target scales with period length (energy), False for a specific KPI."""
        return self.target_kind != "mean"

    def predict(self, drivers: Mapping[str, npt.ArrayLike] | pl.DataFrame) -> FloatArray:
        """Expected target for full periods with these driver values (one value per period)."""
        cols: list[FloatArray] = []
        for name in self.drivers:
            try:
                col = drivers[name]
            except (KeyError, pl.exceptions.ColumnNotFoundError):
                raise MVError(f"driver {name!r} is missing") from None
            arr = col.to_numpy() if isinstance(col, pl.Series) else np.asarray(col, dtype=np.float64)
            cols.append(np.atleast_1d(np.asarray(arr, dtype=np.float64)))
        x = np.column_stack(cols) if cols else np.empty((0, 0))
        return np.asarray(self.intercept + x @ np.asarray(self.coefficients), dtype=np.float64)


def make_baseline_id(site: str, asset: str, target: str, drivers: Sequence[str], fitted_at: datetime) -> str:
    """Short, readable, stable id: ``<asset>-<8 hex>``."""
    key = "|".join([site, asset, target, ",".join(drivers), fitted_at.isoformat()])
    return f"{asset}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def fit_baseline(
    frame: pl.DataFrame,
    *,
    target: str,
    drivers: Sequence[str],
    site: str,
    asset: str,
    granularity: str,
    period_from: datetime | None = None,
    period_to: datetime | None = None,
    unit: str | None = None,
    target_kind: str | None = None,
    driver_kinds: Sequence[str] | None = None,
    driver_units: Sequence[str] | None = None,
    fitted_at: datetime | None = None,
    baseline_id: str | None = None,
) -> Baseline:
    """Fit a baseline from one row per period (columns ``ts``, ``target`` and each driver).

    Rows with a null in any used column are dropped. Kinds and units default to
    :func:`aggregation_for` of each name. The returned baseline carries the EnPI Lite verdict in
    ``valid`` and every problem or caution in ``warnings``.
    """
    drivers = _checked_variables(frame, target, drivers, granularity)
    data, y, x = _fit_data(frame, target, drivers)
    fit = ols(y, x)
    problems = enpi_lite_checks(fit, drivers)
    warnings = problems + _fit_cautions(fit, drivers, granularity)
    period_from, period_to = _fit_period(data, period_from, period_to)
    fitted_at = fitted_at or datetime.now(UTC)
    t_agg = aggregation_for(target)
    d_aggs = [aggregation_for(d) for d in drivers]
    sd = x.std(axis=0, ddof=1) if fit.n > 1 else np.zeros(len(drivers))
    return Baseline(
        baseline_id=baseline_id or make_baseline_id(site, asset, target, drivers, fitted_at),
        site=site,
        asset=asset,
        target=target,
        drivers=drivers,
        granularity=granularity,
        period_from=period_from,
        period_to=period_to,
        n=fit.n,
        intercept=float(fit.params[0]),
        coefficients=tuple(float(v) for v in fit.params[1:]),
        std_errors=tuple(float(v) for v in fit.std_errors),
        p_values=tuple(float(v) for v in fit.p_values),
        r2=fit.r2,
        adj_r2=fit.adj_r2,
        cv_rmse=fit.cv_rmse,
        nmbe=fit.nmbe,
        f_pvalue=fit.f_pvalue,
        target_mean=fit.y_mean,
        valid=not problems,
        warnings=tuple(warnings),
        unit=unit if unit is not None else t_agg.unit,
        fitted_at=fitted_at,
        target_kind=target_kind or t_agg.kind,
        driver_kinds=tuple(driver_kinds) if driver_kinds is not None else tuple(a.kind for a in d_aggs),
        driver_units=tuple(driver_units) if driver_units is not None else tuple(a.unit for a in d_aggs),
        driver_min=tuple(float(v) for v in x.min(axis=0)),
        driver_max=tuple(float(v) for v in x.max(axis=0)),
        driver_mean=tuple(float(v) for v in x.mean(axis=0)),
        driver_sd=tuple(float(v) for v in sd),
    )


def _checked_variables(
    frame: pl.DataFrame, target: str, drivers: Sequence[str], granularity: str
) -> tuple[str, ...]:
    """The drivers as a tuple, once the request makes sense: a known granularity (it selects the G14
    limits), at least one driver, no variable twice, every column present. Checked before any
    arithmetic so that a wrong request is told as such, not as a numerical failure of the fit."""
    if granularity not in GRANULARITIES:
        raise MVError(f"granularity must be one of {', '.join(GRANULARITIES)}")
    drivers = tuple(drivers)
    if not drivers:
        raise MVError("at least one driver is needed")
    if target in drivers or len(set(drivers)) != len(drivers):
        raise MVError("target and drivers must be distinct")
    missing = [c for c in (target, *drivers) if c not in frame.columns]
    if missing:
        raise MVError(f"no column for {', '.join(missing)}")
    return drivers


def _fit_data(
    frame: pl.DataFrame, target: str, drivers: tuple[str, ...]
) -> tuple[pl.DataFrame, FloatArray, FloatArray]:
    """The periods that enter the fit (a null in any used column drops the period, since OLS needs
    every value) with the target as ``y`` and one column per driver as ``x``. ``x`` keeps its
    ``(0, 1)`` shape when nothing is left, so that :func:`ols` reports too few periods."""
    data = frame.drop_nulls(subset=[target, *drivers])
    y = data[target].cast(pl.Float64).to_numpy()
    x = (
        np.column_stack([data[d].cast(pl.Float64).to_numpy() for d in drivers])
        if data.height
        else np.empty((0, 1))
    )
    return data, y, x


def _fit_cautions(fit: OlsFit, drivers: tuple[str, ...], granularity: str) -> list[str]:
    """Warnings that do not make the model invalid under EnPI Lite but that an auditor must see, in
    this order: too few periods per driver, a negative slope (CalTRACK), CV(RMSE) and |NMBE| beyond
    the ASHRAE Guideline 14 limits of the granularity (docs/kpis.md §7)."""
    cautions: list[str] = []
    min_n = max(MIN_POINTS, MIN_POINTS_PER_DRIVER * len(drivers))
    if fit.n < min_n:
        cautions.append(
            f"only {fit.n} periods: at least {min_n} are recommended for {len(drivers)} driver(s)"
        )
    for name, b in zip(drivers, fit.params[1:], strict=True):
        if b < 0:
            cautions.append(
                f"negative slope for {name} ({b:.4g}): energy falls as {name} rises - check the driver "
                "(CalTRACK rejects negative coefficients, docs/kpis.md §7)"
            )
    cv_lim, nmbe_lim = G14_LIMITS[granularity]
    if fit.cv_rmse > cv_lim:
        cautions.append(
            f"CV(RMSE) {fit.cv_rmse:.2f} % exceeds the ASHRAE G14 {granularity} limit {cv_lim:g} %"
        )
    if abs(fit.nmbe) > nmbe_lim:
        cautions.append(
            f"|NMBE| {abs(fit.nmbe):.2f} % exceeds the ASHRAE G14 {granularity} limit {nmbe_lim:g} %"
        )
    return cautions


def _fit_period(
    data: pl.DataFrame, period_from: datetime | None, period_to: datetime | None
) -> tuple[datetime, datetime]:
    """The baseline period as given, else the first and last ``ts`` of the periods actually fitted
    (after nulls were dropped), so the stored range says which data the model stands on."""
    ts = data["ts"] if "ts" in data.columns else None
    if period_from is None:
        if ts is None:
            raise MVError("period_from is needed when the frame has no ts column")
        period_from = _as_datetime(ts.min())
    if period_to is None:
        if ts is None:
            raise MVError("period_to is needed when the frame has no ts column")
        period_to = _as_datetime(ts.max())
    return period_from, period_to


def _as_datetime(v: object) -> datetime:
    if isinstance(v, datetime):
        return to_utc(v)
    raise MVError(f"ts column must hold datetimes, got {type(v).__name__}")


# --------------------------------------------------------------------------------------------
# Reporting period: expected vs actual, avoided energy, CUSUM

SAVINGS_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Datetime("us", "UTC"),
    "expected": pl.Float64(),
    "actual": pl.Float64(),
    "avoided": pl.Float64(),
    "cumulative_avoided": pl.Float64(),
    "fraction": pl.Float64(),
}


def savings(baseline: Baseline, frame: pl.DataFrame, *, cumulative_start: float = 0.0) -> pl.DataFrame:
    """Expected (baseline) vs actual per reporting period, avoided energy and its CUSUM.

    ``frame`` holds one row per period: ``ts``, the target (actual, full-period equivalent) and
    every driver. An optional ``fraction`` column (share of the period elapsed, 1 for complete
    periods) scales expected and actual of an extensive target, so the live current period is
    compared like for like. Sign: avoided = expected − actual ("up is good", docs/kpis.md §7 CUSUM);
    ``cumulative_avoided`` starts from ``cumulative_start``.
    """
    if baseline.target not in frame.columns:
        raise MVError(f"no column for the target {baseline.target!r}")
    data = frame.drop_nulls(subset=[baseline.target, *baseline.drivers]).sort("ts")
    if data.height == 0:
        return pl.DataFrame(schema=SAVINGS_SCHEMA)
    expected_full = baseline.predict(data)
    actual_full = data[baseline.target].cast(pl.Float64).to_numpy()
    if "fraction" in data.columns:
        fraction = data["fraction"].fill_null(1.0).cast(pl.Float64).to_numpy()
    else:
        fraction = np.ones(data.height)
    scale = fraction if baseline.target_extensive else np.ones(data.height)
    expected = expected_full * scale
    actual = actual_full * scale
    avoided = expected - actual
    return pl.DataFrame(
        {
            "ts": data["ts"].cast(pl.Datetime("us", "UTC")),
            "expected": expected,
            "actual": actual,
            "avoided": avoided,
            "cumulative_avoided": cumulative_start + np.cumsum(avoided),
            "fraction": fraction,
        },
        schema=SAVINGS_SCHEMA,
    )


def exclusion_reasons(baseline: Baseline, frame: pl.DataFrame) -> pl.Series:
    """Per row of a reporting ``frame``: why the period earns no savings, or NULL.

    ``asset stopped``: an extensive driver (energy, tonnes) is <= 0, or a tonnes driver is below
    ``MIN_PRODUCT_TPH`` (1 t/h) x the period's hours - the regression intercept would otherwise be
    credited as "avoided" energy of an asset that did not run. ``driver outside the baseline range``:
    a driver is outside [min, max] of the baseline period by more than
    :data:`DRIVER_RANGE_TOLERANCE` x (max - min) (the model is valid only within its data range).
    Baselines stored without driver ranges get the stopped rule only. Rows with a NULL driver are
    not judged here (they are coverage gaps).
    """
    n = frame.height
    stopped = np.zeros(n, dtype=bool)
    outside = np.zeros(n, dtype=bool)
    hours = _PERIOD_HOURS.get(baseline.granularity, 1.0)
    for i, name in enumerate(baseline.drivers):
        if name not in frame.columns:
            continue
        x = frame[name].cast(pl.Float64).fill_null(float("nan")).to_numpy()
        known = ~np.isnan(x)
        kind = baseline.driver_kinds[i] if i < len(baseline.driver_kinds) else aggregation_for(name).kind
        unit = baseline.driver_units[i] if i < len(baseline.driver_units) else aggregation_for(name).unit
        if kind != "mean":
            limit = MIN_PRODUCT_TPH * hours if unit == "t" else 0.0
            stopped |= known & (x <= limit)
        if i < len(baseline.driver_min) and i < len(baseline.driver_max):
            lo, hi = baseline.driver_min[i], baseline.driver_max[i]
            tol = DRIVER_RANGE_TOLERANCE * (hi - lo)
            outside |= known & ((x < lo - tol) | (x > hi + tol))
    reasons = np.where(stopped, EXCLUDED_STOPPED, np.where(outside, EXCLUDED_OUT_OF_RANGE, ""))
    return pl.Series("excluded", reasons.tolist(), dtype=pl.String).replace("", None)


def percent_savings(savings_frame: pl.DataFrame) -> float | None:
    """Avoided energy as a percentage of the adjusted baseline: 100·Σavoided / Σexpected."""
    total_expected = float(savings_frame["expected"].sum()) if savings_frame.height else 0.0
    if total_expected == 0:
        return None
    return 100.0 * float(savings_frame["avoided"].sum()) / total_expected


def deviation_pct(expected: float, actual: float) -> float | None:
    """``baseline_deviation_pct`` = 100·(actual − expected)/expected; positive = worse than baseline."""
    if expected == 0 or not math.isfinite(expected) or not math.isfinite(actual):
        return None
    return 100.0 * (actual - expected) / expected


def reporting_warnings(baseline: Baseline, frame: pl.DataFrame) -> list[str]:
    """Cautions when reporting-period drivers leave the range the baseline was fitted on.

    EnPI Lite (docs/kpis.md §7): the reporting-period mean of each driver must lie within the baseline
    range or within mean ± 3 SD. Individual periods outside the range are counted too, since the
    model extrapolates there.
    """
    out: list[str] = []
    if not baseline.driver_min:
        return out
    for i, name in enumerate(baseline.drivers):
        if name not in frame.columns:
            continue
        col = frame[name].drop_nulls().cast(pl.Float64)
        if col.len() == 0:
            continue
        lo, hi = baseline.driver_min[i], baseline.driver_max[i]
        mu, sd = baseline.driver_mean[i], baseline.driver_sd[i]
        mean = float(col.mean())  # type: ignore[arg-type]
        in_range = lo <= mean <= hi
        in_sd = abs(mean - mu) <= DRIVER_SD_LIMIT * sd
        if not (in_range or in_sd):
            out.append(
                f"reporting mean of {name} ({mean:.4g}) is outside the baseline range [{lo:.4g}, {hi:.4g}] "
                f"and mean ± 3 SD (EnPI Lite): the model extrapolates"
            )
        outside = int(((col < lo) | (col > hi)).sum())
        if outside:
            out.append(f"{outside} of {col.len()} reporting periods have {name} outside the baseline range")
    return out
