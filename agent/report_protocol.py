"""The CSI/GCCA protocol sheet: monthly and whole-period CO2 and energy indicators of a site.

``kilnwatch report --protocol`` (docs/auditors.md, "Protocol sheet") writes this instead of the
normal report: an HTML table per period and a CSV with one row per (period, scope, indicator). The
protocol reports monthly and annual *sums* (docs/kpis.md §9.2, code notes), while the ``kpi``
table holds rates and ratios per window, so every indicator here is rebuilt from sums over time:
an absolute quantity is Σ rate × hours, a specific one is a ratio of two such sums (never a mean
of ratios, which would weigh an hour at half load like one at full load).

Rows and weights. Per UTC hour the hourly rows (``window_secs`` 3600) are used; an hour without any
hourly row of these KPIs falls back to its 15-min rows, else its 1-min rows (a current hour not yet
closed, or a database whose hourly rows were never written). Each row weighs its window in hours
(1, 0.25, 1/60). Integrating the short rows reproduces what the hourly row gives: the engine's
hourly clinker CO2 per t × hourly clinker t/h is the hour's mean CO2 t/h, and so is the mean over
the minutes of (CO2 per t × clinker t/h) (docs/kpis.md "KPI index and common behaviour": a window's
KPI is computed from the window's mean inputs).

Coverage of an indicator = hours in which every input of every asset in its scope has a non-NULL
value / calendar hours of the period, so missing data, a stopped kiln (its CO2 per t is NULL,
docs/kpis.md §9.2) and hours without any row all lower it. Values use every row whose own inputs are
present (an absolute total then misses only the uncovered rows, which coverage shows); a ratio whose
numerator and denominator come from different assets (kWh per t cement, net CO2 per t cement) uses
only the covered hours, so both sums span the same time.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import reduce
from operator import mul
from pathlib import Path

import duckdb
import polars as pl

from agent.numbers import fmt_number
from agent.report_charts import asset_settings
from agent.report_html import CSS, Raw, esc, table
from agent.storage import query_frame
from common.values import to_utc

#: Windows read, coarsest first: the hourly rows, else 15-min, else 1-min rows of an hour.
WINDOWS: tuple[int, ...] = (3600, 900, 60)
#: CSV columns (docs/auditors.md, "Protocol sheet").
CSV_COLUMNS: tuple[str, ...] = (
    "period",
    "site",
    "scope",
    "indicator",
    "value",
    "unit",
    "coverage_pct",
    "reference_value",
    "reference_source",
)
#: KPIs that make a kiln, a cement mill (when the ``assets`` table does not say the type).
_KILN_KPIS = frozenset({"clinker_tph", "heat_input_gj_per_h", "co2_gross_kg_per_t_clinker"})
_MILL_KPIS = frozenset({"clinker_factor_pct", "co2_gross_kg_per_t_cement"})
_FUEL_PREFIX, _FUEL_SUFFIX = "fuel_", "_gj_per_h"
#: ``scope`` of the site's totals in the CSV (otherwise the asset id).
SITE_SCOPE = "site"


@dataclass(frozen=True)
class Reference:
    """A GNR world reference value (docs/kpis.md §9.3, 2016 column), in its own unit."""

    value: float
    unit: str

    @property
    def source(self) -> str:
        return f"GNR 2016 world average, {self.unit} (docs/kpis.md §9.3)"


@dataclass(frozen=True)
class Indicator:
    """Σ Π(num) × h × scale [/ Σ Π(den) × h] over the rows of the assets of ``num_kind`` / ``den_kind``.

    ``parts`` instead makes a product of two site indicators / 100 (net CO2 per t cement = net per t
    clinker × clinker factor, docs/kpis.md §9.2).
    """

    key: str
    label: str
    unit: str
    num: tuple[str, ...] = ()
    num_kind: str = "kiln"
    den: tuple[str, ...] = ()
    den_kind: str = ""
    scale: float = 1.0
    reference: Reference | None = None
    note: str = ""
    parts: tuple[str, str] | None = None

    @property
    def cross(self) -> bool:
        """Numerator and denominator from different assets: both sums over covered hours only."""
        return bool(self.den) and (self.den_kind or self.num_kind) != self.num_kind


_CL, _HEAT, _FEED = "clinker_tph", "heat_input_gj_per_h", "feed_tph"
_GROSS, _NET, _BIO = "co2_gross_kg_per_t_clinker", "co2_net_kg_per_t_clinker", "co2_biogenic_kg_per_t_clinker"
_CF, _CEM_CO2, _POWER = "clinker_factor_pct", "co2_gross_kg_per_t_cement", "power_kw"

_CLINKER_T = Indicator("clinker_t", "clinker produced", "t", (_CL,), note="Σ clinker t/h × h")
_HEAT_GJ = Indicator("kiln_fuel_gj", "kiln fuel heat (NCV)", "GJ", (_HEAT,), note="Σ heat input GJ/h × h")
_GROSS_T = Indicator(
    "co2_gross_t", "gross CO2, absolute", "t", (_GROSS, _CL), scale=1e-3, note="line 059c, kiln part"
)
_NET_T = Indicator(
    "co2_net_t",
    "net CO2, absolute",
    "t",
    (_NET, _CL),
    scale=1e-3,
    note="gross − alternative fossil fuels (line 071)",
)
_BIO_T = Indicator(
    "co2_biogenic_t", "biogenic CO2 (memo)", "t", (_BIO, _CL), scale=1e-3, note="in neither gross nor net"
)
_GROSS_CL = Indicator(
    "co2_gross_kg_per_t_clinker",
    "gross CO2 per t clinker",
    "kg/t",
    (_GROSS, _CL),
    den=(_CL,),
    note="line 060",
)
_NET_CL = Indicator("co2_net_kg_per_t_clinker", "net CO2 per t clinker", "kg/t", (_NET, _CL), den=(_CL,))
_THERMAL = Indicator(
    "thermal_energy_mj_per_t_clinker",
    "kiln thermal energy per t clinker",
    "MJ/t",
    (_HEAT,),
    den=(_CL,),
    scale=1000.0,
    reference=Reference(3519.0, "MJ/t clinker (kiln fuel)"),
    note="Σ heat / Σ clinker",
)
_TSR = Indicator(
    "thermal_substitution_pct",
    "alternative fuel rate (TSR)",
    "%",
    (_HEAT, "thermal_substitution_pct"),
    den=(_HEAT,),
    reference=Reference(16.7, "% of kiln fuel"),
    note="line 093; heat-weighted",
)
_BIOMASS = Indicator(
    "biomass_energy_pct",
    "biomass share of kiln fuel",
    "%",
    (_HEAT, "biomass_energy_pct"),
    den=(_HEAT,),
    note="heat-weighted",
)
_CEMENT_T = Indicator(
    "cement_t", "cement (cement-mill feed)", "t", (_FEED,), num_kind="cement_mill", note="Σ feed t/h × h"
)
_CF_PCT = Indicator(
    "clinker_factor_pct",
    "clinker factor",
    "%",
    (_CF, _FEED),
    num_kind="cement_mill",
    den=(_FEED,),
    reference=Reference(75.0, "% clinker in cement"),
    note="feed-weighted; line 092a analogue",
)
_GROSS_CEM = Indicator(
    "co2_gross_kg_per_t_cement",
    "gross CO2 per t cement",
    "kg/t",
    (_CEM_CO2, _FEED),
    num_kind="cement_mill",
    den=(_FEED,),
    reference=Reference(640.0, "kg CO2/t cementitious, gross"),
    note="feed-weighted; line 062 analogue",
)
_NET_CEM = Indicator(
    "co2_net_kg_per_t_cement",
    "net CO2 per t cement",
    "kg/t",
    reference=Reference(616.0, "kg CO2/t cementitious, net"),
    note="net per t clinker × clinker factor",
    parts=(_NET_CL.key, _CF_PCT.key),
)
_KWH_CEM = Indicator(
    "electricity_kwh_per_t_cement",
    "electricity per t cement",
    "kWh/t",
    (_POWER,),
    num_kind="power",
    den=(_FEED,),
    den_kind="cement_mill",
    reference=Reference(103.0, "kWh/t cement"),
    note="plant power / cement-mill feed",
)

SITE_INDICATORS: tuple[Indicator, ...] = (
    _CLINKER_T,
    _CEMENT_T,
    _HEAT_GJ,
    _GROSS_T,
    _NET_T,
    _BIO_T,
    _GROSS_CL,
    _NET_CL,
    _GROSS_CEM,
    _NET_CEM,
    _THERMAL,
    _TSR,
    _BIOMASS,
    _CF_PCT,
    _KWH_CEM,
)
KILN_INDICATORS: tuple[Indicator, ...] = (
    _CLINKER_T,
    _HEAT_GJ,
    _GROSS_T,
    _NET_T,
    _BIO_T,
    _GROSS_CL,
    _NET_CL,
    _THERMAL,
    _TSR,
    _BIOMASS,
)
MILL_INDICATORS: tuple[Indicator, ...] = (_CEMENT_T, _CF_PCT, _GROSS_CEM)
BASE_KPIS: tuple[str, ...] = (_CL, _HEAT, _GROSS, _NET, _BIO, "thermal_substitution_pct", "biomass_energy_pct",
                              _FEED, _CF, _CEM_CO2, _POWER)  # fmt: skip


def fuel_indicator(kpi: str) -> Indicator:
    """The heat of one listed fuel of a kiln over the period (``fuel_<name>_gj_per_h``, §9.2)."""
    name = kpi.removeprefix(_FUEL_PREFIX).removesuffix(_FUEL_SUFFIX)
    return Indicator(f"fuel_{name}_gj", f"fuel {name}, heat (NCV)", "GJ", (kpi,), note="Σ GJ/h × h")


# --------------------------------------------------------------------------------------------
# reading the rows


def slot_frame(
    con: duckdb.DuckDBPyConnection, site: str, start: datetime, end: datetime, kpis: Sequence[str]
) -> pl.DataFrame:
    """One row per (asset, window start) with ``dt`` (the row's weight in hours) and one column per
    KPI in ``kpis`` (NULL = no row or a NULL value): per UTC hour the coarsest stored window ≤ 1 h
    among these KPIs (module docstring)."""
    kpis = list(dict.fromkeys(kpis))
    pivot = ", ".join(f"avg(value) FILTER (WHERE kpi = ${i + 5}) AS c{i}" for i in range(len(kpis)))
    frame = query_frame(
        con,
        f"""WITH src AS (
            SELECT asset, kpi, ts, window_secs, value, epoch_us(ts) // 3600000000 AS h FROM kpi
            WHERE site = $1 AND ts >= $2 AND ts < $3 AND window_secs IN (60, 900, 3600) AND list_contains($4, kpi)
        ), pick AS (SELECT h, max(window_secs) AS w FROM src GROUP BY h)
        SELECT asset, ts, window_secs / 3600.0 AS dt{", " + pivot if pivot else ""}
        FROM src JOIN pick USING (h) WHERE window_secs = w
        GROUP BY asset, ts, window_secs ORDER BY ts, asset""",
        [site, to_utc(start), to_utc(end), kpis, *kpis],
    )
    return frame.rename({f"c{i}": k for i, k in enumerate(kpis)})


def present_kpis(
    con: duckdb.DuckDBPyConnection, site: str, start: datetime, end: datetime
) -> dict[str, set[str]]:
    """asset -> KPI names with any row (value or NULL) in ``[start, end)``: an asset that has rows
    of an indicator's inputs is in that indicator's scope, so its missing hours lower coverage."""
    out: dict[str, set[str]] = {}
    for asset, kpi in con.execute(
        "SELECT DISTINCT asset, kpi FROM kpi WHERE site = ? AND ts >= ? AND ts < ? AND window_secs IN (60, 900, 3600)",
        [site, to_utc(start), to_utc(end)],
    ).fetchall():
        out.setdefault(str(asset), set()).add(str(kpi))
    return out


def asset_kinds(con: duckdb.DuckDBPyConnection, site: str, present: dict[str, set[str]]) -> dict[str, str]:
    """asset -> type from the ``assets`` table; assets without a row there are a kiln or a cement
    mill by their KPIs (a kiln has clinker t/h, a cement mill a clinker factor), else ``other``."""
    kinds = {a: t for a, (t, _) in asset_settings(con, site).items()}
    for asset, names in present.items():
        if asset not in kinds:
            kinds[asset] = "kiln" if names & _KILN_KPIS else "cement_mill" if names & _MILL_KPIS else "other"
    return kinds


# --------------------------------------------------------------------------------------------
# computing


@dataclass(frozen=True)
class Value:
    """One indicator of one scope and period."""

    period: str
    scope: str
    indicator: Indicator
    value: float | None
    covered_hours: float
    period_hours: float

    @property
    def coverage_pct(self) -> float:
        return min(100.0, 100.0 * self.covered_hours / self.period_hours) if self.period_hours > 0 else 0.0


@dataclass(frozen=True)
class Period:
    label: str
    start: datetime
    end: datetime

    @property
    def hours(self) -> float:
        return (self.end - self.start) / timedelta(hours=1)


def _stamp(t: datetime) -> str:
    return f"{t:%Y-%m-%d}" if t.time() == datetime.min.time() else f"{t:%Y-%m-%dT%H:%MZ}"


def periods(start: datetime, end: datetime) -> list[Period]:
    """The calendar months (UTC) that ``[start, end)`` touches, clipped to it, then the whole period
    when it spans more than one month.

    Labels: ``YYYY-MM`` for a whole month, an ISO 8601 interval ``start/end`` (end exclusive) for a
    part of one and for the whole period.
    """
    start, end = to_utc(start), to_utc(end)
    out: list[Period] = []
    month = datetime(start.year, start.month, 1, tzinfo=UTC)
    while month < end:
        nxt = month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)
        a, b = max(month, start), min(nxt, end)
        out.append(Period(f"{month:%Y-%m}" if (a, b) == (month, nxt) else f"{_stamp(a)}/{_stamp(b)}", a, b))
        month = nxt
    if len(out) > 1:  # a range inside one month is that month's part: no second, identical table
        out.append(Period(f"{_stamp(start)}/{_stamp(end)}", start, end))
    return out


def _term(frame: pl.DataFrame, cols: Sequence[str]) -> float:
    """Σ Π(cols) × dt over ``frame``'s rows."""
    if frame.height == 0:
        return 0.0
    expr = reduce(mul, [pl.col(c) for c in cols], pl.col("dt"))
    return float(frame.select(expr.sum()).item() or 0.0)


def _ok(frame: pl.DataFrame, assets: Sequence[str], inputs: Sequence[str]) -> pl.DataFrame:
    """Rows of ``assets`` whose ``inputs`` are all non-NULL (missing columns: no row is)."""
    if any(c not in frame.columns for c in inputs):
        return frame.clear()
    return frame.filter(
        pl.col("asset").is_in(list(assets)) & pl.all_horizontal(pl.col(c).is_not_null() for c in inputs)
    )


def _covered(parts: Sequence[tuple[pl.DataFrame, Sequence[str]]]) -> pl.DataFrame:
    """(ts, dt) of the slots in which every asset of every part has its good row."""
    need = sum(len(assets) for _, assets in parts)
    keyed = [ok.select("ts", "dt", pl.col("asset") + pl.lit(f"#{i}")) for i, (ok, _) in enumerate(parts)]
    if need == 0 or not keyed:
        return pl.DataFrame(schema={"ts": pl.Datetime("us", "UTC"), "dt": pl.Float64})
    rows = pl.concat(keyed).unique(["ts", "asset"])
    return (
        rows.group_by("ts")
        .agg(pl.col("dt").first(), pl.len().alias("n"))
        .filter(pl.col("n") == need)
        .drop("n")
    )


@dataclass
class _Scope:
    """Who contributes: asset lists per kind, and the KPIs present per asset."""

    name: str
    kinds: dict[str, list[str]]
    present: dict[str, set[str]]

    def assets(self, kind: str, inputs: Sequence[str]) -> list[str]:
        return [a for a in self.kinds.get(kind, []) if self.present.get(a, set()) & set(inputs)]


def compute(ind: Indicator, frame: pl.DataFrame, scope: _Scope) -> tuple[float | None, float]:
    """(value, covered hours) of ``ind`` over ``frame`` (one period's slots)."""
    if ind.parts is not None:
        raise ValueError("composite indicators are computed from their parts")
    den_kind = ind.den_kind or ind.num_kind
    num_inputs = (*ind.num, *(() if ind.cross else ind.den))
    num_assets = scope.assets(ind.num_kind, num_inputs)
    if not num_assets:
        return None, 0.0
    num_ok = _ok(frame, num_assets, num_inputs)
    if not ind.cross:
        covered = _covered([(num_ok, num_assets)])
        top = _term(num_ok, ind.num) * ind.scale
        if not ind.den:
            return (top if num_ok.height else None), _hours(covered)
        bottom = _term(num_ok, ind.den)
        return (top / bottom if bottom > 0 else None), _hours(covered)
    den_assets = scope.assets(den_kind, ind.den)
    if not den_assets:
        return None, 0.0
    den_ok = _ok(frame, den_assets, ind.den)
    covered = _covered([(num_ok, num_assets), (den_ok, den_assets)])
    slots = covered["ts"].to_list()
    top = _term(num_ok.filter(pl.col("ts").is_in(slots)), ind.num) * ind.scale
    bottom = _term(den_ok.filter(pl.col("ts").is_in(slots)), ind.den)
    return (top / bottom if bottom > 0 else None), _hours(covered)


def _hours(covered: pl.DataFrame) -> float:
    return float(covered["dt"].sum()) if covered.height else 0.0


def _composite(
    ind: Indicator, frame: pl.DataFrame, scope: _Scope, done: dict[str, tuple[float | None, float]]
) -> tuple[float | None, float]:
    """Product of two site indicators / 100; covered where every input of both parts is."""
    assert ind.parts is not None
    a, b = (_BY_KEY[k] for k in ind.parts)
    sets: list[tuple[pl.DataFrame, Sequence[str]]] = []
    for part in (a, b):
        inputs = (*part.num, *part.den)
        assets = scope.assets(part.num_kind, inputs)
        if not assets:
            return None, 0.0
        sets.append((_ok(frame, assets, inputs), assets))
    va, vb = done[a.key][0], done[b.key][0]
    value = va * vb / 100.0 if va is not None and vb is not None else None
    return value, _hours(_covered(sets))


_BY_KEY = {i.key: i for i in SITE_INDICATORS}


@dataclass
class Sheet:
    """Everything the protocol sheet shows: values per period and scope, and how rows were read."""

    site: str
    start: datetime
    end: datetime
    periods: list[Period]
    values: list[Value] = field(default_factory=list)
    windows: dict[str, dict[int, float]] = field(default_factory=dict)  # period -> window -> hours
    kilns: list[str] = field(default_factory=list)
    mills: list[str] = field(default_factory=list)
    power_assets: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return all(v.value is None for v in self.values)


def protocol_sheet(con: duckdb.DuckDBPyConnection, site: str, start: datetime, end: datetime) -> Sheet:
    """Compute every indicator for every period (months, then the whole period) and scope."""
    start, end = to_utc(start), to_utc(end)
    present = present_kpis(con, site, start, end)
    kinds = asset_kinds(con, site, present)
    fuels = sorted(
        {
            k
            for names in present.values()
            for k in names
            if k.startswith(_FUEL_PREFIX) and k.endswith(_FUEL_SUFFIX)
        }
    )
    frame = slot_frame(con, site, start, end, (*BASE_KPIS, *fuels))
    by_kind: dict[str, list[str]] = {}
    for asset, kind in sorted(kinds.items()):
        by_kind.setdefault(kind, []).append(asset)
    plants = [a for a in by_kind.get("plant", []) if _POWER in present.get(a, set())]
    power = plants or sorted(a for a, names in present.items() if _POWER in names)
    by_kind["power"] = power
    sheet = Sheet(site, start, end, periods(start, end), power_assets=power)
    sheet.kilns = [a for a in by_kind.get("kiln", []) if a in present]
    sheet.mills = [a for a in by_kind.get("cement_mill", []) if a in present]
    for p in sheet.periods:
        part = frame.filter((pl.col("ts") >= p.start) & (pl.col("ts") < p.end))
        hours = part.select("ts", "dt").unique()
        sheet.windows[p.label] = {
            round(dt * 3600): float(n * dt) for dt, n in hours.group_by("dt").len().iter_rows()
        }
        site_scope = _Scope(site, by_kind, present)
        done: dict[str, tuple[float | None, float]] = {}
        for ind in sorted(SITE_INDICATORS, key=lambda i: i.parts is not None):  # composites last
            done[ind.key] = (
                _composite(ind, part, site_scope, done) if ind.parts else compute(ind, part, site_scope)
            )
        sheet.values += [Value(p.label, SITE_SCOPE, ind, *done[ind.key], p.hours) for ind in SITE_INDICATORS]
        for kiln in sheet.kilns:
            scope = _Scope(kiln, {"kiln": [kiln]}, present)
            own_fuels = sorted(k for k in present[kiln] if k in fuels)
            for ind in (*KILN_INDICATORS[:2], *map(fuel_indicator, own_fuels), *KILN_INDICATORS[2:]):
                value, covered = compute(ind, part, scope)
                sheet.values.append(Value(p.label, kiln, ind, value, covered, p.hours))
        for mill in sheet.mills:
            scope = _Scope(mill, {"cement_mill": [mill]}, present)
            for ind in MILL_INDICATORS:
                value, covered = compute(ind, part, scope)
                sheet.values.append(Value(p.label, mill, ind, value, covered, p.hours))
    return sheet


# --------------------------------------------------------------------------------------------
# writing


def _csv_number(v: float | None, digits: int = 4) -> str:
    return (
        "" if v is None or math.isnan(v) else f"{round(v, digits) + 0.0:.{digits}f}".rstrip("0").rstrip(".")
    )


def write_csv(sheet: Sheet, path: Path) -> None:
    """One row per (period, scope, indicator); empty cells for no value / no reference."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(CSV_COLUMNS)
        for v in sheet.values:
            ref = v.indicator.reference
            out.writerow(
                [
                    v.period,
                    sheet.site,
                    v.scope,
                    v.indicator.key,
                    _csv_number(v.value),
                    v.indicator.unit,
                    _csv_number(v.coverage_pct, 2),
                    _csv_number(ref.value) if ref else "",
                    ref.source if ref else "",
                ]
            )


_WINDOW_NAMES = {3600: "hourly", 900: "15-min", 60: "1-min"}


def _period_html(sheet: Sheet, p: Period) -> str:
    rows: list[list[object]] = []
    for v in (v for v in sheet.values if v.period == p.label):
        ref = v.indicator.reference
        rows.append(
            [
                v.scope,
                Raw(f"{esc(v.indicator.label)} <code>{esc(v.indicator.key)}</code>"),
                fmt_number(v.value, v.indicator.unit),
                v.indicator.unit,
                f"{v.coverage_pct:.1f} %",
                Raw(f"{fmt_number(ref.value)} {esc(ref.unit)}", numeric=True) if ref else None,
                v.indicator.note,
            ]
        )
    used = sheet.windows.get(p.label, {})
    source = ", ".join(
        f"{h:,.1f} h of {_WINDOW_NAMES.get(w, f'{w}-s')} rows" for w, h in sorted(used.items(), reverse=True)
    )
    head = (
        f'<h2 id="p-{esc(p.label)}">{esc(p.label)}</h2><p class="meta">{_stamp(p.start)} to {_stamp(p.end)} UTC '
        f"(end exclusive), {p.hours:,.0f} calendar hours; read: {esc(source) if source else 'no rows'}.</p>"
    )
    return head + table(
        ["scope", "indicator", "value", "unit", "coverage", "GNR 2016 world", "method / protocol line"], rows
    )


def _intro(sheet: Sheet) -> str:
    kilns = ", ".join(sheet.kilns) or "none found"
    mills = ", ".join(sheet.mills) or "none found"
    power = ", ".join(sheet.power_assets) or "none found"
    empty = (
        "<p><strong>No protocol KPIs in this period:</strong> every value is empty.</p>"
        if sheet.empty
        else ""
    )
    return f"""{empty}<p>Indicators of the CSI/GCCA Cement CO2 and Energy Protocol that kilnwatch can compute,
from the <code>kpi</code> table (docs/kpis.md §9, docs/auditors.md "Protocol sheet"). Kilns: {esc(kilns)};
cement mills: {esc(mills)}; power from: {esc(power)}.</p>
<ul>
<li><strong>Covered:</strong> kiln fuels configured in kilnwatch (main burner, calciner, alternative fuel
feeders), calcination CO2 of the clinker, biogenic CO2 as a memo, clinker and cement-mill output,
clinker factor, plant electricity.</li>
<li><strong>Not covered</strong> (docs/kpis.md §9.2): non-kiln fuels (dryers, vehicles, on-site power
generation), cement kiln dust (CKD) and bypass dust, organic carbon of the raw meal, bought or sold
clinker and stock changes, indirect CO2 of electricity. Gross CO2 is the kiln part of line 059c; per t
cement is per t of cement-mill feed (the protocol's denominator is cementitious product).</li>
<li><strong>Sums, not means:</strong> an absolute value is Σ rate × hours; a specific value is a ratio of
such sums. Rows: hourly, else 15-min, else 1-min rows per UTC hour, each weighing its window.</li>
<li><strong>Coverage</strong> = hours in which every input of every asset of the scope has a value ÷
calendar hours of the period. Missing data, hours without rows and a stopped kiln (its CO2 per t is
empty) lower it; a value with low coverage under-states an absolute total.</li>
<li>References: GNR world averages of 2016 (docs/kpis.md §9.3), in their own unit.</li>
</ul>"""


def write_protocol(
    con: duckdb.DuckDBPyConnection, *, site: str, start: datetime, end: datetime, out_path: str | Path
) -> tuple[Path, Path, Sheet]:
    """Write the HTML sheet to ``out_path`` and the CSV beside it (same stem, ``.csv``)."""
    from agent.export import no_progress_bar

    with no_progress_bar(con):
        sheet = protocol_sheet(con, site, start, end)
    html_path = Path(out_path)
    csv_path = html_path.with_suffix(".csv")
    nav = " ".join(f'<a href="#p-{esc(p.label)}">{esc(p.label)}</a>' for p in sheet.periods)
    generated = datetime.now(UTC)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>kilnwatch protocol sheet {esc(site)} {_stamp(sheet.start)}/{_stamp(sheet.end)}</title>
<style>{CSS}</style></head>
<body>
<h1>CSI/GCCA protocol indicators — {esc(site)}</h1>
<p class="meta">{_stamp(sheet.start)} to {_stamp(sheet.end)} UTC (end exclusive) · generated {generated:%Y-%m-%d %H:%M} UTC ·
same numbers in {esc(csv_path.name)}</p>
<nav>{nav}</nav>
{_intro(sheet)}
{chr(10).join(_period_html(sheet, p) for p in sheet.periods)}
</body></html>
"""
    html_path.write_text(page, encoding="utf-8")
    write_csv(sheet, csv_path)
    return html_path, csv_path, sheet
