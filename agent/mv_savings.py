"""M&V savings on the site database: ``mv_savings`` rows and the live deviation of each baseline.

Periods come from :mod:`agent.mv_store` (one row per period from stored history), the statistics from
:mod:`rules.mv`. ``baseline savings`` (agent/audit_cli.py) computes a range on demand; the daemon keeps
today's rows current and feeds ``baseline_deviation_pct`` to the rules once a minute
(agent/pipeline.py). Periods with the asset stopped or a driver outside the fitted range earn no
savings (docs/kpis.md §7, docs/auditors.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import polars as pl

from agent.mv_store import (
    FULL,
    ceil_period,
    floor_period,
    live_baselines,
    next_period,
    nominal_period,
    period_frame,
    resolve_variable,
)
from agent.storage import first_row, samples_source, transaction
from common.values import to_utc
from rules.catalogue import KPI_ROW_SCHEMA
from rules.mv import (
    MIN_COVERAGE,
    Baseline,
    MVError,
    deviation_pct,
    exclusion_reasons,
    reporting_warnings,
    savings,
)

log = logging.getLogger(__name__)

#: At most this much reporting time is (re)computed per :func:`update_savings` call and baseline.
CATCH_UP = timedelta(days=7)
#: KPI name of the rule hook (a percentage; positive = more energy than the baseline expects).
DEVIATION_KPI = "baseline_deviation_pct"
#: Energy above the baseline and its money and CO2, per hour (docs/kpis.md §11, mills with a baseline).
EXCESS_KWH = "excess_energy_kwh_per_h"
EXCESS_COST = "excess_power_cost_per_h"
EXCESS_CO2 = "excess_power_co2_kg_per_h"


def _reporting_frame(
    con: duckdb.DuckDBPyConnection, b: Baseline, start: datetime, end: datetime
) -> pl.DataFrame:
    names = [b.target, *b.drivers]
    variables = [resolve_variable(con, b.site, b.asset, n, start, end) for n in names]
    return period_frame(
        con, site=b.site, asset=b.asset, variables=variables, start=start, end=end, granularity=b.granularity
    )


def _usable(b: Baseline, frame: pl.DataFrame, min_coverage: float) -> tuple[pl.DataFrame, dict[str, int]]:
    """Periods that earn savings (covered, every variable known, not excluded) and the number of
    complete periods excluded per reason (:func:`rules.mv.exclusion_reasons`)."""
    names = [b.target, *b.drivers]
    covered = frame.filter(pl.col("coverage") >= min_coverage).drop_nulls(names)
    judged = covered.with_columns(exclusion_reasons(b, covered))
    counts = judged.filter(pl.col("fraction") >= FULL).drop_nulls("excluded")["excluded"].value_counts()
    excluded = {str(r[0]): int(r[1]) for r in counts.iter_rows()}
    return judged.filter(pl.col("excluded").is_null()).drop("excluded"), excluded


def _savings_rows(
    b: Baseline, frame: pl.DataFrame, *, cumulative_start: float, min_coverage: float
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Savings of usable periods plus NULL rows for complete periods without enough data or
    excluded (asset stopped, driver outside the baseline range), and the excluded counts.

    Excluded periods get a row with NULL expected/actual/avoided, like coverage gaps: the CUSUM
    carries over them unchanged (avoided counts as 0), percent savings skip them, and
    :func:`update_savings` sees them as done instead of recomputing a long stop on every call.
    """
    ok, excluded = _usable(b, frame, min_coverage)
    gaps = frame.filter(pl.col("fraction") >= FULL).join(ok.select("ts"), on="ts", how="anti")
    s = savings(b, ok)
    if gaps.height:
        gap_rows = gaps.select(
            "ts",
            pl.lit(None, pl.Float64).alias("expected"),
            pl.lit(None, pl.Float64).alias("actual"),
            pl.lit(None, pl.Float64).alias("avoided"),
            pl.lit(None, pl.Float64).alias("cumulative_avoided"),
            "fraction",
        )
        s = pl.concat([s, gap_rows]).sort("ts")
    cum = pl.col("avoided").fill_null(0.0).cum_sum() + cumulative_start
    s = s.with_columns(cumulative_avoided=cum)
    rows = s.with_columns(
        site=pl.lit(b.site), asset=pl.lit(b.asset), baseline_id=pl.lit(b.baseline_id), unit=pl.lit(b.unit)
    )
    return rows, excluded


def _insert_savings(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame) -> int:
    if rows.height == 0:
        return 0
    cols = [
        "ts",
        "site",
        "asset",
        "baseline_id",
        "expected",
        "actual",
        "avoided",
        "cumulative_avoided",
        "unit",
    ]
    cols.append("fraction")
    con.register("_kw_mv", rows.select(cols))
    # avoided kWh priced and CO2-rated with the site's settings (docs/kpis.md §11); other units
    # (kWh/t, GJ) have no price here and stay NULL
    money = (
        "CASE WHEN m.unit = 'kWh' THEN m.avoided * s.electricity_price_per_kwh END, "
        "CASE WHEN m.unit = 'kWh' THEN m.avoided * s.grid_co2_kg_per_kwh END, "
        "CASE WHEN m.unit = 'kWh' AND s.electricity_price_per_kwh IS NOT NULL THEN s.currency END"
    )
    try:
        con.execute(
            f"INSERT INTO mv_savings ({', '.join(cols)}, avoided_cost, avoided_co2_kg, currency) "
            f"SELECT {', '.join('m.' + c for c in cols)}, {money} FROM _kw_mv m LEFT JOIN sites s ON s.site = m.site"
        )
    finally:
        con.unregister("_kw_mv")
    return rows.height


def _cumulative_before(con: duckdb.DuckDBPyConnection, baseline_id: str, ts: datetime) -> float:
    row = first_row(
        con.execute(
            "SELECT coalesce(sum(avoided), 0) FROM mv_savings WHERE baseline_id = ? AND ts < ?",
            [baseline_id, ts],
        )
    )
    return float(row[0]) if row else 0.0


def compute_savings(
    con: duckdb.DuckDBPyConnection,
    b: Baseline,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    store: bool = True,
    min_coverage: float = MIN_COVERAGE,
) -> tuple[pl.DataFrame, list[str]]:
    """Savings of ``b`` over ``[start, end)`` (default: from the end of its baseline period to the
    end of the last period with data, see :func:`data_end`).

    ``start`` is rounded down to a period start. With ``store`` the rows replace those of the same
    baseline in that range and ``cumulative_avoided`` is recomputed over all stored rows of the
    baseline, so the CUSUM always runs from its first stored period. Returns rows and warnings.
    """
    start = floor_period(start if start is not None else b.period_to, b.granularity)
    end = to_utc(end) if end is not None else data_end(con, b, start)
    warnings: list[str] = []
    if start < b.period_to:
        warnings.append("the reporting range overlaps the baseline period: savings there are not independent")
    frame = _reporting_frame(con, b, start, end)
    cum0 = _cumulative_before(con, b.baseline_id, start) if store else 0.0
    rows, excluded = _savings_rows(b, frame, cumulative_start=cum0, min_coverage=min_coverage)
    warnings.extend(reporting_warnings(b, frame.filter(pl.col("fraction") >= FULL)))
    for why, n in sorted(excluded.items()):
        warnings.append(f"{n} period(s) excluded from savings: {why}")
    n_gaps = int(rows["avoided"].is_null().sum()) - sum(excluded.values())
    if n_gaps:
        warnings.append(
            f"{n_gaps} period(s) have under {min_coverage:.0%} data coverage: no savings computed"
        )
    if store:
        with transaction(con):
            con.execute(
                "DELETE FROM mv_savings WHERE baseline_id = ? AND ts >= ? AND ts < ?",
                [b.baseline_id, start, end],
            )
            _insert_savings(con, rows)
            _recompute_cumulative(con, b.baseline_id)
    return rows, warnings


def data_end(con: duckdb.DuckDBPyConnection, b: Baseline, start: datetime) -> datetime:
    """End of the last period holding data of every variable of ``b`` (at most now)."""
    now = datetime.now(UTC)
    if start >= now:
        return now
    last: datetime | None = None
    for name in (b.target, *b.drivers):
        try:
            var = resolve_variable(con, b.site, b.asset, name, start, now)
        except MVError:
            return now  # let the caller report the missing data
        if var.source == "kpi":
            row = first_row(
                con.execute(
                    "SELECT max(ts) FROM kpi WHERE site = ? AND asset = ? AND kpi = ? AND window_secs = ? AND ts >= ?",
                    [b.site, b.asset, name, var.window_secs, start],
                )
            )
        else:
            row = first_row(
                con.execute(
                    f"SELECT max(ts) FROM {samples_source(con)} WHERE site = ? AND tag IN (SELECT unnest(?::VARCHAR[])) AND ts >= ?",
                    [b.site, list(var.series), start],
                )
            )
        if row is None or row[0] is None:
            return now
        t = to_utc(row[0])
        last = t if last is None or t < last else last
    assert last is not None
    return min(now, next_period(floor_period(last, b.granularity), b.granularity))


def _recompute_cumulative(con: duckdb.DuckDBPyConnection, baseline_id: str) -> None:
    con.execute(
        """UPDATE mv_savings AS m SET cumulative_avoided = c.cum
        FROM (SELECT ts, sum(coalesce(avoided, 0)) OVER (ORDER BY ts) AS cum
              FROM mv_savings WHERE baseline_id = $id) AS c
        WHERE m.baseline_id = $id AND m.ts = c.ts""",
        {"id": baseline_id},
    )


def update_savings(con: duckdb.DuckDBPyConnection, site: str, now: datetime) -> int:
    """Bring ``mv_savings`` up to ``now`` for every baseline in force; returns rows written.

    Idempotent: complete periods already stored are kept; everything from the first missing period
    on - including the live current period, stored with ``fraction`` < 1 - is deleted and rewritten.
    At most :data:`CATCH_UP` (or two periods) is computed per call, so a long backlog is worked off
    over several calls. A baseline whose variables have no data in that range is skipped until data
    arrives.
    """
    now = to_utc(now)
    written = 0
    for b in live_baselines(con, site):
        rep_start = ceil_period(b.period_to, b.granularity)
        if now <= rep_start:
            continue
        current = floor_period(now, b.granularity)
        row = first_row(
            con.execute(
                "SELECT max(ts) FROM mv_savings WHERE baseline_id = ? AND ts < ? AND coalesce(fraction, 1) >= ?",
                [b.baseline_id, current, FULL],
            )
        )
        last = to_utc(row[0]) if row is not None and row[0] is not None else None
        resume = max(rep_start, next_period(last, b.granularity)) if last is not None else rep_start
        # Bounded work per call: a baseline whose reporting period began long ago catches up over
        # several calls instead of stalling the agent's loop once.
        end = min(now, resume + max(CATCH_UP, 2 * nominal_period(b.granularity)))
        if end <= resume:
            continue
        try:
            frame = _reporting_frame(con, b, resume, end)
        except MVError as exc:
            log.debug("savings of %s not updated: %s", b.baseline_id, exc)
            continue
        cum0 = _cumulative_before(con, b.baseline_id, resume)
        rows, _ = _savings_rows(b, frame, cumulative_start=cum0, min_coverage=MIN_COVERAGE)
        with transaction(con):
            con.execute("DELETE FROM mv_savings WHERE baseline_id = ? AND ts >= ?", [b.baseline_id, resume])
            written += _insert_savings(con, rows)
    return written


def savings_frame(con: duckdb.DuckDBPyConnection, baseline_id: str) -> pl.DataFrame:
    """Stored ``mv_savings`` rows of one baseline, in time order."""
    frame: pl.DataFrame = con.sql(
        "SELECT ts, expected, actual, avoided, cumulative_avoided, fraction, unit FROM mv_savings "
        "WHERE baseline_id = $id ORDER BY ts",
        params={"id": baseline_id},
    ).pl()
    return frame


# --------------------------------------------------------------------------------------------
# Rule hook


@dataclass(frozen=True, slots=True)
class Deviation:
    """An asset against its live baseline over a recent span (the rule hook, docs/kpis.md §8, §11)."""

    #: 100·(actual − expected)/expected; positive = more energy than the baseline expects.
    pct: float | None
    #: Energy above the baseline, kWh per hour (negative = below it); None when the target is not
    #: energy-like (kWh, or kWh/t with a tonnes driver).
    excess_kwh_per_h: float | None


def recent_deviation(
    con: duckdb.DuckDBPyConnection,
    site: str,
    asset: str,
    hours: float,
    *,
    now: datetime | None = None,
    target: str | None = None,
) -> float | None:
    """``baseline_deviation_pct`` of ``asset`` over the last ``hours``: 100·(actual − expected)/expected.

    Positive = the asset used more than its baseline predicts for the same drivers (the sign a
    "consumption too high" rule wants; docs/kpis.md §8 mill inefficiency: > 10 %). Uses the asset's latest
    baseline (for ``target`` if given). None when there is no baseline or too little data.
    """
    d = recent_excess(con, site, asset, hours, now=now, target=target)
    return None if d is None else d.pct


def recent_excess(
    con: duckdb.DuckDBPyConnection,
    site: str,
    asset: str,
    hours: float,
    *,
    now: datetime | None = None,
    target: str | None = None,
) -> Deviation | None:
    """:class:`Deviation` of ``asset`` over the last ``hours`` against its latest baseline.

    The excess energy (docs/kpis.md §11: ΔkWh = (SEC − baseline) × t product) comes from the target's
    unit: a kWh target gives actual − expected directly; a kWh/t target is multiplied by the tonnes of
    the baseline's tonnes driver over the same span. Divided by ``hours`` for a rate per hour.
    """
    if hours <= 0:
        raise MVError("hours must be positive")
    candidates = [
        b for b in live_baselines(con, site) if b.asset == asset and (target is None or b.target == target)
    ]
    if not candidates:
        return None
    b = max(candidates, key=lambda x: x.fitted_at)
    end = to_utc(now) if now is not None else datetime.now(UTC)
    start = end - timedelta(hours=hours)
    try:
        variables = [resolve_variable(con, site, asset, n, start, end) for n in (b.target, *b.drivers)]
    except MVError:
        return None
    frame = period_frame(
        con,
        site=site,
        asset=asset,
        variables=variables,
        start=start,
        end=end,
        granularity=b.granularity,
        single_span=True,
    )
    frame, _ = _usable(b, frame, MIN_COVERAGE)  # no deviation while stopped or outside the model's range
    if frame.height == 0:
        return None
    s = savings(b, frame)
    expected, actual = float(s["expected"][0]), float(s["actual"][0])
    unit = variables[0].unit
    excess: float | None = None
    if unit == "kWh":
        excess = (actual - expected) / hours
    elif unit == "kWh/t":
        tonnes = [v.name for v in variables[1:] if v.unit == "t"]
        if tonnes and frame[tonnes[0]][0] is not None:
            excess = (actual - expected) * float(frame[tonnes[0]][0]) / hours
    return Deviation(deviation_pct(expected, actual), excess)


def recent_deviations(
    con: duckdb.DuckDBPyConnection, site: str, now: datetime, *, hours: float = 1.0
) -> dict[str, float | None]:
    """``baseline_deviation_pct`` over the last ``hours`` of every asset with a live baseline.

    What the daemon feeds the rule engine every minute (``mill.specific_power.above_baseline``).
    """
    return {
        a: d.pct if d is not None else None for a, d in recent_excesses(con, site, now, hours=hours).items()
    }


def recent_excesses(
    con: duckdb.DuckDBPyConnection, site: str, now: datetime, *, hours: float = 1.0
) -> dict[str, Deviation | None]:
    """:class:`Deviation` over the last ``hours`` of every asset with a live baseline."""
    now = to_utc(now)
    return {
        asset: recent_excess(con, site, asset, hours, now=now)
        for asset in sorted({b.asset for b in live_baselines(con, site)})
    }


def excess_values(
    deviations: dict[str, Deviation | None],
    *,
    price_per_kwh: float | None,
    grid_co2_kg_per_kwh: float | None,
) -> dict[str, dict[str, float | None]]:
    """External name -> asset -> value: the deviation and the money and CO2 of the excess energy
    (docs/kpis.md §11: ΔkWh × tariff, ΔkWh × grid factor); a site without a price or a grid factor
    gets no such values."""
    out: dict[str, dict[str, float | None]] = {
        DEVIATION_KPI: {},
        EXCESS_KWH: {},
        EXCESS_COST: {},
        EXCESS_CO2: {},
    }
    for asset, d in deviations.items():
        kwh = d.excess_kwh_per_h if d is not None else None
        out[DEVIATION_KPI][asset] = d.pct if d is not None else None
        out[EXCESS_KWH][asset] = kwh
        out[EXCESS_COST][asset] = (
            kwh * price_per_kwh if kwh is not None and price_per_kwh is not None else None
        )
        out[EXCESS_CO2][asset] = (
            kwh * grid_co2_kg_per_kwh if kwh is not None and grid_co2_kg_per_kwh is not None else None
        )
    return out


def excess_kpi_rows(
    values: dict[str, dict[str, float | None]], site: str, start: datetime, units: dict[str, str]
) -> pl.DataFrame:
    """The hour [start, start + 1 h) of :func:`excess_values` as ``kpi`` rows (window_secs 3600)."""
    rows: list[dict[str, Any]] = [
        {
            "ts": to_utc(start),
            "site": site,
            "asset": asset,
            "kpi": name,
            "value": v,
            "unit": units.get(name, ""),
            "window_secs": 3600,
        }
        for name in (EXCESS_KWH, EXCESS_COST, EXCESS_CO2)
        for asset, v in sorted(values.get(name, {}).items())
        if v is not None
    ]
    return pl.DataFrame(rows, schema=KPI_ROW_SCHEMA).drop("good_fraction", "reason")


def deviation_kpi_rows(
    con: duckdb.DuckDBPyConnection, site: str, now: datetime, *, hours: float = 1.0
) -> pl.DataFrame:
    """``baseline_deviation_pct`` of every asset with a baseline, as ``kpi`` rows (ts = window start)."""
    now = to_utc(now)
    rows: list[dict[str, Any]] = [
        {
            "ts": now - timedelta(hours=hours),
            "site": site,
            "asset": asset,
            "kpi": DEVIATION_KPI,
            "value": v,
            "unit": "%",
            "window_secs": round(hours * 3600),
        }
        for asset, v in recent_deviations(con, site, now, hours=hours).items()
        if v is not None
    ]
    columns = ("ts", "site", "asset", "kpi", "value", "unit", "window_secs")
    return pl.DataFrame(rows, schema={c: KPI_ROW_SCHEMA[c] for c in columns})
