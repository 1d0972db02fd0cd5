"""M&V on the site database: per-period values from ``kpi``/``samples``, and the ``baselines`` table.

The statistics are in :mod:`rules.mv`; this module turns stored history into one row per period,
fits baselines on it and stores them. Savings rows and the live deviation feed are
:mod:`agent.mv_savings`.

How a name becomes a per-period value (documented for auditors in docs/auditors.md):

1. The name is looked up as a KPI of the asset (``kpi`` table, finest stored window), then as a tag
   (``samples``, ``good`` quality only), then as ``<asset>.<name>``, then as a role of the asset in the
   ``assets`` table (its tags are summed). A database that holds only ``samples`` (history imported
   from a historian) works.
2. Each series is time-weighted: a value holds until the next one, at most ``max(120 s, 3 x the
   median sample interval)``, so gaps are not bridged.
3. Rates are integrated (``*_kw`` -> kWh, ``*_tph`` -> t, ``*_gj_per_h`` -> GJ): time-weighted mean x
   period length. Counters (``*_total``) give their increase over the intervals between samples
   (a drop - meter reset or rollover - voids its interval), scaled to the period length. Anything
   else is a time-weighted mean (:func:`rules.mv.aggregation_for`).
4. A period enters a fit only when complete and covered by data for at least 90 % of its time
   (docs/kpis.md §7, CalTRACK data sufficiency). Values are full-period equivalents; the live current
   period carries ``fraction`` (elapsed share) so that expected and actual cover the same time.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import polars as pl

from agent.storage import first_row, samples_source
from common.values import to_utc
from rules.mv import (
    GRANULARITIES,
    MIN_COVERAGE,
    Aggregation,
    Baseline,
    MVError,
    aggregation_for,
    fit_baseline,
)

log = logging.getLogger(__name__)

#: Longest a sample is held when the series is fast; slow series hold 3 sample intervals.
HOLD_MIN_SECS = 120.0
#: Samples fetched before a period so the first counter increase and interval are known.
LOOKBACK = timedelta(hours=1)
#: Mean month length used when a monthly baseline is applied to an arbitrary window.
MEAN_MONTH = timedelta(days=30.436875)

#: A period counts as complete from this elapsed fraction on (float tolerance).
FULL = 1.0 - 1e-9


@dataclass(frozen=True, slots=True)
class Variable:
    """Where a target or driver comes from and how it is reduced per period."""

    name: str
    source: str  # "kpi" | "tag" | "role"
    series: tuple[str, ...]  # KPI name, or tag name(s) summed
    window_secs: int | None
    agg: Aggregation
    unit: str


# --------------------------------------------------------------------------------------------
# Time helpers


def floor_period(ts: datetime, granularity: str) -> datetime:
    t = to_utc(ts)
    if granularity == "hour":
        return t.replace(minute=0, second=0, microsecond=0)
    if granularity == "day":
        return t.replace(hour=0, minute=0, second=0, microsecond=0)
    if granularity == "month":
        return t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    raise MVError(f"granularity must be one of {', '.join(GRANULARITIES)}")


def next_period(start: datetime, granularity: str) -> datetime:
    if granularity == "hour":
        return start + timedelta(hours=1)
    if granularity == "day":
        return start + timedelta(days=1)
    if granularity == "month":
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    raise MVError(f"granularity must be one of {', '.join(GRANULARITIES)}")


def ceil_period(ts: datetime, granularity: str) -> datetime:
    f = floor_period(ts, granularity)
    return f if f == to_utc(ts) else next_period(f, granularity)


def periods(start: datetime, end: datetime, granularity: str) -> list[datetime]:
    """Starts of the periods that intersect ``[start, end)``."""
    out: list[datetime] = []
    p = floor_period(start, granularity)
    end = to_utc(end)
    while p < end:
        out.append(p)
        p = next_period(p, granularity)
    return out


def nominal_period(granularity: str) -> timedelta:
    return {"hour": timedelta(hours=1), "day": timedelta(days=1), "month": MEAN_MONTH}[granularity]


# --------------------------------------------------------------------------------------------
# Resolving names and aggregating series


def resolve_site(con: duckdb.DuckDBPyConnection, site: str | None) -> str:
    """The given site, or the only site in the database."""
    if site:
        return site
    rows = con.execute(
        "SELECT DISTINCT site FROM (SELECT DISTINCT site FROM kpi "
        f"UNION SELECT DISTINCT site FROM {samples_source(con)} UNION SELECT site FROM assets) ORDER BY 1"
    ).fetchall()
    sites = [r[0] for r in rows]
    if len(sites) == 1:
        return str(sites[0])
    if not sites:
        raise MVError("the database holds no data (no kpi, samples or assets rows)")
    raise MVError(f"the database holds several sites ({', '.join(sites)}): choose one with --site")


def resolve_variable(
    con: duckdb.DuckDBPyConnection, site: str, asset: str, name: str, start: datetime, end: datetime
) -> Variable:
    """Find ``name`` as a KPI of ``asset``, a tag, ``asset.name``, or an asset role (in that order)."""
    row = first_row(
        con.execute(
            "SELECT min(window_secs), any_value(unit) FROM kpi "
            "WHERE site = ? AND asset = ? AND kpi = ? AND ts >= ? AND ts < ? AND value IS NOT NULL",
            [site, asset, name, start, end],
        )
    )
    if row is not None and row[0] is not None:
        agg = aggregation_for(name, row[1])
        return Variable(name, "kpi", (name,), int(row[0]), agg, agg.unit)
    for tag in (name, f"{asset}.{name}"):
        if _tag_has_data(con, site, tag, start, end):
            agg = aggregation_for(tag)
            return Variable(name, "tag", (tag,), None, agg, agg.unit)
    roles = first_row(con.execute("SELECT roles FROM assets WHERE site = ? AND asset = ?", [site, asset]))
    if roles is not None and roles[0] is not None:
        doc = json.loads(roles[0]) if isinstance(roles[0], str) else roles[0]
        val = doc.get(name) if isinstance(doc, dict) else None
        tags = (
            [val]
            if isinstance(val, str)
            else [t for t in val if isinstance(t, str)]
            if isinstance(val, list)
            else []
        )
        if tags and any(_tag_has_data(con, site, t, start, end) for t in tags):
            agg = aggregation_for(name)
            return Variable(name, "role", tuple(tags), None, agg, agg.unit)
    raise MVError(
        f"no data for {name!r} of asset {asset!r} at site {site!r} between {start:%Y-%m-%d %H:%M} and "
        f"{end:%Y-%m-%d %H:%M} UTC (looked for a KPI, a tag, {asset}.{name} and an asset role)"
    )


def _tag_has_data(
    con: duckdb.DuckDBPyConnection, site: str, tag: str, start: datetime, end: datetime
) -> bool:
    row = first_row(
        con.execute(
            f"SELECT 1 FROM {samples_source(con)} WHERE site = ? AND tag = ? AND ts >= ? AND ts < ? "
            "AND quality = 'good' "
            "AND value IS NOT NULL LIMIT 1",
            [site, tag, start, end],
        )
    )
    return row is not None


_SERIES_SQL = """
WITH s AS (
    SELECT ts, value FROM {table}
    WHERE {where} AND ts >= $lo AND ts < $end AND value IS NOT NULL
),
d0 AS (
    SELECT ts, value,
        epoch(lead(ts) OVER w) - epoch(ts) AS gap,
        value - lag(value) OVER w AS dv,
        epoch(ts) - epoch(lag(ts) OVER w) AS back
    FROM s WINDOW w AS (ORDER BY ts)
),
m AS (SELECT coalesce(median(gap), 0) AS med FROM d0),
d AS (
    SELECT ts, value, dv, back, least(coalesce(gap, m.med), greatest($hold, 3 * m.med)) AS dt
    FROM d0, m WHERE ts >= $start
)
SELECT {bucket} AS period,
    sum(value * dt) / nullif(sum(dt), 0) AS mean_value,
    sum(dt) AS covered_secs,
    sum(dv) FILTER (WHERE dv >= 0) AS increase,
    sum(back) FILTER (WHERE dv >= 0) AS increase_secs
FROM d GROUP BY period
"""

_BUCKETS = {
    "hour": "time_bucket(INTERVAL 1 hour, ts)",
    "day": "time_bucket(INTERVAL 1 day, ts)",
    "month": "time_bucket(INTERVAL 1 month, ts)",
    None: "CAST($start AS TIMESTAMPTZ)",
}


def _series_stats(
    con: duckdb.DuckDBPyConnection,
    *,
    site: str,
    asset: str,
    var: Variable,
    series: str,
    start: datetime,
    end: datetime,
    granularity: str | None,
) -> dict[datetime, tuple[float | None, float, float | None, float | None]]:
    """Per period start: (time-weighted mean, covered seconds, counter increase, increase seconds)."""
    params: dict[str, Any] = {
        "site": site,
        "lo": start - LOOKBACK,
        "start": start,
        "end": end,
        "hold": HOLD_MIN_SECS,
    }
    if var.source == "kpi":
        table, where = "kpi", "site = $site AND asset = $asset AND kpi = $kpi AND window_secs = $w"
        params.update(asset=asset, kpi=series, w=var.window_secs)
    else:
        table, where = samples_source(con), "site = $site AND tag = $tag AND quality = 'good'"
        params.update(tag=series)
    sql = _SERIES_SQL.format(table=table, where=where, bucket=_BUCKETS[granularity])
    out: dict[datetime, tuple[float | None, float, float | None, float | None]] = {}
    for period, mean, covered, inc, inc_secs in con.execute(sql, params).fetchall():
        out[to_utc(period)] = (mean, float(covered or 0.0), inc, inc_secs)
    return out


def period_frame(
    con: duckdb.DuckDBPyConnection,
    *,
    site: str,
    asset: str,
    variables: Sequence[Variable],
    start: datetime,
    end: datetime,
    granularity: str,
    single_span: bool = False,
) -> pl.DataFrame:
    """One row per period in ``[start, end)``: ``ts``, ``fraction``, ``coverage`` and each variable.

    Variable values are full-period equivalents (extensive ones scaled to the whole period).
    ``fraction`` is the share of the period inside ``[start, end)``; ``coverage`` the lowest data
    coverage of any variable over that share. With ``single_span`` the whole window is one row and
    ``fraction`` is its length over the nominal period of ``granularity`` (rule hook).
    """
    start, end = to_utc(start), to_utc(end)
    if end <= start:
        raise MVError("the end of a period range must be after its start")
    if single_span:
        starts = [start]
        spans = {start: (end - start).total_seconds()}
        lengths = {start: nominal_period(granularity).total_seconds()}
    else:
        starts = periods(start, end, granularity)
        spans, lengths = {}, {}
        for p in starts:
            pend = next_period(p, granularity)
            spans[p] = (min(pend, end) - max(p, start)).total_seconds()
            lengths[p] = (pend - p).total_seconds()
    values: dict[str, dict[datetime, float | None]] = {}
    coverage: dict[datetime, float] = dict.fromkeys(starts, 1.0)
    for var in variables:
        col: dict[datetime, float | None] = dict.fromkeys(starts, 0.0)
        for series in var.series:
            stats_ = _series_stats(
                con,
                site=site,
                asset=asset,
                var=var,
                series=series,
                start=start,
                end=end,
                granularity=None if single_span else granularity,
            )
            for p in starts:
                mean, covered, inc, inc_secs = stats_.get(p, (None, 0.0, None, None))
                span, length = spans[p], lengths[p]
                coverage[p] = min(coverage[p], min(1.0, covered / span) if span > 0 else 0.0)
                if var.agg.kind == "integrate":
                    v = None if mean is None else mean * length / 3600.0
                elif var.agg.kind == "counter":
                    v = None if inc is None or not inc_secs else inc * length / inc_secs
                else:
                    v = mean
                prev = col[p]
                col[p] = None if v is None or prev is None else prev + v
        values[var.name] = col
    data: dict[str, Any] = {
        "ts": starts,
        "fraction": [min(1.0, spans[p] / lengths[p]) for p in starts],
        "coverage": [coverage[p] for p in starts],
    }
    for var in variables:
        data[var.name] = [values[var.name][p] for p in starts]
    schema: dict[str, pl.DataType] = {
        "ts": pl.Datetime("us", "UTC"),
        "fraction": pl.Float64(),
        "coverage": pl.Float64(),
    }
    schema.update({v.name: pl.Float64() for v in variables})
    return pl.DataFrame(data, schema=schema)


# --------------------------------------------------------------------------------------------
# Baselines table


def fit_from_db(
    con: duckdb.DuckDBPyConnection,
    *,
    site: str,
    asset: str,
    target: str,
    drivers: Sequence[str],
    start: datetime,
    end: datetime,
    granularity: str,
    min_coverage: float = MIN_COVERAGE,
    fitted_at: datetime | None = None,
) -> tuple[Baseline, pl.DataFrame]:
    """Aggregate the baseline period and fit; returns the baseline and the periods it used."""
    if granularity not in GRANULARITIES:
        raise MVError(f"granularity must be one of {', '.join(GRANULARITIES)}")
    start, end = to_utc(start), to_utc(end)
    names = [target, *drivers]
    if len(set(names)) != len(names):
        raise MVError("target and drivers must be distinct")
    variables = [resolve_variable(con, site, asset, n, start, end) for n in names]
    frame = period_frame(
        con, site=site, asset=asset, variables=variables, start=start, end=end, granularity=granularity
    )
    used = frame.filter((pl.col("fraction") >= FULL) & (pl.col("coverage") >= min_coverage)).drop_nulls(
        names
    )
    b = fit_baseline(
        used,
        target=target,
        drivers=drivers,
        site=site,
        asset=asset,
        granularity=granularity,
        period_from=start,
        period_to=end,
        unit=variables[0].unit,
        target_kind=variables[0].agg.kind,
        driver_kinds=[v.agg.kind for v in variables[1:]],
        driver_units=[v.unit for v in variables[1:]],
        fitted_at=fitted_at,
    )
    skipped = frame.height - used.height
    if skipped:
        note = (
            f"{skipped} of {frame.height} periods left out: incomplete or under "
            f"{min_coverage:.0%} data coverage"
        )
        b = dataclasses.replace(b, warnings=(*b.warnings, note))
    return b, used


_BASELINE_COLS = (
    "baseline_id",
    "site",
    "asset",
    "target",
    "drivers",
    "granularity",
    "period_from",
    "period_to",
    "n",
    "intercept",
    "coefficients",
    "std_errors",
    "p_values",
    "r2",
    "adj_r2",
    "cv_rmse",
    "nmbe",
    "valid",
    "warnings",
    "unit",
    "fitted_at",
    "f_pvalue",
    "target_mean",
    "target_kind",
    "driver_kinds",
    "driver_units",
    "driver_min",
    "driver_max",
    "driver_mean",
    "driver_sd",
)


def store_baseline(con: duckdb.DuckDBPyConnection, b: Baseline) -> None:
    """Insert (or replace) one ``baselines`` row."""
    values: list[Any] = []
    for c in _BASELINE_COLS:
        v = getattr(b, c)
        values.append(list(v) if isinstance(v, tuple) else v)
    cols = ", ".join(_BASELINE_COLS)
    marks = ", ".join("?" for _ in _BASELINE_COLS)
    con.execute("DELETE FROM baselines WHERE baseline_id = ?", [b.baseline_id])
    con.execute(f"INSERT INTO baselines ({cols}) VALUES ({marks})", values)
    log.info("stored baseline %s (%s %s ~ %s)", b.baseline_id, b.asset, b.target, " + ".join(b.drivers))


def _row_to_baseline(row: Sequence[Any]) -> Baseline:
    d = dict(zip(_BASELINE_COLS, row, strict=True))
    for k in (
        "drivers",
        "coefficients",
        "std_errors",
        "p_values",
        "warnings",
        "driver_kinds",
        "driver_units",
    ):
        d[k] = tuple(d[k] or ())
    for k in ("driver_min", "driver_max", "driver_mean", "driver_sd"):
        d[k] = tuple(float(v) for v in (d[k] or ()))
    for k in ("period_from", "period_to", "fitted_at"):
        d[k] = to_utc(d[k])
    for k in ("f_pvalue", "target_mean", "r2", "adj_r2", "cv_rmse", "nmbe", "intercept"):
        d[k] = math.nan if d[k] is None else float(d[k])
    d["target_kind"] = d["target_kind"] or aggregation_for(d["target"]).kind
    d["unit"] = d["unit"] or ""
    d["valid"] = bool(d["valid"])
    d["n"] = int(d["n"] or 0)
    return Baseline(**d)


def list_baselines(con: duckdb.DuckDBPyConnection, site: str | None = None) -> list[Baseline]:
    """Stored baselines, oldest fit first."""
    cols = ", ".join(_BASELINE_COLS)
    if site:
        rows = con.execute(
            f"SELECT {cols} FROM baselines WHERE site = ? ORDER BY fitted_at", [site]
        ).fetchall()
    else:
        rows = con.execute(f"SELECT {cols} FROM baselines ORDER BY fitted_at").fetchall()
    return [_row_to_baseline(r) for r in rows]


def load_baseline(con: duckdb.DuckDBPyConnection, baseline_id: str) -> Baseline:
    cols = ", ".join(_BASELINE_COLS)
    row = first_row(con.execute(f"SELECT {cols} FROM baselines WHERE baseline_id = ?", [baseline_id]))
    if row is None:
        raise MVError(f"no baseline with id {baseline_id!r} (see `kilnwatch baseline show`)")
    return _row_to_baseline(row)


def live_baselines(con: duckdb.DuckDBPyConnection, site: str) -> list[Baseline]:
    """The baseline in force per asset and target: the latest fitted one."""
    cols = ", ".join(_BASELINE_COLS)
    rows = con.execute(
        f"SELECT {cols} FROM baselines WHERE site = ? "
        "QUALIFY row_number() OVER (PARTITION BY asset, target ORDER BY fitted_at DESC) = 1 ORDER BY asset, target",
        [site],
    ).fetchall()
    return [_row_to_baseline(r) for r in rows]


