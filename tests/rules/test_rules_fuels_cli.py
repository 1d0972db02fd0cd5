"""docs/kpis.md §9.5, §10.5 and §11 worked examples end to end: samples -> KPIs as the daemon computes
them -> a stored database -> ``kilnwatch report --protocol`` and ``kilnwatch report`` on it."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from rules_support import T0, make_config, samples
from test_rules_fuels import (
    CEMENT_MILL,
    FOUR_FUEL_KILN,
    FOUR_FUEL_VALUES,
    LOSS_KILN,
    MILL_VALUES,
    loss_values,
)

from agent import storage
from agent.cli import main
from rules.kpi import compute_kpis


def _store(db: Path, assets: list[dict[str, object]], values: dict[str, float], **agent: object) -> None:
    """Two hours of constant signals, their hourly KPI rows stored as the daemon stores them."""
    cfg = make_config(assets, **agent)
    rows = compute_kpis(cfg.rule_settings(), samples(values, seconds=7200, every=10), 3600)
    con = storage.connect(db)
    try:
        storage.insert_frame(con, "kpi", rows)
        storage.upsert_assets(con, "p1", cfg.assets)
    finally:
        con.close()


def _sheet(path: Path) -> dict[tuple[str, str], float]:
    with path.open(encoding="utf-8") as f:
        return {(r["scope"], r["indicator"]): float(r["value"]) for r in csv.DictReader(f) if r["value"]}


def test_protocol_sheet_on_a_stored_database_reproduces_section_9_5(tmp_path: Path) -> None:
    """796.0 / 760.0 kg CO2/t clinker, 3225.6 MJ/t, TSR 24.11 %, biomass 11.25 %, CF 75.00 %, 597.0 kg/t cement."""
    db = tmp_path / "site.duckdb"
    _store(db, [FOUR_FUEL_KILN, CEMENT_MILL], {**FOUR_FUEL_VALUES, **MILL_VALUES})
    out = tmp_path / "protocol.html"
    day = f"{T0:%Y-%m-%d}"
    assert main(["report", "--protocol", "--db", str(db), "--from", day, "--to", day, "--out", str(out)]) == 0
    got = _sheet(out.with_suffix(".csv"))
    assert round(got[("kiln1", "co2_gross_kg_per_t_clinker")], 1) == 796.0
    assert round(got[("kiln1", "co2_net_kg_per_t_clinker")], 1) == 760.0
    assert round(got[("kiln1", "thermal_energy_mj_per_t_clinker")], 1) == 3225.6
    assert round(got[("kiln1", "thermal_substitution_pct")], 2) == 24.11
    assert round(got[("kiln1", "biomass_energy_pct")], 2) == 11.25
    assert round(got[("cm1", "clinker_factor_pct")], 2) == 75.00
    assert round(got[("cm1", "co2_gross_kg_per_t_cement")], 1) == 597.0
    # two hours at 208.33 t/h: 416.67 t clinker, 2 x 165.837 t gross CO2
    assert got[("kiln1", "co2_gross_t")] == pytest.approx(2 * 165.8374, rel=1e-4)


def test_report_on_a_stored_database_shows_the_section_10_5_split_and_the_section_11_money(
    tmp_path: Path,
) -> None:
    """Waterfall 730 -> +15.84 +13.38 +4.03 +13.43 +13.32 -> 790; two hours at 1,523 CNY/h = 3,045 CNY."""
    db = tmp_path / "site.duckdb"
    fuels = [{**LOSS_KILN["fuels"][0], "price_per_gj": 670.0 / (5500 * 4.1868 / 1000)}]  # type: ignore[index]
    _store(db, [{**LOSS_KILN, "fuels": fuels}], loss_values(), currency="CNY")
    out = tmp_path / "report.html"
    day = f"{T0:%Y-%m-%d}"
    assert main(["report", "--db", str(db), "--from", day, "--to", day, "--out", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    section = html[html.index('id="losses"') :]
    cells = dict(re.findall(r'<td class="txt">([^<]+)</td><td class="num">([^<]+)</td>', section))
    assert cells["exit gas temperature"] == "15.8" and cells["excess / false air"] == "13.4"
    assert cells["CO (unburnt)"] == "4.0" and cells["clinker temperature"] == "13.4"
    assert cells["unattributed"] == "13.3" and cells["actual"] == "790.0" and cells["target"] == "730.0"
    # §11: 60 kcal/kg x 4.1868e-3 x 208.33 t/h = 52.335 GJ/h x 29.096 CNY/GJ = 1,522.7 CNY/h
    assert "3,045" in section and "CNY" in section
