"""KPI formulas against the docs/kpis.md worked examples (to 4 significant figures) and their edge cases."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import polars as pl
import pytest
from rules_support import EXAMPLE1_KILN, EXAMPLE1_VALUES, T0, kpi_value, make_config, samples

from rules.catalogue import KPI_ROW_SCHEMA, KPI_UNITS
from rules.constants import KGCE_PER_KWH, KJ_PER_KCAL, MJ_PER_KGCE
from rules.grades import grade
from rules.kpi import compute_kpis, wide_signals


def sig4(x: float) -> float:
    """Round to 4 significant figures, as docs/kpis.md quotes its results."""
    return float(f"{x:.4g}")


def one_window(cfg: Any, values: Mapping[str, float | None], **kw: Any) -> pl.DataFrame:
    return compute_kpis(cfg.rule_settings(), samples(values, **kw), 60)


def value(rows: pl.DataFrame, asset: str, kpi: str) -> float:
    v = kpi_value(rows, asset, kpi)["value"]
    assert v is not None, kpi_value(rows, asset, kpi)
    return float(v)


# ------------------------------------------------------------------------------------- example 1
def test_domain_example1_kiln_kpis() -> None:
    """docs/kpis.md worked example 1: 112.5 t/h, 425.0 GJ/h, 3778 MJ/t, 902.3 kcal/kg, 128.9 + 6.760 = 135.7."""
    rows = one_window(make_config([EXAMPLE1_KILN]), EXAMPLE1_VALUES)
    assert sig4(value(rows, "kiln1", "clinker_tph")) == 112.5
    assert sig4(value(rows, "kiln1", "heat_input_gj_per_h")) == 425.0
    assert sig4(value(rows, "kiln1", "specific_heat_mj_per_t_clinker")) == 3778
    assert sig4(value(rows, "kiln1", "specific_heat_kcal_per_kg_clinker")) == 902.3
    assert sig4(value(rows, "kiln1", "clinker_coal_kgce_per_t")) == 128.9
    assert sig4(value(rows, "kiln1", "clinker_power_kwh_per_t")) == 55.00
    assert sig4(value(rows, "kiln1", "clinker_power_kwh_per_t") * KGCE_PER_KWH) == 6.760
    assert sig4(value(rows, "kiln1", "clinker_energy_kgce_per_t")) == 135.7
    assert sig4(value(rows, "kiln1", "co2_kg_per_t_clinker")) == 882.4  # 525 + 3.7778 x 94.6


def test_domain_example1_kcal_uses_the_international_table_calorie() -> None:
    rows = one_window(make_config([EXAMPLE1_KILN]), EXAMPLE1_VALUES)
    kcal = value(rows, "kiln1", "specific_heat_kcal_per_kg_clinker")
    assert KJ_PER_KCAL == 4.1868 and MJ_PER_KGCE == 29.3076 and KGCE_PER_KWH == 0.1229
    assert kcal == pytest.approx(3777.7778 / 4.1868, rel=1e-6)
    assert sig4(3777.7778 / 4.184) == 902.9  # the thermochemical calorie would be wrong


def test_domain_example1_composition_method_co2() -> None:
    """CaO 65.5 %, MgO 1.5 % -> 0.785 x 655 + 1.092 x 15 = 530.6 kg CO2/t clinker (docs/kpis.md §4)."""
    kiln = {**EXAMPLE1_KILN, "clinker_cao_pct": 65.5, "clinker_mgo_pct": 1.5}
    rows = one_window(make_config([kiln]), EXAMPLE1_VALUES)
    fuel_co2 = 3777.7778 / 1000 * 94.6
    assert sig4(value(rows, "kiln1", "co2_kg_per_t_clinker") - fuel_co2) == 530.6


def test_domain_example1_fuel_emission_factor_follows_the_configured_fuel() -> None:
    kiln = {**EXAMPLE1_KILN, "fuel_co2_kg_per_gj": 97.5}  # petcoke (docs/kpis.md §4 [U])
    rows = one_window(make_config([kiln]), EXAMPLE1_VALUES)
    assert value(rows, "kiln1", "co2_kg_per_t_clinker") == pytest.approx(525 + 3.7777778 * 97.5, rel=1e-6)


def test_domain_example1_gb16780_grades() -> None:
    """coal 128.9 > 109 fails grade 3; electricity 55 <= 57 grade 2; comprehensive 135.7 fails grade 3."""
    rows = one_window(make_config([EXAMPLE1_KILN]), EXAMPLE1_VALUES)
    assert grade("clinker_coal_kgce_per_t", value(rows, "kiln1", "clinker_coal_kgce_per_t")).grade is None
    assert grade("clinker_power_kwh_per_t", value(rows, "kiln1", "clinker_power_kwh_per_t")).grade == 2
    assert grade("clinker_energy_kgce_per_t", value(rows, "kiln1", "clinker_energy_kgce_per_t")).grade is None


# ------------------------------------------------------------------------------------- example 2
CEMENT_MILL = {
    "id": "cm1",
    "type": "cement_mill",
    "feed_tph": "cm1.feed_tph",
    "power_kw": ["cm1.main_drive_kw", "cm1.separator_kw", "cm1.fan_kw", "cm1.aux_kw"],
    "fineness_blaine_cm2_per_g": "cm1.blaine",
}
CEMENT_VALUES = {
    "cm1.feed_tph": 148.0,
    "cm1.main_drive_kw": 3650.0,
    "cm1.separator_kw": 160.0,
    "cm1.fan_kw": 520.0,
    "cm1.aux_kw": 300.0,
    "cm1.blaine": 3500.0,
}


def test_domain_example2_cement_mill_specific_power() -> None:
    """4,630 kW / 148 t/h = 31.28 kWh/t; main drive alone 24.66; GB 16780 preparation grade 3."""
    rows = one_window(make_config([CEMENT_MILL]), CEMENT_VALUES)
    sec = value(rows, "cm1", "specific_power_kwh_per_t")
    assert sig4(sec) == 31.28
    assert grade("cement_preparation_kwh_per_t", sec).grade == 3
    assert value(rows, "cm1", "power_kw") == pytest.approx(4630.0)
    assert value(rows, "cm1", "fineness_blaine_cm2_per_g") == pytest.approx(3500.0)
    main_only = {**CEMENT_MILL, "power_kw": "cm1.main_drive_kw"}
    rows = one_window(make_config([main_only], extra_tags=list(CEMENT_VALUES)), CEMENT_VALUES)
    assert sig4(value(rows, "cm1", "specific_power_kwh_per_t")) == 24.66


WHR_KILN = {
    "id": "kiln2",
    "type": "kiln",
    "feed_to_clinker": 1.6,
    "kiln_feed_tph": "kiln2.feed_tph",
    "fuel_tph": "kiln2.coal_tph",
    "fuel_ncv_mj_per_kg": 25.0,
}
WHR = {"id": "whr2", "type": "whr", "generator_kw": "whr2.gen_kw", "aux_kw": "whr2.aux_kw", "kiln": "kiln2"}


def test_domain_example2_whr_gross_and_net_per_tonne_clinker() -> None:
    """5,000 t/d = 208.3 t/h; 8,600 kW gross, 700 kW auxiliaries: 41.28 gross, 37.92 net kWh/t."""
    values = {
        "kiln2.feed_tph": 5000 / 24 * 1.6,
        "kiln2.coal_tph": 25.0,
        "whr2.gen_kw": 8600.0,
        "whr2.aux_kw": 700.0,
    }
    rows = one_window(make_config([WHR_KILN, WHR]), values)
    assert sig4(value(rows, "whr2", "whr_kwh_per_t_clinker")) == 41.28
    assert sig4(value(rows, "whr2", "whr_net_kwh_per_t_clinker")) == 37.92
    assert value(rows, "whr2", "whr_net_kw") == pytest.approx(7900.0)


def test_domain_example2_false_air_of_inlet_gas() -> None:
    """O2 kiln inlet 2.3 %, PH exit 4.8 % -> 15.43 % of inlet gas (docs/kpis.md §8 two-point method)."""
    rows = one_window(make_config([EXAMPLE1_KILN]), EXAMPLE1_VALUES)
    assert sig4(value(rows, "kiln1", "preheater_false_air_pct")) == 15.43


# ------------------------------------------------------------------------------------- allocation
RAW = {"id": "rm1", "type": "raw_mill", "feed_tph": "rm1.feed_tph", "power_kw": "rm1.power_kw"}
COAL = {"id": "coal1", "type": "coal_mill", "feed_tph": "coal1.feed_tph", "power_kw": "coal1.power_kw"}
ALLOC_KILN = {
    "id": "kiln1",
    "type": "kiln",
    "feed_to_clinker": 1.6,
    "kiln_feed_tph": "kiln1.feed_tph",
    "fuel_tph": "kiln1.coal_tph",
    "fuel_ncv_mj_per_kg": 25.0,
    "power_kw": "kiln1.power_kw",
}
ALLOC_VALUES = {
    "kiln1.feed_tph": 320.0,  # 200 t/h clinker
    "kiln1.coal_tph": 20.0,  # 0.1 t coal per t clinker
    "kiln1.power_kw": 5000.0,  # 25 kWh/t clinker
    "rm1.feed_tph": 400.0,
    "rm1.power_kw": 6000.0,  # 15 kWh/t raw meal -> x 1.6 = 24 kWh/t clinker
    "coal1.feed_tph": 25.0,
    "coal1.power_kw": 500.0,  # 20 kWh/t coal -> x 0.1 = 2 kWh/t clinker
    "whr1.gen_kw": 7000.0,
    "whr1.aux_kw": 1000.0,  # 6000 kW net = 30 kWh/t clinker
}


def test_clinker_power_allocates_raw_meal_via_feed_to_clinker_and_coal_via_coal_ratio() -> None:
    """docs/kpis.md §2: kiln 25 + raw 15 x 1.6 + coal 20 x 0.1 = 51 kWh/t clinker."""
    cfg = make_config([ALLOC_KILN, RAW, COAL])
    rows = one_window(cfg, ALLOC_VALUES)
    assert value(rows, "kiln1", "specific_power_kwh_per_t") == pytest.approx(25.0)
    assert value(rows, "rm1", "specific_power_kwh_per_t") == pytest.approx(15.0)
    assert value(rows, "kiln1", "clinker_power_kwh_per_t") == pytest.approx(51.0)
    coal_term = 20 * 25 * 1000 / 200 / MJ_PER_KGCE
    assert value(rows, "kiln1", "clinker_energy_kgce_per_t") == pytest.approx(coal_term + 51.0 * KGCE_PER_KWH)


def test_clinker_power_nets_whr_generation_only_when_configured() -> None:
    whr = {**WHR, "id": "whr1", "generator_kw": "whr1.gen_kw", "aux_kw": "whr1.aux_kw", "kiln": "kiln1"}
    netted = one_window(make_config([ALLOC_KILN, RAW, COAL, whr]), ALLOC_VALUES)
    assert value(netted, "kiln1", "clinker_power_kwh_per_t") == pytest.approx(51.0 - 30.0)
    gross = one_window(
        make_config([ALLOC_KILN, RAW, COAL, whr], net_whr_in_comprehensive_power=False), ALLOC_VALUES
    )
    assert value(gross, "kiln1", "clinker_power_kwh_per_t") == pytest.approx(51.0)


def test_stopped_raw_mill_charges_its_standby_power_per_tonne_clinker() -> None:
    values = {**ALLOC_VALUES, "rm1.feed_tph": 0.0, "rm1.power_kw": 200.0}
    rows = one_window(make_config([ALLOC_KILN, RAW, COAL]), values)
    assert value(rows, "kiln1", "clinker_power_kwh_per_t") == pytest.approx(25.0 + 200 / 200 + 2.0)
    assert kpi_value(rows, "rm1", "specific_power_kwh_per_t")["reason"] == "mill idle"


def test_mills_of_a_multi_kiln_site_are_allocated_by_their_kiln_link() -> None:
    kiln_b = {**ALLOC_KILN, "id": "kiln2", "kiln_feed_tph": "kiln2.feed_tph", "fuel_tph": "kiln2.coal_tph"}
    kiln_b["power_kw"] = "kiln2.power_kw"
    raw = {**RAW, "kiln": "kiln2"}
    values = {**ALLOC_VALUES, "kiln2.feed_tph": 320.0, "kiln2.coal_tph": 20.0, "kiln2.power_kw": 5000.0}
    rows = one_window(make_config([ALLOC_KILN, kiln_b, raw], extra_tags=["coal1.feed_tph"]), values)
    assert value(rows, "kiln1", "clinker_power_kwh_per_t") == pytest.approx(25.0)  # no mill linked
    assert value(rows, "kiln2", "clinker_power_kwh_per_t") == pytest.approx(25.0 + 24.0)


# ------------------------------------------------------------------------------------- quality
def test_kiln_stopped_gives_null_per_tonne_kpis_with_reason() -> None:
    values = {**EXAMPLE1_VALUES, "kiln1.feed_tph": 4.0}  # 2.5 t/h clinker < 5 % of 125 t/h nominal
    rows = one_window(make_config([EXAMPLE1_KILN]), values)
    assert value(rows, "kiln1", "clinker_tph") == pytest.approx(2.5)  # the flow itself is a valid 2.5
    for kpi in ("specific_heat_kcal_per_kg_clinker", "clinker_energy_kgce_per_t", "specific_power_kwh_per_t"):
        row = kpi_value(rows, "kiln1", kpi)
        assert row["value"] is None
        assert row["reason"] == "kiln stopped"
    assert value(rows, "kiln1", "heat_input_gj_per_h") == pytest.approx(425.0)


def test_kiln_below_one_tonne_per_hour_is_stopped_without_a_nominal_rate() -> None:
    kiln = {k: v for k, v in EXAMPLE1_KILN.items() if k != "nominal_feed_tph"}
    rows = one_window(make_config([kiln]), {**EXAMPLE1_VALUES, "kiln1.feed_tph": 1.5})  # 0.94 t/h
    assert kpi_value(rows, "kiln1", "specific_heat_mj_per_t_clinker")["reason"] == "kiln stopped"
    rows = one_window(make_config([kiln]), {**EXAMPLE1_VALUES, "kiln1.feed_tph": 16.0})  # 10 t/h
    assert kpi_value(rows, "kiln1", "specific_heat_mj_per_t_clinker")["value"] is not None


def test_only_good_samples_count_towards_the_mean() -> None:
    cfg = make_config([CEMENT_MILL])
    good = samples(CEMENT_VALUES, seconds=30)
    bad = samples({**CEMENT_VALUES, "cm1.feed_tph": 1e6}, start=T0 + timedelta(seconds=30), seconds=30)
    bad = bad.with_columns(
        pl.when(pl.col("tag") == "cm1.feed_tph")
        .then(pl.lit("bad"))
        .otherwise(pl.col("quality"))
        .alias("quality")
    )
    rows = compute_kpis(cfg.rule_settings(), pl.concat([good, bad]), 60)
    row = kpi_value(rows, "cm1", "specific_power_kwh_per_t")
    assert row["value"] == pytest.approx(4630 / 148)
    assert row["good_fraction"] == pytest.approx(0.5)
    assert row["reason"] is None  # 50 % good is enough; below it is flagged "partial data"


def test_little_good_data_is_flagged_partial_and_none_is_null() -> None:
    cfg = make_config([CEMENT_MILL])
    values: dict[str, float | None] = dict(CEMENT_VALUES)
    quality = {"cm1.feed_tph": "comm_error"}
    data = pl.concat(
        [
            samples(values, seconds=10),
            samples(values, start=T0 + timedelta(seconds=10), seconds=50, quality=quality),
        ]
    )
    row = kpi_value(compute_kpis(cfg.rule_settings(), data, 60), "cm1", "specific_power_kwh_per_t")
    assert row["value"] == pytest.approx(4630 / 148)
    assert row["good_fraction"] == pytest.approx(10 / 60)
    assert row["reason"] == "partial data"
    none = samples(values, seconds=60, quality={"cm1.feed_tph": "stale"})
    row = kpi_value(compute_kpis(cfg.rule_settings(), none, 60), "cm1", "specific_power_kwh_per_t")
    assert row["value"] is None and row["reason"] == "no good data" and row["good_fraction"] == 0.0


def test_a_role_with_one_tag_missing_has_no_value() -> None:
    """A summed role is NULL when one of its tags has no good data (never a silently low sum)."""
    values = {k: v for k, v in CEMENT_VALUES.items() if k != "cm1.aux_kw"}
    rows = one_window(make_config([CEMENT_MILL]), values)
    assert kpi_value(rows, "cm1", "power_kw")["reason"] == "no good data"
    assert kpi_value(rows, "cm1", "specific_power_kwh_per_t")["value"] is None


def test_analyser_at_ambient_air_gives_null_false_air() -> None:
    rows = one_window(make_config([EXAMPLE1_KILN]), {**EXAMPLE1_VALUES, "kiln1.ph_exit_o2_pct": 20.9})
    row = kpi_value(rows, "kiln1", "preheater_false_air_pct")
    assert row["value"] is None and row["reason"] == "o2 at air level"


def test_fuel_ncv_from_a_lab_tag() -> None:
    kiln = {k: v for k, v in EXAMPLE1_KILN.items() if k != "fuel_ncv_mj_per_kg"} | {"fuel_ncv_tag": "lab.ncv"}
    cfg = make_config([kiln], extra_tags=["lab.ncv"])
    rows = one_window(cfg, {**EXAMPLE1_VALUES, "lab.ncv": 25.0})
    assert sig4(value(rows, "kiln1", "specific_heat_kcal_per_kg_clinker")) == 902.3


def test_rows_have_the_kpi_table_columns_and_units_in_names() -> None:
    rows = one_window(make_config([EXAMPLE1_KILN, CEMENT_MILL]), {**EXAMPLE1_VALUES, **CEMENT_VALUES})
    assert dict(rows.schema) == KPI_ROW_SCHEMA
    assert rows["ts"].unique().to_list() == [T0]  # ts = window start (UTC)
    assert set(rows["window_secs"].to_list()) == {60}
    assert set(rows["site"].to_list()) == {"p1"}
    for kpi, unit in rows.select("kpi", "unit").unique().iter_rows():
        assert KPI_UNITS[kpi] == unit
    # the contract names (docs/kpis.md) are present for a kiln with these roles
    kiln_kpis = set(rows.filter(pl.col("asset") == "kiln1")["kpi"].to_list())
    assert {
        "clinker_tph",
        "heat_input_gj_per_h",
        "specific_heat_mj_per_t_clinker",
        "specific_heat_kcal_per_kg_clinker",
        "specific_power_kwh_per_t",
        "clinker_energy_kgce_per_t",
        "co2_kg_per_t_clinker",
        "preheater_false_air_pct",
        "clinker_coal_kgce_per_t",
        "clinker_power_kwh_per_t",
    } <= kiln_kpis


def test_compute_kpis_fills_windows_without_samples_with_null_rows() -> None:
    cfg = make_config([CEMENT_MILL])
    data = pl.concat(
        [
            samples(CEMENT_VALUES, seconds=60),
            samples(CEMENT_VALUES, start=T0 + timedelta(minutes=3), seconds=60),
        ]
    )
    rows = compute_kpis(cfg.rule_settings(), data, 60).filter(pl.col("kpi") == "specific_power_kwh_per_t")
    assert rows["ts"].to_list() == [T0 + timedelta(minutes=m) for m in range(4)]
    assert rows["reason"].to_list() == [None, "no good data", "no good data", None]


def test_hourly_windows_are_utc_aligned() -> None:
    cfg = make_config([CEMENT_MILL])
    data = samples(CEMENT_VALUES, start=T0 + timedelta(minutes=50), seconds=1200, every=10)
    rows = compute_kpis(cfg.rule_settings(), data, 3600).filter(pl.col("kpi") == "feed_tph")
    assert rows["ts"].to_list() == [T0, T0 + timedelta(hours=1)]


def test_wide_signal_frame_has_one_column_per_tag() -> None:
    data = samples(CEMENT_VALUES, seconds=120, every=10)
    wide = wide_signals(data, 60)
    assert wide.height == 2
    assert set(wide.columns) == {"ts", *CEMENT_VALUES}
    assert wide["cm1.feed_tph"].to_list() == [148.0, 148.0]
