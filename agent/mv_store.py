"""M&V on the site database: periods from ``kpi``/``samples``, ``baselines`` and ``mv_savings`` rows.

The statistics are in :mod:`rules.mv`; this module turns stored history into one row per period and
keeps the two M&V tables current.

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
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import polars as pl

from agent.storage import transaction
from common.values import to_utc
from rules.catalogue import KPI_ROW_SCHEMA
from rules.mv import (
    GRANULARITIES,
    MIN_COVERAGE,
    Aggregation,
    Baseline,
    MVError,
    aggregation_for,
    deviation_pct,
    fit_baseline,
    reporting_warnings,
    savings,
)

log = logging.getLogger(__name__)

#: Longest a sample is held when the series is fast; slow series hold 3 sample intervals.
HOLD_MIN_SECS = 120.0
#: Samples fetched before a period so the first counter increase and interval are known.
LOOKBACK = timedelta(hours=1)
#: Mean month length used when a monthly baseline is applied to an arbitrary window.
MEAN_MONTH = timedelta(days=30.436875)
#: At most this much reporting time is (re)computed per :func:`update_savings` call and baseline.
CATCH_UP = timedelta(days=7)
#: KPI name of the rule hook (a percentage; positive = more energy than the baseline expects).
DEVIATION_KPI = "baseline_deviation_pct"

_FULL = 1.0 - 1e-9


@dataclass(frozen=True, slots=True)
class Variable:
    """Where a target or driver comes from and how it is reduced per period."""

    name: str
    source: str  # "kpi" | "tag" | "role"
    series: tuple[str, ...]  # KPI name, or tag name(s) summed
    window_secs: int | None
    agg: Aggregation
    unit: str


def first_row(result: duckdb.DuckDBPyConnection) -> tuple[Any, ...] | None:
    """The first row of an executed query, consuming the whole result.

    duckdb 2.0 keeps a partly fetched result open (``fetchone``), and then refuses some later calls
    on the connection (``register``) with "unfinished result"; fetching everything avoids that.
    """
    rows = result.fetchall()
    return tuple(rows[0]) if rows else None


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
        "SELECT DISTINCT site FROM (SELECT DISTINCT site FROM kpi UNION SELECT DISTINCT site FROM samples "
        "UNION SELECT site FROM assets) ORDER BY 1"
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
            "SELECT 1 FROM samples WHERE site = ? AND tag = ? AND ts >= ? AND ts < ? AND quality = 'good' "
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
        table, where = "samples", "site = $site AND tag = $tag AND quality = 'good'"
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
    used = frame.filter((pl.col("fraction") >= _FULL) & (pl.col("coverage") >= min_coverage)).drop_nulls(
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


# --------------------------------------------------------------------------------------------
# mv_savings


def _reporting_frame(
    con: duckdb.DuckDBPyConnection, b: Baseline, start: datetime, end: datetime
) -> pl.DataFrame:
    names = [b.target, *b.drivers]
    variables = [resolve_variable(con, b.site, b.asset, n, start, end) for n in names]
    return period_frame(
        con, site=b.site, asset=b.asset, variables=variables, start=start, end=end, granularity=b.granularity
    )


def _savings_rows(
    b: Baseline, frame: pl.DataFrame, *, cumulative_start: float, min_coverage: float
) -> pl.DataFrame:
    """Savings of covered periods plus NULL rows for complete periods without enough data."""
    names = [b.target, *b.drivers]
    ok = frame.filter(pl.col("coverage") >= min_coverage).drop_nulls(names)
    gaps = frame.filter(pl.col("fraction") >= _FULL).join(ok.select("ts"), on="ts", how="anti")
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
    return s.with_columns(
        site=pl.lit(b.site), asset=pl.lit(b.asset), baseline_id=pl.lit(b.baseline_id), unit=pl.lit(b.unit)
    )


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
    try:
        con.execute(f"INSERT INTO mv_savings ({', '.join(cols)}) SELECT {', '.join(cols)} FROM _kw_mv")
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
    rows = _savings_rows(b, frame, cumulative_start=cum0, min_coverage=min_coverage)
    warnings.extend(reporting_warnings(b, frame.filter(pl.col("fraction") >= _FULL)))
    n_gaps = int(rows["avoided"].is_null().sum())
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
                    "SELECT max(ts) FROM samples WHERE site = ? AND tag IN (SELECT unnest(?::VARCHAR[])) AND ts >= ?",
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
                [b.baseline_id, current, _FULL],
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
        rows = _savings_rows(b, frame, cumulative_start=cum0, min_coverage=MIN_COVERAGE)
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
    frame = frame.filter(pl.col("coverage") >= MIN_COVERAGE).drop_nulls([b.target, *b.drivers])
    if frame.height == 0:
        return None
    s = savings(b, frame)
    return deviation_pct(float(s["expected"][0]), float(s["actual"][0]))


def recent_deviations(
    con: duckdb.DuckDBPyConnection, site: str, now: datetime, *, hours: float = 1.0
) -> dict[str, float | None]:
    """``baseline_deviation_pct`` over the last ``hours`` of every asset with a live baseline.

    What the daemon feeds the rule engine every minute (``mill.specific_power.above_baseline``).
    """
    now = to_utc(now)
    return {
        asset: recent_deviation(con, site, asset, hours, now=now)
        for asset in sorted({b.asset for b in live_baselines(con, site)})
    }


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
