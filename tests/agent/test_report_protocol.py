"""The protocol sheet (``kilnwatch report --protocol``) and the report's loss waterfall and deviation
totals, on a hand-made database: two days across a month boundary with the docs/kpis.md §9.4 kiln
(5,000 t/d, 796.0 / 760.0 kg CO2/t clinker, 672 GJ/h) and the §10.5 / §11 loss and cost figures.

Jan 31: kiln at 208.33 t/h every hour; the cement mill has no row at 03:00.
Feb 1: kiln at half load (104.17 t/h, 336 GJ/h, half the losses), no kiln rows at 05:00 and 06:00,
stopped at 10:00 (0.5 t/h, 100 GJ/h of heat-up fuel, CO2 per t and losses NULL: "kiln stopped").
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from agent import storage
from agent.cli import main
from agent.report import write_report
from agent.report_losses import deviation_totals, loss_waterfalls
from agent.report_protocol import CSV_COLUMNS, SITE_SCOPE, periods, protocol_sheet

SITE = "plant1"
JAN31 = datetime(2026, 1, 31, tzinfo=UTC)
FEB1 = JAN31 + timedelta(days=1)
CLINKER = 5000 / 24  # 208.33 t/h (docs/kpis.md §9.4)
KCAL = 4.1868e-3  # GJ per (kcal/kg x t)
COAL_PRICE = 29.096  # CNY/GJ (docs/kpis.md §11)
LOSSES = {  # docs/kpis.md §10.5 worked example, kcal/kg: sum 60.0
    "loss_exit_gas_temp_kcal_per_kg": 15.84,
    "loss_excess_air_kcal_per_kg": 13.38,
    "loss_co_kcal_per_kg": 4.028,
    "loss_clinker_temp_kcal_per_kg": 13.43,
    "loss_unattributed_kcal_per_kg": 60.0 - 15.84 - 13.38 - 4.028 - 13.43,
}
KILN_MISSING = {5, 6}  # Feb 1, hours without any kiln row
KILN_STOPPED = 10  # Feb 1
MILL_MISSING = 3  # Jan 31


def _kiln(load: float) -> dict[str, tuple[float | None, str]]:
    """One hour of the §9.4 kiln at ``load`` (1 = 5,000 t/d), the §10.5 losses scaled by load."""
    deviation = 60.0 * load
    excess = deviation * KCAL * CLINKER * load  # GJ/h (docs/kpis.md §11)
    return {
        "clinker_tph": (CLINKER * load, "t/h"),
        "heat_input_gj_per_h": (672.0 * load, "GJ/h"),
        "fuel_coal_gj_per_h": (510.0 * load, "GJ/h"),
        "fuel_rdf_gj_per_h": (96.0 * load, "GJ/h"),
        "fuel_tyres_gj_per_h": (42.0 * load, "GJ/h"),
        "fuel_wood_gj_per_h": (24.0 * load, "GJ/h"),
        "thermal_substitution_pct": (24.11, "%"),
        "biomass_energy_pct": (11.25, "%"),
        "co2_gross_kg_per_t_clinker": (796.0, "kg/t"),
        "co2_net_kg_per_t_clinker": (760.0, "kg/t"),
        "co2_biogenic_kg_per_t_clinker": (34.35, "kg/t"),
        "specific_heat_kcal_per_kg_clinker": (730.0 + deviation, "kcal/kg"),
        **{k: (v * load, "kcal/kg") for k, v in LOSSES.items()},
        "steady_state_flag": (1.0, ""),
        "excess_heat_gj_per_h": (excess, "GJ/h"),
        "excess_fuel_cost_per_h": (excess * COAL_PRICE, "CNY/h"),
        "excess_co2_kg_per_h": (excess * 96.0, "kg/h"),
    }


def _stopped_kiln() -> dict[str, tuple[float | None, str]]:
    row: dict[str, tuple[float | None, str]] = {k: (None, u) for k, (_, u) in _kiln(1.0).items()}
    row |= {
        "clinker_tph": (0.5, "t/h"),
        "heat_input_gj_per_h": (100.0, "GJ/h"),
        "fuel_coal_gj_per_h": (100.0, "GJ/h"),
    }
    row |= {k: (0.0, "GJ/h") for k in ("fuel_rdf_gj_per_h", "fuel_tyres_gj_per_h", "fuel_wood_gj_per_h")}
    row |= {"thermal_substitution_pct": (0.0, "%"), "biomass_energy_pct": (0.0, "%")}
    return row


def _rows() -> Iterator[tuple[datetime, str, str, float | None, str, int]]:
    for h in range(48):
        t = JAN31 + timedelta(hours=h)
        feb, hour = h >= 24, h % 24
        if not (feb and hour in KILN_MISSING):
            kiln = _stopped_kiln() if feb and hour == KILN_STOPPED else _kiln(0.5 if feb else 1.0)
            yield from ((t, "kiln1", k, v, u, 3600) for k, (v, u) in kiln.items())
        if feb or hour != MILL_MISSING:
            feed, cf = (180.0, 80.0) if feb else (200.0, 75.0)
            for k, v, u in (
                ("feed_tph", feed, "t/h"),
                ("clinker_factor_pct", cf, "%"),
                ("co2_gross_kg_per_t_cement", 796.0 * cf / 100, "kg/t"),
                ("power_kw", 7000.0, "kW"),
            ):
                yield t, "cement_mill1", k, v, u, 3600
        yield t, "plant", "power_kw", 20000.0, "kW", 3600


def _insert(
    con: duckdb.DuckDBPyConnection, rows: list[tuple[datetime, str, str, float | None, str, int]]
) -> None:
    frame = pl.DataFrame(
        [(t, SITE, a, k, v, u, w, None if v is None else "") for t, a, k, v, u, w in rows],
        schema={"ts": pl.Datetime("us", "UTC"), "site": pl.String, "asset": pl.String, "kpi": pl.String,
                "value": pl.Float64, "unit": pl.String, "window_secs": pl.Int32, "reason": pl.String},
        orient="row",
    )  # fmt: skip
    storage.insert_frame(con, "kpi", frame)


def _assets(con: duckdb.DuckDBPyConnection) -> None:
    for asset, typ, doc in (
        ("kiln1", "kiln", {"target_specific_heat_kcal_per_kg": 730.0}),
        ("cement_mill1", "cement_mill", {}),
        ("plant", "plant", {}),
    ):
        con.execute("INSERT INTO assets VALUES (?, ?, ?, ?, ?)", [SITE, asset, typ, json.dumps(doc), JAN31])


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("protocol") / "site.duckdb"
    con = storage.connect(path)
    _assets(con)
    _insert(con, list(_rows()))
    # 1-min and 15-min rows of an hour that has hourly rows: ignored (no double count), with other values
    _insert(con, [(JAN31 + timedelta(minutes=m), "kiln1", "clinker_tph", 1.0, "t/h", 60) for m in range(60)])
    _insert(con, [(JAN31 + timedelta(minutes=15 * q), "kiln1", "co2_gross_kg_per_t_clinker", 1.0, "kg/t", 900)
                  for q in range(4)])  # fmt: skip
    con.close()
    return path


def _protocol(db: Path, out: Path, *extra: str) -> int:
    return main(["report", "--db", str(db), "--from", "2026-01-31", "--to", "2026-02-01", "--out", str(out),
                 "--protocol", *extra])  # fmt: skip


@pytest.fixture(scope="module")
def sheet(db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str], dict[str, str]]:
    """The CSV written by the command, keyed by (period, scope, indicator)."""
    out = tmp_path_factory.mktemp("sheet") / "protocol.html"
    assert _protocol(db, out) == 0
    with out.with_suffix(".csv").open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
        return {(r["period"], r["scope"], r["indicator"]): r for r in reader}


JAN, FEB, ALL = "2026-01-31/2026-02-01", "2026-02-01/2026-02-02", "2026-01-31/2026-02-02"


def _v(
    sheet: dict[tuple[str, str, str], dict[str, str]], period: str, indicator: str, scope: str = SITE_SCOPE
) -> float:
    return float(sheet[(period, scope, indicator)]["value"])


def _cov(
    sheet: dict[tuple[str, str, str], dict[str, str]], period: str, indicator: str, scope: str = SITE_SCOPE
) -> float:
    return float(sheet[(period, scope, indicator)]["coverage_pct"])


def test_periods_are_the_calendar_months_then_the_whole_range() -> None:
    labels = [p.label for p in periods(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))]
    assert labels == ["2026-01", "2026-02", "2026-01-01/2026-03-01"]
    part = periods(JAN31 + timedelta(hours=6), FEB1 + timedelta(days=1))
    assert [(p.label, p.hours) for p in part] == [
        ("2026-01-31T06:00Z/2026-02-01", 18.0), ("2026-02-01/2026-02-02", 24.0), ("2026-01-31T06:00Z/2026-02-02", 42.0)
    ]  # fmt: skip


def test_absolute_co2_is_the_sum_of_rate_times_hours_and_coverage_counts_missing_hours(
    sheet: dict[tuple[str, str, str], dict[str, str]],
) -> None:
    # Jan 31: 796.0 kg/t x 208.33 t/h x 24 h = 3,980 t (the 1-min and 15-min rows of 00:00 are ignored)
    assert _v(sheet, JAN, "co2_gross_t") == pytest.approx(3980.0, abs=1e-3)
    assert _v(sheet, JAN, "co2_net_t") == pytest.approx(760.0 * 5000 / 1000, abs=1e-3)
    assert _v(sheet, JAN, "co2_biogenic_t") == pytest.approx(34.35 * 5000 / 1000, abs=1e-3)
    assert _cov(sheet, JAN, "co2_gross_t") == 100.0
    # Feb 1: 21 hours at half load (2 hours missing, 1 stopped: its CO2 per t is NULL)
    assert _v(sheet, FEB, "co2_gross_t") == pytest.approx(
        796.0 * CLINKER / 2 * 21 / 1000, abs=1e-3
    )  # 1,741.25
    assert _cov(sheet, FEB, "co2_gross_t") == pytest.approx(87.5)
    assert _v(sheet, ALL, "co2_gross_t") == pytest.approx(3980.0 + 1741.25, abs=1e-3)
    assert _cov(sheet, ALL, "co2_gross_t") == pytest.approx(93.75)  # 45 of 48 h
    # clinker counts the stopped hour: 46 of 48 h = 95.8 %
    assert _v(sheet, FEB, "clinker_t") == pytest.approx(CLINKER / 2 * 21 + 0.5, abs=1e-3)
    assert _cov(sheet, ALL, "clinker_t") == pytest.approx(95.83, abs=0.01)
    assert sheet[(ALL, SITE_SCOPE, "clinker_t")]["coverage_pct"] == "95.83"
    assert {r["site"] for r in sheet.values()} == {SITE}
    # the kiln's own rows match the site's (one kiln)
    for key in ("co2_gross_t", "co2_net_kg_per_t_clinker", "thermal_energy_mj_per_t_clinker"):
        assert sheet[(ALL, "kiln1", key)]["value"] == sheet[(ALL, SITE_SCOPE, key)]["value"]
    assert _v(sheet, JAN, "fuel_coal_gj", "kiln1") == pytest.approx(510.0 * 24)


def test_specific_indicators_are_ratios_of_sums(sheet: dict[tuple[str, str, str], dict[str, str]]) -> None:
    # gross per t clinker: the stopped hour (no CO2 per t) is out of both sums -> exactly 796
    assert _v(sheet, ALL, "co2_gross_kg_per_t_clinker") == pytest.approx(796.0)
    assert _v(sheet, ALL, "co2_net_kg_per_t_clinker") == pytest.approx(760.0)
    # thermal energy: Jan 672 GJ/h / 208.33 t/h = 3,225.6 MJ/t (§9.4: 3.2256 GJ/t); the whole period
    # includes the heat-up fuel of the stopped hour
    assert _v(sheet, JAN, "thermal_energy_mj_per_t_clinker") == pytest.approx(3225.6)
    heat = 672 * 24 + 336 * 21 + 100.0
    clinker = 5000 + CLINKER / 2 * 21 + 0.5
    assert _v(sheet, ALL, "thermal_energy_mj_per_t_clinker") == pytest.approx(heat * 1000 / clinker, abs=1e-3)
    assert _v(sheet, ALL, "thermal_substitution_pct") == pytest.approx(24.11 * (heat - 100) / heat, abs=1e-4)
    assert _v(sheet, JAN, "biomass_energy_pct") == pytest.approx(11.25)
    # clinker factor weighted by feed: (75 x 200 x 23 + 80 x 180 x 24) / (200 x 23 + 180 x 24) = 77.42 %, not 77.5
    assert _v(sheet, ALL, "clinker_factor_pct") == pytest.approx(690600 / 8920, abs=1e-4)
    assert _v(sheet, JAN, "co2_gross_kg_per_t_cement") == pytest.approx(597.0)  # 796.0 x 0.75 (§9.4)
    assert _v(sheet, JAN, "co2_net_kg_per_t_cement") == pytest.approx(570.0)  # 760.0 x 0.75 (§9.4)
    assert _cov(sheet, JAN, "co2_net_kg_per_t_cement") == pytest.approx(100 * 23 / 24, abs=0.01)
    # kWh/t cement: plant 20,000 kW over hours with cement-mill feed only: 100.0, not 20,000 x 24 / 4,600
    assert _v(sheet, JAN, "electricity_kwh_per_t_cement") == pytest.approx(100.0)
    assert _cov(sheet, JAN, "electricity_kwh_per_t_cement") == pytest.approx(95.83, abs=0.01)
    assert _v(sheet, ALL, "electricity_kwh_per_t_cement") == pytest.approx(20000 * 47 / 8920, abs=1e-3)
    assert _v(sheet, FEB, "cement_t", "cement_mill1") == pytest.approx(180.0 * 24)


def test_references_are_the_gnr_2016_world_values(sheet: dict[tuple[str, str, str], dict[str, str]]) -> None:
    refs = {
        k[2]: (r["reference_value"], r["reference_source"])
        for k, r in sheet.items()
        if k[0] == ALL and k[1] == SITE_SCOPE
    }
    assert refs["thermal_energy_mj_per_t_clinker"][0] == "3519"
    assert refs["electricity_kwh_per_t_cement"][0] == "103"
    assert refs["clinker_factor_pct"][0] == "75"
    assert refs["thermal_substitution_pct"][0] == "16.7"
    assert (refs["co2_gross_kg_per_t_cement"][0], refs["co2_net_kg_per_t_cement"][0]) == ("640", "616")
    assert refs["co2_gross_t"] == ("", "")  # no reference for an absolute
    assert all("GNR 2016" in s and "docs/kpis.md §9.3" in s for v, s in refs.values() if v)
    units = {k[2]: r["unit"] for k, r in sheet.items() if k[0] == ALL}
    assert units["co2_gross_t"] == "t" and units["thermal_energy_mj_per_t_clinker"] == "MJ/t"


def test_protocol_html_is_self_contained_with_a_table_per_period(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sheet.html"
    assert _protocol(db, out) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out} and {out.with_suffix('.csv')}"
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "http://" not in html and "https://" not in html and "<script" not in html and 'src="' not in html
    assert html.count("<table") == 3  # Jan 31, Feb 1, the whole period
    for label in (JAN, FEB, ALL):
        assert f'<h2 id="p-{label}">{label}</h2>' in html
    assert "non-kiln fuels" in html and "CKD" in html and "docs/kpis.md §9.2" in html
    whole = html[html.index(f'<h2 id="p-{ALL}">') :]
    row = r'<td class="txt">site</td><td class="txt">gross CO2, absolute <code>co2_gross_t</code></td><td class="num">5,721\.\d</td>'
    assert re.search(row, whole)
    assert "48 calendar hours" in whole and "48.0 h of hourly rows" in whole


def test_one_minute_rows_are_integrated_where_an_hour_has_no_hourly_row(tmp_path: Path) -> None:
    """Minute rows weigh 1/60 h each: Σ (CO2 per t x t/h) per minute, not mean x mean."""
    con = storage.connect(tmp_path / "m.duckdb")
    rows: list[tuple[datetime, str, str, float | None, str, int]] = []
    for m in range(60):  # 10:00-11:00: half the hour at 200 t/h and 800 kg/t, half at 100 t/h and 900 kg/t
        t = FEB1 + timedelta(hours=10, minutes=m)
        cl, co2 = (200.0, 800.0) if m < 30 else (100.0, 900.0)
        rows += [
            (t, "kiln1", "clinker_tph", cl, "t/h", 60),
            (t, "kiln1", "co2_gross_kg_per_t_clinker", co2, "kg/t", 60),
        ]
    rows += [(FEB1 + timedelta(hours=11), "kiln1", "clinker_tph", 150.0, "t/h", 3600),
             (FEB1 + timedelta(hours=11), "kiln1", "co2_gross_kg_per_t_clinker", 850.0, "kg/t", 3600)]  # fmt: skip
    _insert(con, rows)
    s = protocol_sheet(con, SITE, FEB1, FEB1 + timedelta(days=1))
    con.close()
    got = {(v.scope, v.indicator.key): v for v in s.values if v.period == FEB}
    minutes = (200 * 800 * 30 + 100 * 900 * 30) / 60 / 1000  # 125 t; mean x mean would give 127.5
    assert got[(SITE_SCOPE, "co2_gross_t")].value == pytest.approx(minutes + 150 * 850 / 1000)
    assert got[(SITE_SCOPE, "co2_gross_t")].covered_hours == pytest.approx(2.0)
    assert got[(SITE_SCOPE, "co2_gross_kg_per_t_clinker")].value == pytest.approx((125_000 + 127_500) / 300)
    assert s.windows[FEB] == {3600: 1.0, 60: pytest.approx(1.0)}


def test_site_coverage_needs_every_kiln_and_power_without_a_plant_asset_is_every_asset(
    tmp_path: Path,
) -> None:
    """No ``assets`` rows: kilns and the cement mill are told by their KPIs; kiln2 misses 03:00."""
    con = storage.connect(tmp_path / "two.duckdb")
    rows: list[tuple[datetime, str, str, float | None, str, int]] = []
    for h in range(4):
        t = FEB1 + timedelta(hours=h)
        rows += [(t, "kiln1", "clinker_tph", 100.0, "t/h", 3600), (t, "kiln1", "co2_gross_kg_per_t_clinker", 800.0, "kg/t", 3600),
                 (t, "kiln1", "power_kw", 1000.0, "kW", 3600), (t, "cement_mill1", "feed_tph", 100.0, "t/h", 3600),
                 (t, "cement_mill1", "clinker_factor_pct", 70.0, "%", 3600), (t, "cement_mill1", "power_kw", 3000.0, "kW", 3600)]  # fmt: skip
        if h != 3:
            rows += [(t, "kiln2", "clinker_tph", 50.0, "t/h", 3600), (t, "kiln2", "co2_gross_kg_per_t_clinker", 900.0, "kg/t", 3600),
                     (t, "kiln2", "power_kw", 500.0, "kW", 3600)]  # fmt: skip
    _insert(con, rows)
    s = protocol_sheet(con, SITE, FEB1, FEB1 + timedelta(hours=4))
    con.close()
    assert (s.kilns, s.mills, s.power_assets) == (
        ["kiln1", "kiln2"],
        ["cement_mill1"],
        ["cement_mill1", "kiln1", "kiln2"],
    )
    assert s.periods[0].label == "2026-02-01/2026-02-01T04:00Z"
    got = {(v.scope, v.indicator.key): v for v in s.values if v.period == s.periods[0].label}
    gross = got[(SITE_SCOPE, "co2_gross_t")]
    # 455 t: kiln1's 4th hour counts, but the site is covered only while both kilns are
    assert gross.value == pytest.approx((800 * 100 * 4 + 900 * 50 * 3) / 1000)
    assert gross.coverage_pct == pytest.approx(75.0)
    assert got[("kiln1", "co2_gross_t")].coverage_pct == 100.0
    kwh = got[(SITE_SCOPE, "electricity_kwh_per_t_cement")]
    assert kwh.value == pytest.approx((1000 + 500 + 3000) * 3 / (100 * 3))  # 45 kWh/t, 3 covered hours
    assert kwh.coverage_pct == pytest.approx(75.0)


def test_an_empty_period_writes_empty_files_and_says_so(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "empty.html"
    rc = main(
        ["report", "--db", str(db), "--from", "2027-03", "--to", "2027-03", "--out", str(out), "--protocol"]
    )
    captured = capsys.readouterr()
    assert rc == 0 and captured.out.strip() == f"wrote {out} and {out.with_suffix('.csv')}"
    assert (
        captured.err.strip().startswith("note: no protocol KPIs")
        and len(captured.err.strip().splitlines()) == 1
    )
    assert "No protocol KPIs in this period" in out.read_text(encoding="utf-8")
    with out.with_suffix(".csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r["value"] == "" and r["coverage_pct"] == "0" for r in rows)
    assert {r["period"] for r in rows} == {"2027-03"}  # one month: no second, identical whole-range table


def test_protocol_errors_are_one_line(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = _protocol(db, tmp_path / "nope" / "p.html")
    err = capsys.readouterr().err
    assert rc == 1 and "no such directory" in err and len(err.strip().splitlines()) == 1
    rc = _protocol(db, tmp_path / "p.csv")
    err = capsys.readouterr().err
    assert rc == 2 and "give the .html name" in err and len(err.strip().splitlines()) == 1
    rc = main(["report", "--db", str(tmp_path / "missing.duckdb"), "--from", "2026-01", "--to", "2026-01",
               "--out", str(tmp_path / "p.html"), "--protocol"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1 and "no such database file" in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------------------------
# the normal report: loss waterfall and deviation totals

W_JAN, W_FEB = 5000.0, CLINKER / 2 * 21  # clinker-hours with a breakdown (t)


def test_loss_waterfall_is_clinker_weighted_and_adds_up(db: Path) -> None:
    con = storage.connect(db, read_only=True)
    (w,) = loss_waterfalls(con, SITE, JAN31, FEB1 + timedelta(days=1))
    con.close()
    # Jan at full load (60 kcal/kg over target), Feb at half load and half the deviation: weights 5,000 : 2,187.5
    expected_dev = (60 * W_JAN + 30 * W_FEB) / (W_JAN + W_FEB)  # 50.87 kcal/kg
    assert w.actual == pytest.approx(730.0 + expected_dev)
    assert w.target == pytest.approx(730.0) and w.configured_target == 730.0
    assert sum(v for _, v in w.terms) == pytest.approx(w.actual - w.target)
    assert [label for label, _ in w.terms] == [
        "exit gas temperature", "excess / false air", "CO (unburnt)", "clinker temperature", "unattributed"
    ]  # fmt: skip
    exit_gas = dict(w.terms)["exit gas temperature"]
    assert exit_gas == pytest.approx((15.84 * W_JAN + 7.92 * W_FEB) / (W_JAN + W_FEB))
    assert (w.hours, w.steady_hours) == (45.0, 45.0)


def test_deviation_totals_sum_cost_co2_and_heat_over_hours(db: Path) -> None:
    con = storage.connect(db, read_only=True)
    (jan,) = deviation_totals(con, SITE, JAN31, FEB1)
    (both,) = deviation_totals(con, SITE, JAN31, FEB1 + timedelta(days=1))
    con.close()
    # docs/kpis.md §11 worked example: 60 kcal/kg at 5,000 t/d = 1,256.04 GJ/d, 36,545 CNY/d, 120.58 t CO2/d
    assert jan.heat_gj == pytest.approx(1256.04, abs=0.01)
    assert jan.cost == pytest.approx(36545.5, abs=1) and jan.currency == "CNY"
    assert jan.co2_t == pytest.approx(120.58, abs=0.01)
    feb_heat = 30 * KCAL * CLINKER / 2 * 21
    assert both.heat_gj == pytest.approx(1256.04 + feb_heat, abs=0.01) and both.heat_hours == 45.0


def test_report_has_the_loss_section_with_waterfall_and_totals(db: Path, tmp_path: Path) -> None:
    con = storage.connect(db, read_only=True)
    out = write_report(
        con, site=SITE, start=JAN31, end=FEB1 + timedelta(days=1), out_path=tmp_path / "r.html"
    )
    con.close()
    html = out.read_text(encoding="utf-8")
    assert '<section id="losses">' in html and '<a href="#losses">' in html
    section = html[
        html.index('<section id="losses">') : html.index("</section>", html.index('<section id="losses">'))
    ]
    assert '<img alt="Loss waterfall kiln1" src="data:image/png;base64,' in section
    assert '<td class="txt">target</td><td class="num">730.0</td>' in section
    assert '<td class="txt">actual</td><td class="num">780.9</td>' in section
    assert "actual − target = +50.9 kcal/kg" in section
    assert '<td class="txt">kiln1</td><td class="num">1,530.8</td>' in section and ">CNY<" in section
    assert "http://" not in html and "https://" not in html


def test_report_leaves_the_loss_section_out_without_loss_rows(db: Path, tmp_path: Path) -> None:
    con = storage.connect(db, read_only=True)
    out = write_report(con, site=SITE, start=datetime(2027, 1, 1, tzinfo=UTC), end=datetime(2027, 1, 2, tzinfo=UTC),
                       out_path=tmp_path / "r.html")  # fmt: skip
    con.close()
    html = out.read_text(encoding="utf-8")
    assert '<section id="losses">' not in html and 'href="#losses"' not in html
    assert '<section id="summary">' in html


def _chromium() -> str | None:
    return next((p for n in ("chromium", "chromium-browser") if (p := shutil.which(n))), None)


@pytest.mark.slow
@pytest.mark.skipif(
    _chromium() is None, reason="no headless Chromium on this machine (Debian package chromium)"
)
def test_protocol_sheet_screenshot_in_a_real_browser(db: Path, tmp_path: Path) -> None:
    """The sheet rendered by headless Chromium: full-size screenshot with its tables drawn."""
    from matplotlib.image import imread

    out = tmp_path / "sheet.html"
    assert _protocol(db, out) == 0
    shot = tmp_path / "shot.png"
    browser = _chromium()
    assert browser is not None
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    subprocess.run(
        [browser, *flags, "--hide-scrollbars", "--window-size=1280,3000", f"--screenshot={shot}", out.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    pixels = imread(shot)
    assert pixels.shape[:2] == (3000, 1280)
    inked = (pixels[..., :3] < 0.9).any(axis=-1)
    assert inked.mean() > 0.02, f"the page is almost blank ({inked.mean():.1%} of pixels drawn)"
    rows_with_ink = inked.any(axis=1)
    assert rows_with_ink[:1000].mean() > 0.3  # header, notes and the first table at the top
