"""Report sections on a kiln's heat losses and what its deviation from target cost.

The loss KPIs (docs/kpis.md §10) split each window's specific heat minus the kiln's target into
exit-gas temperature, excess air, CO, clinker temperature and an unattributed rest; the §11 KPIs
price the deviation. An auditor wants both for the whole report period, so this module turns rows
into period figures and draws the waterfall:

- **Waterfall** per kiln: clinker-weighted means (weight clinker t/h × hours) over the rows that
  have a breakdown, so the mean terms still add up to mean actual − target, as each row's do.
  Weighting by clinker makes the figure the period's kcal per kg of the clinker actually made.
- **Totals**: Σ excess heat GJ/h × h, Σ excess fuel cost {currency}/h × h, Σ excess CO2 kg/h × h.

Rows are read like the protocol sheet's (agent/report_protocol.py :func:`slot_frame`: hourly rows,
else 15-min, else 1-min rows per UTC hour, each weighing its window in hours).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl
from matplotlib.figure import Figure

from agent.report_charts import asset_settings, figure
from agent.report_protocol import slot_frame
from common.values import to_utc

SHC = "specific_heat_kcal_per_kg_clinker"
#: Loss terms in waterfall order (docs/kpis.md §10 table) with their labels.
LOSS_TERMS: tuple[tuple[str, str], ...] = (
    ("loss_exit_gas_temp_kcal_per_kg", "exit gas temperature"),
    ("loss_excess_air_kcal_per_kg", "excess / false air"),
    ("loss_co_kcal_per_kg", "CO (unburnt)"),
    ("loss_clinker_temp_kcal_per_kg", "clinker temperature"),
    ("loss_unattributed_kcal_per_kg", "unattributed"),
)
EXCESS_KPIS: tuple[str, ...] = ("excess_heat_gj_per_h", "excess_fuel_cost_per_h", "excess_co2_kg_per_h")
_UNATTRIBUTED = LOSS_TERMS[-1][0]
#: A configured target further than this from actual − Σ terms is reported (changed mid-period?).
TARGET_TOLERANCE_KCAL = 0.5


@dataclass(frozen=True)
class Waterfall:
    """A kiln's period loss split, kcal/kg clinker: ``target + Σ terms = actual``."""

    asset: str
    target: float  # actual - Σ terms: what the rows were split against
    configured_target: float | None  # the kiln's target_specific_heat_kcal_per_kg (assets table)
    terms: tuple[tuple[str, float], ...]  # (label, kcal/kg) of the terms the kiln has
    actual: float
    hours: float  # hours with a breakdown
    steady_hours: float  # of which steady_state_flag = 1

    @property
    def deviation(self) -> float:
        return self.actual - self.target


def loss_waterfalls(
    con: duckdb.DuckDBPyConnection, site: str, start: datetime, end: datetime
) -> list[Waterfall]:
    """One :class:`Waterfall` per kiln with loss rows in ``[start, end)``, by asset name."""
    names = [SHC, "clinker_tph", "steady_state_flag", *(k for k, _ in LOSS_TERMS)]
    frame = slot_frame(con, site, to_utc(start), to_utc(end), names)
    settings = asset_settings(con, site)
    out: list[Waterfall] = []
    for (asset,), rows in frame.group_by("asset", maintain_order=True):
        terms = [(k, label) for k, label in LOSS_TERMS if rows[k].is_not_null().any()]
        if not terms or _UNATTRIBUTED not in {k for k, _ in terms}:
            continue
        ok = rows.filter(
            pl.all_horizontal(pl.col(c).is_not_null() for c in (SHC, "clinker_tph", *(k for k, _ in terms)))
            & (pl.col("clinker_tph") > 0)
        ).with_columns(w=pl.col("clinker_tph") * pl.col("dt"))
        weight = float(ok["w"].sum()) if ok.height else 0.0
        if weight <= 0:
            continue

        def mean(col: str, ok: pl.DataFrame = ok, weight: float = weight) -> float:
            return float((ok[col] * ok["w"]).sum()) / weight

        split = tuple((label, mean(k)) for k, label in terms)
        actual = mean(SHC)
        configured = settings.get(str(asset), ("", {}))[1].get("target_specific_heat_kcal_per_kg")
        out.append(
            Waterfall(
                asset=str(asset),
                target=actual - sum(v for _, v in split),
                configured_target=float(configured) if isinstance(configured, int | float) else None,
                terms=split,
                actual=actual,
                hours=float(ok["dt"].sum()),
                steady_hours=float(ok.filter(pl.col("steady_state_flag") == 1)["dt"].sum()),
            )
        )
    return sorted(out, key=lambda w: w.asset)


def waterfall_figure(w: Waterfall) -> Figure:
    """Target bar, one floating bar per cause (red above target, green below), actual bar; the y
    axis spans the bars, not zero, so a 50 kcal/kg deviation on 730 kcal/kg stays visible."""
    fig = figure(8.0, 3.8)
    ax = fig.add_subplot()
    labels = ["target", *(label for label, _ in w.terms), "actual"]
    level = w.target
    lows, highs = [w.target], [w.target]
    bars: list[tuple[float, float, str]] = []
    for _, v in w.terms:
        bars.append((level, v, "#c62828" if v > 0 else "#2e7d32"))
        level += v
        lows.append(min(level, level - v))
        highs.append(max(level, level - v))
    lows.append(w.actual)
    highs.append(w.actual)
    span = max(max(highs) - min(lows), 1.0)
    floor = min(lows) - 0.6 * span
    ax.bar(0, w.target - floor, bottom=floor, color="#607d8b", width=0.6)
    for i, (base, v, colour) in enumerate(bars, start=1):
        ax.bar(i, v, bottom=base, color=colour, width=0.6)
        ax.text(i, base + v + (0.02 * span if v >= 0 else -0.02 * span), f"{round(v, 1) + 0.0:+.1f}", ha="center",
                va="bottom" if v >= 0 else "top", fontsize=8)  # fmt: skip
        ax.plot([i - 1.3, i + 0.3], [base, base], color="#999", linewidth=0.7)
    ax.bar(len(labels) - 1, w.actual - floor, bottom=floor, color="#1565c0", width=0.6)
    for x, v in ((0, w.target), (len(labels) - 1, w.actual)):
        ax.text(x, v + 0.02 * span, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylim(floor, max(highs) + 0.25 * span)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("kcal/kg clinker")
    ax.set_title(f"{w.asset}: specific heat, target → causes → actual (clinker-weighted)", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    return fig


@dataclass(frozen=True)
class DeviationTotal:
    """A kiln's deviation from target over the period; negative = below target (a saving)."""

    asset: str
    heat_gj: float | None
    heat_hours: float
    cost: float | None
    currency: str
    cost_hours: float
    co2_t: float | None
    co2_hours: float


def deviation_totals(
    con: duckdb.DuckDBPyConnection, site: str, start: datetime, end: datetime
) -> list[DeviationTotal]:
    """Σ of the §11 KPIs × hours per kiln with any such row in ``[start, end)``."""
    start, end = to_utc(start), to_utc(end)
    frame = slot_frame(con, site, start, end, EXCESS_KPIS)
    units = dict(
        con.execute(
            "SELECT asset, string_agg(DISTINCT replace(unit, '/h', ''), ', ') FROM kpi WHERE site = ? AND ts >= ? "
            "AND ts < ? AND kpi = 'excess_fuel_cost_per_h' AND unit IS NOT NULL GROUP BY asset",
            [site, start, end],
        ).fetchall()
    )
    out: list[DeviationTotal] = []
    for (asset,), rows in frame.group_by("asset", maintain_order=True):

        def total(col: str, rows: pl.DataFrame = rows) -> tuple[float | None, float]:
            ok = rows.filter(pl.col(col).is_not_null())
            if ok.height == 0:
                return None, 0.0
            return float((ok[col] * ok["dt"]).sum()), float(ok["dt"].sum())

        heat, heat_h = total("excess_heat_gj_per_h")
        cost, cost_h = total("excess_fuel_cost_per_h")
        co2, co2_h = total("excess_co2_kg_per_h")
        if heat is None and cost is None and co2 is None:
            continue
        out.append(
            DeviationTotal(
                asset=str(asset),
                heat_gj=heat,
                heat_hours=heat_h,
                cost=cost,
                currency=str(units.get(asset) or ""),
                cost_hours=cost_h,
                co2_t=co2 / 1000.0 if co2 is not None else None,
                co2_hours=co2_h,
            )
        )
    return sorted(out, key=lambda d: d.asset)
