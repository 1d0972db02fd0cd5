"""Trend charts of the auditor report: what each chart plots, at which resolution, and drawing it.

Split from agent/report.py so the data behind every chart can be read and tested without rendering
(:func:`trend_chart` returns the series and reference lines, :func:`trend_figure` draws them with
matplotlib's object API on the Agg canvas). Resolution by report length and the reference lines
(GB 16780 grade limits, targets): docs/auditors.md, "The HTML report"; docs/kpis.md §1, §3.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb
import polars as pl
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from agent.storage import query_frame
from agent.views import ensure_views
from common.values import to_utc
from rules.grades import GB16780_LIMITS

#: Resolution of the trend charts by report length (docs/auditors.md, "The HTML report"): under a
#: day 1-min values, up to 3 days 15-min means, up to 14 days hourly means, beyond that daily means.
MINUTE_TRENDS_MAX = timedelta(days=1)
QUARTER_HOUR_TRENDS_MAX_DAYS = 3
HOURLY_TRENDS_MAX_DAYS = 14
#: kcal per kgce (GB/T 2589, docs/kpis.md §1): a kgce/t limit x 7 is the same limit in kcal/kg clinker.
KCAL_PER_KGCE = 7000.0
GRADE_COLOURS = ("#2e7d32", "#f9a825", "#c62828")
#: (line style, marker) per series of a trend chart: overlapping series differ without colour too.
SERIES_STYLES: tuple[tuple[str, str], ...] = (
    ("-", "o"),
    ("--", "s"),
    (":", "^"),
    ("-.", "D"),
    ("-", "v"),
    ("--", "x"),
)
#: Markers per series and chart (every n-th point), so a long line stays readable.
MARKERS_PER_SERIES = 12


def figure(width: float = 9.0, height: float = 3.6) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig


def time_axis(ax: Any, times: Sequence[datetime] = (), pad: timedelta = timedelta(0)) -> None:
    """Date ticks; with ``times``, the x limits are the data's range (``pad`` either side, so a
    single point or a bar is not drawn on the frame), not matplotlib's default of years."""
    loc = AutoDateLocator(minticks=3, maxticks=9)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(loc, show_offset=True))  # type: ignore[no-untyped-call]
    if times:
        lo, hi = min(times), max(times)
        pad = max(pad, (hi - lo) / 100)
        ax.set_xlim(lo - pad, hi + pad)
    ax.set_xlabel("UTC")
    ax.grid(True, alpha=0.3)


@dataclass(frozen=True)
class Resolution:
    """What one point of a trend chart is: ``bucket`` wide, from ``source``."""

    label: str
    bucket: timedelta
    source: str  # "kpi" (finest stored window per bucket), "hourly" or "daily" view


def trend_resolution(start: datetime, end: datetime) -> Resolution:
    """The trend charts' resolution for the period ``[start, end)`` (thresholds above)."""
    span = end - start
    if span < MINUTE_TRENDS_MAX:
        return Resolution("1-min values", timedelta(minutes=1), "kpi")
    if span <= timedelta(days=QUARTER_HOUR_TRENDS_MAX_DAYS):
        return Resolution("15-min means", timedelta(minutes=15), "kpi")
    if span <= timedelta(days=HOURLY_TRENDS_MAX_DAYS):
        return Resolution("hourly means", timedelta(hours=1), "hourly")
    return Resolution("daily means", timedelta(days=1), "daily")


@dataclass(frozen=True)
class Series:
    """One line of a trend chart: an asset's values at the start of each bucket."""

    label: str
    t: list[datetime]
    values: list[float]


@dataclass(frozen=True)
class RefLine:
    """A horizontal reference line (grade limit, target)."""

    value: float
    label: str
    colour: str
    linestyle: str = "--"


@dataclass(frozen=True)
class TrendChart:
    """What one trend chart plots: :func:`trend_chart` reads it, :func:`trend_figure` draws it."""

    kpi: str
    title: str
    ylabel: str
    resolution: Resolution
    series: list[Series]
    lines: list[RefLine] = field(default_factory=list)

    def times(self) -> list[datetime]:
        return [t for s in self.series for t in s.t]


#: Trend KPIs: name -> (title, y label).
TREND_KPIS: dict[str, tuple[str, str]] = {
    "specific_heat_kcal_per_kg_clinker": ("Specific heat consumption, kcal/kg clinker", "kcal/kg"),
    "clinker_energy_kgce_per_t": ("Clinker comprehensive energy, kgce/t", "kgce/t"),
    "specific_power_kwh_per_t": ("Specific electrical energy, kWh/t of each asset's product", "kWh/t"),
}


def _trend(
    con: duckdb.DuckDBPyConnection, site: str, kpi: str, start: datetime, end: datetime, res: Resolution
) -> pl.DataFrame:
    """(asset, t, value) rows of one KPI at resolution ``res``, ordered by asset and time."""
    if res.source == "kpi":
        # per bucket the finest stored window (1-min rows may have been pruned: then 15-min or 1-h
        # rows are the points), as v_kpi_hourly does per hour
        bucket_us = int(res.bucket.total_seconds()) * 1_000_000
        return query_frame(
            con,
            f"""SELECT asset, to_timestamp(b * {bucket_us // 1_000_000}) AS t, value FROM (
                SELECT asset, epoch_us(ts) // {bucket_us} AS b, window_secs, avg(value) AS value
                FROM kpi WHERE site = ? AND kpi = ? AND ts >= ? AND ts < ? AND window_secs <= 3600
                    AND value IS NOT NULL
                GROUP BY asset, b, window_secs
                QUALIFY row_number() OVER (PARTITION BY asset, b ORDER BY window_secs) = 1
            ) ORDER BY asset, t""",
            [site, kpi, start, end],
        )
    if res.source == "hourly":
        return query_frame(
            con,
            "SELECT asset, hour AS t, value FROM v_kpi_hourly WHERE site = ? AND kpi = ? AND hour >= ? AND hour < ? "
            "AND value IS NOT NULL ORDER BY asset, t",
            [site, kpi, start, end],
        )
    return query_frame(
        con,
        "SELECT asset, CAST(day AS TIMESTAMP) AS t, value FROM v_kpi_daily WHERE site = ? AND kpi = ? "
        "AND day >= CAST(? AS DATE) AND day < CAST(? AS DATE) AND value IS NOT NULL ORDER BY asset, t",
        [site, kpi, start.date(), (end + timedelta(days=1) - timedelta(microseconds=1)).date()],
    )


def asset_settings(con: duckdb.DuckDBPyConnection, site: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """asset -> (type, settings from the agent's config), from the ``assets`` table."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for asset, typ, roles in con.execute(
        "SELECT asset, type, roles FROM assets WHERE site = ?", [site]
    ).fetchall():
        doc = json.loads(roles) if isinstance(roles, str) else (roles or {})
        out[asset] = (typ, doc if isinstance(doc, dict) else {})
    return out


def _grade_lines(limits: Sequence[float], label: str) -> list[RefLine]:
    return [
        RefLine(lim, f"{label} grade {i + 1} ({lim:g})", colour)
        for i, (lim, colour) in enumerate(zip(limits, GRADE_COLOURS, strict=True))
    ]


def trend_chart(
    con: duckdb.DuckDBPyConnection, site: str, kpi: str, start: datetime, end: datetime
) -> TrendChart:
    """The series and reference lines of the trend chart of ``kpi`` (a :data:`TREND_KPIS` name)."""
    res = trend_resolution(start, end)
    frame = _trend(con, site, kpi, start, end, res)
    series = [
        Series(str(asset), part["t"].to_list(), part["value"].to_list())
        for (asset,), part in frame.group_by("asset", maintain_order=True)
    ]
    assets = asset_settings(con, site)
    lines: list[RefLine] = []
    if kpi == "specific_heat_kcal_per_kg_clinker":
        coal = GB16780_LIMITS["clinker_coal_kgce_per_t"]
        # kgce/t x 7000 kcal/kgce / 1000 kg/t (docs/kpis.md §1)
        lines = _grade_lines([lim * KCAL_PER_KGCE / 1000 for lim in coal], "GB 16780 coal")
        for asset, (_, d) in assets.items():
            target = d.get("target_specific_heat_kcal_per_kg")
            if isinstance(target, int | float):
                lines.append(RefLine(float(target), f"{asset} target ({target:g})", "black", "-"))
    elif kpi == "clinker_energy_kgce_per_t":
        lines = _grade_lines(GB16780_LIMITS["clinker_energy_kgce_per_t"], "GB 16780")
    elif kpi == "specific_power_kwh_per_t" and any(t == "cement_mill" for t, _ in assets.values()):
        lines = _grade_lines(GB16780_LIMITS["cement_preparation_kwh_per_t"], "GB 16780 cement prep.")
    title, ylabel = TREND_KPIS[kpi]
    return TrendChart(kpi, f"{title} ({res.label})", ylabel, res, series, lines)


def trend_charts(
    con: duckdb.DuckDBPyConnection, site: str, start: datetime, end: datetime
) -> list[TrendChart]:
    """Every trend chart of the report (one per :data:`TREND_KPIS` entry), with or without data."""
    ensure_views(con)
    start, end = to_utc(start), to_utc(end)
    return [trend_chart(con, site, kpi, start, end) for kpi in TREND_KPIS]


def trend_figure(chart: TrendChart) -> Figure:
    """Draw ``chart``: one line per asset (own line style and marker), reference lines, x limits
    from the data, the legend to the right of the plot area."""
    fig = figure()
    ax = fig.add_subplot()
    for i, s in enumerate(chart.series):
        linestyle, marker = SERIES_STYLES[i % len(SERIES_STYLES)]
        ax.plot(
            s.t,  # type: ignore[arg-type]  # datetimes: matplotlib's date converter
            s.values,
            linewidth=1.2,
            linestyle=linestyle,
            marker=marker,
            markersize=4,
            markevery=max(1, len(s.t) // MARKERS_PER_SERIES),
            label=s.label,
        )
    for line in chart.lines:
        ax.axhline(line.value, color=line.colour, linestyle=line.linestyle, linewidth=1.0, label=line.label)
    ax.set_title(chart.title, fontsize=10)
    ax.set_ylabel(chart.ylabel)
    time_axis(ax, chart.times(), chart.resolution.bucket / 2)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=True)
    return fig


