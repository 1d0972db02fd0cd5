"""The auditor report: one self-contained HTML file (tables + inline PNG charts) for a date range.

Sections: summary, specific heat and clinker energy against targets and GB 16780-2021 grade lines,
the kilns' loss waterfalls and the cost of their deviation (agent/report_losses.py, left out without
loss rows), electrical kWh/t, daily GB 16780 grades, M&V baselines (scatter with fit line, metrics,
CUSUM), alerts and the shift table. ``kilnwatch report --protocol`` writes the protocol sheet of
agent/report_protocol.py instead. Charts are drawn with matplotlib's object API on the Agg canvas (no
display, no global pyplot state) and embedded as base64 PNG, so the file can be mailed or archived
as is. Everything is read through the auditor views (agent.views) and the M&V tables.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
from matplotlib.figure import Figure

from agent import mv_savings, mv_store
from agent.export import no_progress_bar
from agent.report_charts import (
    TrendChart,
    asset_settings,
    figure,
    time_axis,
    trend_chart,
    trend_figure,
)
from agent.report_html import CSS, Raw, png_img
from agent.report_html import esc as _esc
from agent.report_html import num as _num
from agent.report_html import table as _table
from agent.report_losses import TARGET_TOLERANCE_KCAL, deviation_totals, loss_waterfalls, waterfall_figure
from agent.storage import first_row, samples_source
from agent.views import ensure_views
from common.values import to_utc
from rules.assets import TAG_ROLES, as_tag_list
from rules.grades import MIN_GRADE_COVERAGE
from rules.mv import Baseline, MVError, per_unit, percent_savings

log = logging.getLogger(__name__)

MAX_SHIFT_ROWS = 150
MAX_ALERT_ROWS = 30


@dataclass
class _Doc:
    """The report being assembled: HTML fragments per section."""

    sections: list[str] = field(default_factory=list)
    anchors: list[str] = field(default_factory=list)
    images: int = 0

    def section(self, anchor: str, title: str, body: str) -> None:
        self.anchors.append(anchor)
        self.sections.append(f'<section id="{anchor}">\n<h2>{_esc(title)}</h2>\n{body}\n</section>')


def write_report(
    con: duckdb.DuckDBPyConnection,
    *,
    site: str,
    start: datetime,
    end: datetime,
    out_path: str | Path,
) -> Path:
    """Write the HTML report for ``site`` over ``[start, end)`` (UTC) to ``out_path``; returns the path."""
    from rich.console import Console
    from rich.progress import Progress

    start, end = to_utc(start), to_utc(end)
    ensure_views(con)
    doc = _Doc()
    steps: list[tuple[str, Callable[[], None]]] = [
        ("summary", lambda: _summary(con, doc, site, start, end)),
        ("specific heat", lambda: _heat(con, doc, site, start, end)),
        ("heat losses", lambda: _losses(con, doc, site, start, end)),
        ("electrical energy", lambda: _power(con, doc, site, start, end)),
        ("GB 16780 grades", lambda: _grades(con, doc, site, start, end)),
        ("M&V baselines", lambda: _baselines(con, doc, site, start, end)),
        ("alerts", lambda: _alerts(con, doc, site, start, end)),
        ("shifts", lambda: _shifts(con, doc, site, start, end)),
    ]
    console = Console(stderr=True)
    with (
        no_progress_bar(con),
        Progress(console=console, disable=not console.is_terminal, transient=True) as progress,
    ):
        task = progress.add_task("report", total=len(steps))
        for label, step in steps:
            progress.update(task, description=label)
            step()
            progress.advance(task)
    out = Path(out_path)
    out.write_text(_page(site, start, end, doc), encoding="utf-8")
    log.info("report for %s written to %s (%d charts)", site, out, doc.images)
    return out


# --------------------------------------------------------------------------------------------
# helpers


def _q(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame:
    frame: pl.DataFrame = con.sql(sql, params=list(params) or None).pl()
    return frame


def _grade_cell(g: object) -> Raw:
    if g is None:
        return Raw('<span class="g0">fails 3</span>')
    return Raw(f'<span class="g{int(str(g))}">grade {int(str(g))}</span>')


def _img(doc: _Doc, fig: Figure, alt: str) -> str:
    doc.images += 1
    return png_img(fig, alt)


# --------------------------------------------------------------------------------------------
# sections


def _summary(con: duckdb.DuckDBPyConnection, doc: _Doc, site: str, start: datetime, end: datetime) -> None:
    counts = first_row(
        con.execute(
            f"""SELECT
            (SELECT count(*) FROM kpi WHERE site = $s AND ts >= $a AND ts < $b),
            (SELECT count(*) FROM {samples_source(con)} WHERE site = $s AND ts >= $a AND ts < $b),
            (SELECT count(*) FROM alerts WHERE site = $s AND started_at >= $a AND started_at < $b),
            (SELECT count(*) FROM baselines WHERE site = $s)""",
            {"s": site, "a": start, "b": end},
        )
    )
    n_kpi, n_samples, n_alerts, n_baselines = counts if counts else (0, 0, 0, 0)
    assets = asset_settings(con, site)
    whole_days = start.time() == end.time() == datetime.min.time()
    if whole_days:
        stats = _q(
            con,
            "SELECT asset, kpi, any_value(unit) AS unit, avg(value) AS mean, min(value) AS min, max(value) AS max, "
            "sum(n_hours) AS hours FROM v_kpi_daily WHERE site = ? AND day >= ? AND day < ? "
            "GROUP BY asset, kpi ORDER BY asset, kpi",
            [site, start.date(), end.date()],
        )
    else:  # a period that is not whole UTC days (e.g. 2 hours): the hours inside it
        stats = _q(
            con,
            "SELECT asset, kpi, any_value(unit) AS unit, avg(value) AS mean, min(value) AS min, max(value) AS max, "
            "count(value) AS hours FROM v_kpi_hourly WHERE site = ? AND hour >= ? AND hour < ? "
            "GROUP BY asset, kpi ORDER BY asset, kpi",
            [site, start, end],
        )
    facts = _table(
        ["site", "from (UTC)", "to (UTC, exclusive)", "KPI rows", "samples", "alerts started", "baselines"],
        [[site, start, end, f"{n_kpi:,}", f"{n_samples:,}", f"{n_alerts:,}", f"{n_baselines:,}"]],
    )
    asset_rows: list[list[object]] = []
    for a, (t, d) in assets.items():
        roles = [r for r in TAG_ROLES.get(t, ()) if d.get(r)]
        asset_rows.append([a, t, ", ".join(f"{r} ({len(as_tag_list(d[r]))})" for r in roles)])
    body = facts
    if asset_rows:
        body += "<h3>Assets</h3>" + _table(["asset", "type", "signal roles (number of tags)"], asset_rows)
    if stats.height:
        body += f"<h3>KPI overview (mean of {'daily' if whole_days else 'hourly'} values)</h3>" + _table(
            ["asset", "KPI", "unit", "mean", "min", "max", "hours with data"],
            [list(r) for r in stats.iter_rows()],
            digits=2,
        )
    else:
        body += "<p>No KPI rows in this period.</p>"
    doc.section("summary", "Summary", body)


def _chart_img(doc: _Doc, chart: TrendChart) -> str:
    return _img(doc, trend_figure(chart), chart.title)


def _heat(con: duckdb.DuckDBPyConnection, doc: _Doc, site: str, start: datetime, end: datetime) -> None:
    body = ""
    chart = trend_chart(con, site, "specific_heat_kcal_per_kg_clinker", start, end)
    if chart.series:
        body += _chart_img(doc, chart)
        body += (
            "<p>Dashed lines: GB 16780-2021 clinker comprehensive <em>coal</em> grades (94/100/109 kgce/t) "
            "expressed in kcal/kg clinker (1 kgce = 7,000 kcal); solid line: the kiln's configured target.</p>"
        )
    else:
        body += "<p>No specific heat KPI in this period.</p>"
    chart = trend_chart(con, site, "clinker_energy_kgce_per_t", start, end)
    if chart.series:
        body += _chart_img(doc, chart)
    doc.section("specific-heat", "Thermal energy against targets and GB 16780-2021", body)


def _losses(con: duckdb.DuckDBPyConnection, doc: _Doc, site: str, start: datetime, end: datetime) -> None:
    """Loss waterfall per kiln and the money/CO2 of the deviation (agent/report_losses.py); each
    part is left out without its rows, the section when both are."""
    body = ""
    for w in loss_waterfalls(con, site, start, end):
        body += f"<h3>{_esc(w.asset)}: where the deviation from target went</h3>"
        body += _img(doc, waterfall_figure(w), f"Loss waterfall {w.asset}")
        rows: list[list[object]] = [["target", w.target], *([label, v] for label, v in w.terms), ["actual", w.actual]]
        body += _table(["", "kcal/kg clinker"], rows)
        note = (
            f"Clinker-weighted means over {w.hours:,.1f} h with a breakdown ({w.steady_hours:,.1f} h steady); "
            f"the causes add up to actual − target = {w.deviation:+.1f} kcal/kg (docs/kpis.md §10)."
        )
        if w.configured_target is not None and abs(w.configured_target - w.target) > TARGET_TOLERANCE_KCAL:
            note += f" The configured target is now {w.configured_target:g} kcal/kg: it changed during the period."
        body += f"<p>{note}</p>"
    totals = deviation_totals(con, site, start, end)
    if totals:
        body += "<h3>Cost and CO2 of the deviation from target</h3>" + _table(
            ["kiln", "excess heat, GJ", "hours", "excess fuel cost", "currency", "excess CO2, t", "hours"],
            [[d.asset, d.heat_gj, d.heat_hours, d.cost, d.currency, d.co2_t, d.co2_hours] for d in totals],
        )
        body += (
            "<p>Σ of the hourly excess heat, marginal-fuel cost and fossil CO2 × hours (docs/kpis.md §11); "
            "negative = below target, a saving. Hours: hours with a value.</p>"
        )
    if body:
        doc.section("losses", "Heat losses and the cost of the deviation", body)


def _power(con: duckdb.DuckDBPyConnection, doc: _Doc, site: str, start: datetime, end: datetime) -> None:
    chart = trend_chart(con, site, "specific_power_kwh_per_t", start, end)
    if not chart.series:
        doc.section("power", "Electrical energy, kWh/t", "<p>No specific power KPI in this period.</p>")
        return
    body = _chart_img(doc, chart)
    if chart.lines:
        body += (
            "<p>Dashed lines: GB 16780-2021 cement preparation grades (26/29/34 kWh/t) for cement mills.</p>"
        )
    doc.section("power", "Electrical energy, kWh/t", body)


def _grades(con: duckdb.DuckDBPyConnection, doc: _Doc, site: str, start: datetime, end: datetime) -> None:
    frame = _q(
        con,
        "SELECT * FROM v_energy_grade WHERE site = ? AND day >= ? AND day <= ? ORDER BY day, asset",
        [site, start.date(), (end - timedelta(microseconds=1)).date()],  # every UTC day the period touches
    )
    if frame.height == 0:
        doc.section("grades", "Daily GB 16780-2021 grades", "<p>No graded KPI rows in this period.</p>")
        return
    rows: list[list[object]] = []
    for r in frame.iter_rows(named=True):
        row: list[object] = [r["day"], r["asset"], r["asset_type"]]
        reason = r.get("reason") or ""
        for value_col, short in (
            ("clinker_energy_kgce_per_t", "clinker_energy"),
            ("clinker_coal_kgce_per_t", "clinker_coal"),
            ("clinker_power_kwh_per_t", "clinker_power"),
            ("cement_preparation_kwh_per_t", "cement_preparation"),
        ):
            v = r.get(value_col)
            g = r.get(f"{short}_grade")
            # v_energy_grade: NULL grade = fails grade 3, or not graded (low coverage, value <= 0): reason
            ungraded = g is None and bool(reason) and f"{short}: fails grade 3" not in reason
            cell = '<span class="g0">not graded</span>' if ungraded else _grade_cell(g).html
            row.append(Raw(f"{_num(v, 1)} {cell}", numeric=True) if v is not None else None)
        row.append(reason or "")
        rows.append(row)
    body = _table(
        [
            "day (UTC)",
            "asset",
            "type",
            "clinker energy kgce/t",
            "clinker coal kgce/t",
            "clinker power kWh/t",
            "cement prep. kWh/t",
            "no grade because",
        ],
        rows,
    )
    body += (
        "<p>Grade 1 is the most stringent; 'fails 3' = above the limit every line must meet. A day is "
        f"graded only with values in at least {MIN_GRADE_COVERAGE:.0%} of it and a value above 0 "
        "(docs/kpis.md §3); the last column says why an indicator has no grade. Grades are per whole UTC "
        "day: a period of part of a day shows the grades of the days it touches.</p>"
    )
    doc.section("grades", "Daily GB 16780-2021 grades", body)


def _baselines(con: duckdb.DuckDBPyConnection, doc: _Doc, site: str, start: datetime, end: datetime) -> None:
    baselines = mv_store.list_baselines(con, site)
    if not baselines:
        doc.section(
            "baselines",
            "M&V baselines",
            "<p>No baselines stored. Fit one with <code>kilnwatch baseline fit</code>.</p>",
        )
        return
    parts: list[str] = [
        "<p>OLS baselines; p = fitted parameters incl. intercept; CV(RMSE) and NMBE use n − p (ASHRAE "
        "Guideline 14); residual = measured − predicted. Avoided energy = expected − actual, so a rising "
        "CUSUM means savings.</p>"
    ]
    for b in baselines:
        parts.append(
            f"<h3>{_esc(b.baseline_id)}: {_esc(b.asset)} {_esc(b.target)} ~ {_esc(' + '.join(b.drivers))}</h3>"
        )
        coef_rows: list[list[object]] = [
            ["intercept", b.unit, b.intercept, b.std_errors[0], b.p_values[0]],
            *[
                [d, per_unit(b.unit, u), c, se, p]
                for d, u, c, se, p in zip(
                    b.drivers,
                    b.driver_units or ("",) * len(b.drivers),
                    b.coefficients,
                    b.std_errors[1:],
                    b.p_values[1:],
                    strict=True,
                )
            ],
        ]
        parts.append(_table(["term", "unit", "coefficient", "std error", "p-value"], coef_rows, digits=4))
        parts.append(
            _table(
                ["granularity", "baseline period", "n", "R²", "adj. R²", "CV(RMSE) %", "NMBE %", "EnPI Lite"],
                [
                    [
                        b.granularity,
                        f"{b.period_from:%Y-%m-%d} – {b.period_to:%Y-%m-%d}",
                        str(b.n),
                        f"{b.r2:.4f}",
                        f"{b.adj_r2:.4f}",
                        f"{b.cv_rmse:.3f}",
                        f"{b.nmbe:.3f}",
                        "valid" if b.valid else "not valid",
                    ]
                ],
            )
        )
        if b.warnings:
            parts.append('<ul class="warn">' + "".join(f"<li>{_esc(w)}</li>" for w in b.warnings) + "</ul>")
        parts.append(_scatter(con, doc, b))
        parts.append(_cusum(con, doc, b, start, end))
    doc.section("baselines", "M&V baselines, avoided energy and CUSUM", "\n".join(parts))


def _scatter(con: duckdb.DuckDBPyConnection, doc: _Doc, b: Baseline) -> str:
    try:
        variables = [
            mv_store.resolve_variable(con, b.site, b.asset, n, b.period_from, b.period_to)
            for n in (b.target, *b.drivers)
        ]
        frame = mv_store.period_frame(
            con,
            site=b.site,
            asset=b.asset,
            variables=variables,
            start=b.period_from,
            end=b.period_to,
            granularity=b.granularity,
        )
    except MVError as exc:
        return f"<p>Baseline-period data not available for the scatter plot ({_esc(exc)}).</p>"
    frame = frame.filter((pl.col("fraction") >= 1 - 1e-9) & (pl.col("coverage") >= 0.9)).drop_nulls(
        [b.target, *b.drivers]
    )
    if frame.height == 0:
        return "<p>No complete baseline periods left in the database for the scatter plot.</p>"
    fig = figure(6.5, 4.2)
    ax = fig.add_subplot()
    y = frame[b.target].to_numpy()
    nmbe = round(b.nmbe, 2) + 0.0  # no "-0.00" for the in-sample zero
    metrics = f"R² = {b.r2:.4f}\nCV(RMSE) = {b.cv_rmse:.2f} %\nNMBE = {nmbe:.2f} %\nn = {b.n}"
    if len(b.drivers) == 1:
        d = b.drivers[0]
        x = frame[d].to_numpy()
        ax.scatter(x, y, s=14, alpha=0.8, label="baseline periods")
        xs = np.linspace(float(x.min()), float(x.max()), 50)
        ax.plot(
            xs,
            b.predict({d: xs}),
            color="#c62828",
            label=f"{b.target} = {b.intercept:.4g} + {b.coefficients[0]:.4g}·{d}",
        )
        kind = b.driver_kinds[0] if b.driver_kinds else "mean"
        ax.set_xlabel(_axis_label(d, b.driver_units[0] if b.driver_units else "", kind, b.granularity))
    else:
        pred = b.predict(frame)
        ax.scatter(pred, y, s=14, alpha=0.8, label="baseline periods")
        lo, hi = float(min(pred.min(), y.min())), float(max(pred.max(), y.max()))
        ax.plot([lo, hi], [lo, hi], color="#c62828", label="predicted = measured")
        ax.set_xlabel("predicted " + _axis_label(b.target, b.unit, b.target_kind, b.granularity))
    ax.set_ylabel(_axis_label(b.target, b.unit, b.target_kind, b.granularity))
    ax.text(
        0.02,
        0.97,
        metrics,
        transform=ax.transAxes,
        va="top",
        fontsize=8,
        family="monospace",
        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "#999"},
    )
    ax.set_title(f"Baseline {b.baseline_id} ({b.granularity})", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _img(doc, fig, f"baseline scatter {b.baseline_id}")


def _axis_label(name: str, unit: str, kind: str, granularity: str) -> str:
    """``power_kw, kWh per hour`` for integrated quantities, ``fineness, cm²/g (mean)`` otherwise."""
    return f"{name}, {unit} per {granularity}" if kind != "mean" else f"{name}, {unit} (mean)"


def _cusum(con: duckdb.DuckDBPyConnection, doc: _Doc, b: Baseline, start: datetime, end: datetime) -> str:
    stored = mv_savings.savings_frame(con, b.baseline_id).filter((pl.col("ts") >= start) & (pl.col("ts") < end))
    source = "stored mv_savings rows"
    if stored.height == 0:
        rep_start = max(start, b.period_to)
        if rep_start >= end:
            return "<p>The report period lies inside the baseline period: no savings to show.</p>"
        try:
            stored, _ = mv_savings.compute_savings(con, b, rep_start, end, store=False)
        except MVError as exc:
            return f"<p>No reporting-period data for savings ({_esc(exc)}).</p>"
        source = "computed for this report (not stored)"
    stored = stored.drop_nulls("avoided")
    if stored.height == 0:
        return "<p>No reporting-period savings in this period.</p>"
    fig = figure(9.0, 3.6)
    ax = fig.add_subplot()
    ts = stored["ts"].to_list()
    ax.bar(
        ts,
        stored["avoided"].to_list(),
        width=_bar_width(b.granularity),
        alpha=0.35,
        label="avoided per period",
    )
    cum = stored["avoided"].cum_sum().to_list()
    ax.plot(
        ts, cum, color="#1565c0", linewidth=1.6, marker="o", markersize=2.5, label="CUSUM of avoided energy"
    )
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel(b.unit)
    ax.set_title(f"CUSUM {b.baseline_id}: expected − actual, up is good", fontsize=10)
    time_axis(ax, ts, timedelta(days=_bar_width(b.granularity)))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    pct = percent_savings(stored)
    total = float(stored["avoided"].sum())
    summary = (
        f"<p>{stored.height} period(s), {source}: avoided {total:,.1f} {_esc(b.unit)}"
        + (f" = {pct:.2f} % of the adjusted baseline" if pct is not None else "")
        + ".</p>"
    )
    return _img(doc, fig, f"CUSUM {b.baseline_id}") + summary


def _bar_width(granularity: str) -> float:
    return {"hour": 1 / 24 * 0.8, "day": 0.8, "month": 24.0}.get(granularity, 0.8)


def last_data_time(con: duckdb.DuckDBPyConnection, site: str) -> datetime | None:
    """Time of the site's newest stored sample or KPI window: what the database knows up to."""
    row = first_row(
        con.execute(
            f"SELECT max(t) FROM (SELECT max(ts) AS t FROM {samples_source(con)} WHERE site = $s "
            "UNION ALL SELECT max(ts + to_seconds(window_secs)) FROM kpi WHERE site = $s)",
            {"s": site},
        )
    )
    return to_utc(row[0]) if row is not None and row[0] is not None else None


def _alert_window(con: duckdb.DuckDBPyConnection, site: str, end: datetime) -> datetime:
    """Where episodes still open stop counting: the last data time, not the end of the requested
    period (which may lie in the future): the database knows nothing about the alert after it."""
    last = last_data_time(con, site)
    return min(end, last) if last is not None else end


_ALERT_OVERLAP = "site = $s AND started_at < $b AND coalesce(resolved_at, $c) >= $a"


def alert_summary(con: duckdb.DuckDBPyConnection, site: str, start: datetime, end: datetime) -> pl.DataFrame:
    """Episodes and hours firing per (asset, rule) within ``[start, end)``."""
    return _q_named(
        con,
        f"""SELECT asset, rule, severity, count(*) AS episodes,
            count(*) FILTER (WHERE state = 'firing') AS still_firing,
            sum(greatest(0, epoch(least(coalesce(resolved_at, $c), $b)) - epoch(greatest(started_at, $a))))
                / 3600.0 AS hours
        FROM alerts WHERE {_ALERT_OVERLAP} GROUP BY ALL ORDER BY episodes DESC, hours DESC""",
        {"s": site, "a": to_utc(start), "b": to_utc(end), "c": _alert_window(con, site, to_utc(end))},
    )


def _alerts(con: duckdb.DuckDBPyConnection, doc: _Doc, site: str, start: datetime, end: datetime) -> None:
    open_until = _alert_window(con, site, end)
    overlap = _ALERT_OVERLAP
    summary = alert_summary(con, site, start, end)
    if summary.height == 0:
        doc.section("alerts", "Alerts", "<p>No alerts in this period.</p>")
        return
    body = _table(
        ["asset", "rule", "severity", "episodes", "still firing", "hours firing (in period, open ones to the last data)"],
        [list(r) for r in summary.iter_rows()],
    )
    recent = _q_named(
        con,
        f"""SELECT started_at, resolved_at, asset, rule, severity, value, threshold, message FROM alerts
        WHERE {overlap} ORDER BY started_at DESC LIMIT {MAX_ALERT_ROWS}""",
        {"s": site, "a": start, "b": end, "c": open_until},
    )
    body += f"<h3>Latest {min(recent.height, MAX_ALERT_ROWS)} episodes</h3>" + _table(
        ["started (UTC)", "resolved (UTC)", "asset", "rule", "severity", "value", "threshold", "message"],
        [list(r) for r in recent.iter_rows()],
        digits=2,
    )
    doc.section("alerts", "Alerts", body)


def _q_named(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> pl.DataFrame:
    frame: pl.DataFrame = con.sql(sql, params=params).pl()
    return frame


def shift_rows(con: duckdb.DuckDBPyConnection, site: str, start: datetime, end: datetime) -> pl.DataFrame:
    """``v_shift_report`` rows of the shifts that overlap ``[start, end)``, oldest first (at most
    :data:`MAX_SHIFT_ROWS`, the most recent).

    Filtering on ``shift_start >= start`` alone drops the shift already running at ``start``: a
    10:00-12:00 report lies inside the 06:00 shift and got none. The view has no shift end, so the
    shift running at ``start`` is found from the shift start times (``shift``, HH:MM UTC) seen in
    the day before ``start`` up to ``end``: the latest start time at or before ``start``.
    """
    start, end = to_utc(start), to_utc(end)
    frame = _q(
        con,
        """SELECT shift_start, shift, asset, clinker_tph, specific_heat_kcal_per_kg_clinker,
            specific_power_kwh_per_t, clinker_energy_kgce_per_t, whr_kwh_per_t_clinker, alerts, critical_alerts
        FROM v_shift_report WHERE site = ? AND shift_start > ? AND shift_start < ?
        ORDER BY shift_start, asset""",
        [site, start - timedelta(days=1), end],
    )
    day = datetime.combine(start.date(), datetime.min.time(), UTC)
    candidates = [
        day + offset + timedelta(hours=int(hh), minutes=int(mm))
        for hh, mm in (str(label).split(":") for label in frame["shift"].unique().drop_nulls().to_list())
        for offset in (timedelta(days=-1), timedelta(0))
    ]
    running = max((t for t in candidates if t <= start), default=start)
    return frame.filter(pl.col("shift_start") >= running).tail(MAX_SHIFT_ROWS)


def _shifts(con: duckdb.DuckDBPyConnection, doc: _Doc, site: str, start: datetime, end: datetime) -> None:
    frame = shift_rows(con, site, start, end)
    if frame.height == 0:
        doc.section("shifts", "Shift report", "<p>No shift data in this period.</p>")
        return
    frame = frame.sort(["shift_start", "asset"])
    body = _table(
        [
            "shift start (UTC)",
            "shift",
            "asset",
            "clinker t/h",
            "kcal/kg",
            "kWh/t",
            "kgce/t",
            "WHR kWh/t",
            "alerts",
            "critical",
        ],
        [list(r) for r in frame.iter_rows()],
    )
    note = (
        "Shifts that overlap the period; each row is the mean over the <em>whole</em> shift, also where it "
        "runs past the period's start or end."
    )
    if frame.height >= MAX_SHIFT_ROWS:
        note = f"The {MAX_SHIFT_ROWS} most recent shift rows; query <code>v_shift_report</code> for all. " + note
    body = f"<p>{note}</p>" + body
    doc.section("shifts", "Shift report", body)




def _page(site: str, start: datetime, end: datetime, doc: _Doc) -> str:
    nav = " ".join(
        f'<a href="#{a}">{t}</a>'
        for a, t in (
            ("summary", "Summary"),
            ("specific-heat", "Thermal"),
            ("losses", "Losses"),
            ("power", "Electrical"),
            ("grades", "Grades"),
            ("baselines", "M&amp;V"),
            ("alerts", "Alerts"),
            ("shifts", "Shifts"),
        )
        if a in doc.anchors  # a section left out (no loss rows) has no link
    )
    generated = datetime.now(UTC)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>kilnwatch energy report {_esc(site)} {start:%Y-%m-%d} – {end - timedelta(microseconds=1):%Y-%m-%d}</title>
<style>{CSS}</style></head>
<body>
<h1>kilnwatch energy report — {_esc(site)}</h1>
<p class="meta">{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC (end exclusive) · generated {generated:%Y-%m-%d %H:%M} UTC</p>
<nav>{nav}</nav>
{chr(10).join(doc.sections)}
</body></html>
"""
