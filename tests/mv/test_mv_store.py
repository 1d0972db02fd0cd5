"""agent.mv_store: periods from stored history, live savings updates and the rule hook."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from mv_helpers import EX3_E, EX3_P, EX3_REP_E, EX3_REP_P, T0, constant_samples, example3_daily_db, kpi_rows

from agent import mv_savings, mv_store, storage
from rules.mv import Baseline, MVError


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    c = storage.connect(":memory:")
    example3_daily_db(c)
    return c


def _fit(con: duckdb.DuckDBPyConnection, days: int = 12) -> Baseline:
    b, _ = mv_store.fit_from_db(
        con,
        site="plant1",
        asset="rawmill1",
        target="power_kw",
        drivers=["feed_tph"],
        start=T0,
        end=T0 + timedelta(days=days),
        granularity="day",
    )
    mv_store.store_baseline(con, b)
    return b


def test_stored_baseline_round_trips_unchanged(con: duckdb.DuckDBPyConnection) -> None:
    b = _fit(con)
    assert mv_store.load_baseline(con, b.baseline_id) == b
    assert mv_store.list_baselines(con, "plant1") == [b]
    assert mv_store.list_baselines(con, "other") == []


def test_integrated_period_values_equal_daily_energy_and_tonnes(con: duckdb.DuckDBPyConnection) -> None:
    """kW held for a day integrates to kWh; t/h to t (10-min samples, sample-and-hold)."""
    variables = [mv_store.resolve_variable(con, "plant1", "rawmill1", n, T0, T0 + timedelta(days=3))
                 for n in ("power_kw", "feed_tph")]  # fmt: skip
    f = mv_store.period_frame(
        con, site="plant1", asset="rawmill1", variables=variables, start=T0, end=T0 + timedelta(days=3),
        granularity="day",
    )  # fmt: skip
    assert f["power_kw"].to_list() == pytest.approx([e * 1000 for e in EX3_E[:3]])
    assert f["feed_tph"].to_list() == pytest.approx([p * 1000 for p in EX3_P[:3]])
    assert f["coverage"].to_list() == pytest.approx([1.0, 1.0, 1.0])
    assert f["fraction"].to_list() == [1.0, 1.0, 1.0]
    assert {v.source for v in variables} == {"tag"}
    assert variables[0].series == ("rawmill1.power_kw",)


def test_hourly_granularity_splits_a_day_into_24_periods(con: duckdb.DuckDBPyConnection) -> None:
    var = mv_store.resolve_variable(con, "plant1", "rawmill1", "power_kw", T0, T0 + timedelta(days=1))
    f = mv_store.period_frame(
        con,
        site="plant1",
        asset="rawmill1",
        variables=[var],
        start=T0,
        end=T0 + timedelta(days=1),
        granularity="hour",
    )
    assert f.height == 24
    assert f["power_kw"].sum() == pytest.approx(EX3_E[0] * 1000)


def test_periods_with_a_data_gap_are_left_out_of_the_fit(con: duckdb.DuckDBPyConnection) -> None:
    """A 6-hour comm outage on day 3 drops its coverage to 75 % < 90 % (docs/kpis.md §7 data sufficiency)."""
    con.execute(
        "DELETE FROM samples WHERE ts >= ? AND ts < ?",
        [T0 + timedelta(days=2, hours=6), T0 + timedelta(days=2, hours=12)],
    )
    b, used = mv_store.fit_from_db(
        con, site="plant1", asset="rawmill1", target="power_kw", drivers=["feed_tph"], start=T0,
        end=T0 + timedelta(days=12), granularity="day",
    )  # fmt: skip
    assert b.n == 11
    assert T0 + timedelta(days=2) not in used["ts"].to_list()
    assert any("1 of 12 periods left out" in w for w in b.warnings)


def test_counter_tags_give_their_increase_per_period() -> None:
    c = storage.connect(":memory:")
    step = timedelta(minutes=15)
    ts = [T0 + i * step for i in range(4 * 24 * 2)]
    # 1000 kWh per hour, with a meter reset to 0 in the middle of day 2 (the drop is ignored)
    vals = [250.0 * i for i in range(len(ts))]
    reset_at = 4 * 36
    vals = vals[:reset_at] + [250.0 * (i - reset_at) for i in range(reset_at, len(ts))]
    frame = pl.DataFrame(
        {
            "ts": ts,
            "tag": ["plant.incomer_kwh_total"] * len(ts),
            "value": vals,
            "quality": ["good"] * len(ts),
        },
        schema={"ts": pl.Datetime("us", "UTC"), "tag": pl.String, "value": pl.Float64, "quality": pl.String},
    )
    storage.insert_samples(c, "plant1", frame)
    var = mv_store.resolve_variable(c, "plant1", "plant", "incomer_kwh_total", T0, T0 + timedelta(days=2))
    assert var.agg.kind == "counter" and var.unit == "kWh"
    f = mv_store.period_frame(
        c,
        site="plant1",
        asset="plant",
        variables=[var],
        start=T0,
        end=T0 + timedelta(days=2),
        granularity="day",
    )
    # day 1 lacks the increase before its first sample (no earlier sample): 95 of 96 intervals, scaled
    assert f["incomer_kwh_total"][0] == pytest.approx(24_000, rel=1e-9)
    # day 2: one interval lost to the reset, the rest scaled to the full day
    assert f["incomer_kwh_total"][1] == pytest.approx(24_000, rel=1e-9)


def test_asset_role_from_the_assets_table_sums_its_tags() -> None:
    c = storage.connect(":memory:")
    day, step = timedelta(days=1), timedelta(minutes=10)
    storage.insert_samples(c, "plant1", constant_samples("kiln1.main_drive_kw", T0, [500.0], day, step))
    storage.insert_samples(c, "plant1", constant_samples("kiln1.id_fan_kw", T0, [2500.0], day, step))
    roles = {"id": "kiln1", "type": "kiln", "power_kw": ["kiln1.main_drive_kw", "kiln1.id_fan_kw"]}
    c.execute("INSERT INTO assets VALUES ('plant1', 'kiln1', 'kiln', ?, NULL)", [json.dumps(roles)])
    var = mv_store.resolve_variable(c, "plant1", "kiln1", "power_kw", T0, T0 + day)
    assert var.source == "role" and var.series == ("kiln1.main_drive_kw", "kiln1.id_fan_kw")
    f = mv_store.period_frame(
        c, site="plant1", asset="kiln1", variables=[var], start=T0, end=T0 + day, granularity="day"
    )
    assert f["power_kw"][0] == pytest.approx(3000.0 * 24)


def test_kpi_is_preferred_over_a_tag_and_its_finest_window_is_used() -> None:
    c = storage.connect(":memory:")
    rows = [
        (T0 + timedelta(minutes=m), "plant1", "cm1", "specific_power_kwh_per_t", 30.0, "kWh/t", 60)
        for m in range(60)
    ]
    rows.append((T0, "plant1", "cm1", "specific_power_kwh_per_t", 99.0, "kWh/t", 3600))
    storage.insert_frame(c, "kpi", kpi_rows(rows))
    var = mv_store.resolve_variable(
        c, "plant1", "cm1", "specific_power_kwh_per_t", T0, T0 + timedelta(hours=1)
    )
    assert var.source == "kpi" and var.window_secs == 60 and var.unit == "kWh/t" and var.agg.kind == "mean"


def test_unknown_name_raises_with_what_was_searched(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(MVError, match=r"no data for 'blaine' of asset 'rawmill1'.*asset role"):
        mv_store.resolve_variable(con, "plant1", "rawmill1", "blaine", T0, T0 + timedelta(days=1))


def test_update_savings_is_idempotent_and_keeps_the_live_day_partial(con: duckdb.DuckDBPyConnection) -> None:
    b = _fit(con)
    now = T0 + timedelta(days=14, hours=6)
    n1 = mv_savings.update_savings(con, "plant1", now)
    first = mv_savings.savings_frame(con, b.baseline_id)
    n2 = mv_savings.update_savings(con, "plant1", now)
    second = mv_savings.savings_frame(con, b.baseline_id)
    assert n1 == 3 and n2 == 1  # second run rewrites only the current (partial) day
    assert first.equals(second)
    assert first["fraction"].to_list() == pytest.approx([1.0, 1.0, 0.25])
    assert first["avoided"].to_list()[:2] == pytest.approx([105.45e3, 180.56e3], rel=1e-3)
    # the live quarter day: expected and actual both cover 6 h
    assert first["actual"][2] == pytest.approx(EX3_REP_E[2] * 1000 * 0.25)
    assert first["avoided"][2] == pytest.approx(108.75e3 * 0.25, rel=1e-3)
    assert first["cumulative_avoided"][2] == pytest.approx(sum(first["avoided"].to_list()))


def test_update_savings_completes_the_day_once_it_has_ended(con: duckdb.DuckDBPyConnection) -> None:
    b = _fit(con)
    mv_savings.update_savings(con, "plant1", T0 + timedelta(days=14, hours=6))
    mv_savings.update_savings(con, "plant1", T0 + timedelta(days=15))
    s = mv_savings.savings_frame(con, b.baseline_id)
    assert s.height == 3
    assert s["fraction"].to_list() == [1.0, 1.0, 1.0]
    assert s["cumulative_avoided"].to_list() == pytest.approx([105.5e3, 286.0e3, 394.8e3], abs=60)


def test_savings_rows_carry_the_money_and_co2_of_the_avoided_kwh(con: duckdb.DuckDBPyConnection) -> None:
    """docs/kpis.md §11: avoided kWh x the site's tariff and grid factor, stored beside each row."""
    from agent.storage import upsert_site

    upsert_site(con, "plant1", currency="CNY", grid_co2_kg_per_kwh=0.5306, electricity_price_per_kwh=0.65)
    _fit(con)
    mv_savings.update_savings(con, "plant1", T0 + timedelta(days=15))
    rows = con.sql(
        "SELECT unit, avoided, avoided_cost, avoided_co2_kg, currency FROM mv_savings WHERE avoided IS NOT NULL"
    ).fetchall()
    assert rows
    for unit, avoided, cost, co2, currency in rows:
        assert unit == "kWh" and currency == "CNY"
        assert cost == pytest.approx(avoided * 0.65) and co2 == pytest.approx(avoided * 0.5306)


def test_update_savings_before_the_reporting_period_writes_nothing(con: duckdb.DuckDBPyConnection) -> None:
    _fit(con)
    assert mv_savings.update_savings(con, "plant1", T0 + timedelta(days=5)) == 0


def test_days_without_data_are_stored_as_gaps_and_the_cusum_carries_over(
    con: duckdb.DuckDBPyConnection,
) -> None:
    b = _fit(con)
    con.execute(
        "DELETE FROM samples WHERE ts >= ? AND ts < ?", [T0 + timedelta(days=13), T0 + timedelta(days=14)]
    )
    mv_savings.update_savings(con, "plant1", T0 + timedelta(days=15))
    s = mv_savings.savings_frame(con, b.baseline_id)
    assert s["avoided"].is_null().to_list() == [False, True, False]
    assert s["cumulative_avoided"].to_list() == pytest.approx(
        [105.45e3, 105.45e3, 105.45e3 + 108.75e3], rel=1e-3
    )


def test_only_the_latest_baseline_per_asset_and_target_is_live(con: duckdb.DuckDBPyConnection) -> None:
    old = _fit(con, days=10)
    new = _fit(con, days=12)
    live = mv_store.live_baselines(con, "plant1")
    assert [b.baseline_id for b in live] == [new.baseline_id]
    assert old.baseline_id != new.baseline_id


def test_recent_deviation_is_positive_when_consuming_more_than_the_baseline(
    con: duckdb.DuckDBPyConnection,
) -> None:
    b = _fit(con)
    now = T0 + timedelta(days=14, hours=12)
    dev = mv_savings.recent_deviation(con, "plant1", "rawmill1", 6, now=now)
    expected = b.intercept + b.coefficients[0] * EX3_REP_P[2] * 1000
    assert dev == pytest.approx(100 * (EX3_REP_E[2] * 1000 - expected) / expected, rel=1e-6)
    assert dev is not None and dev < 0  # the reporting day uses less than the baseline expects
    # a 20 % overconsumption shows up as about +20 % against the baseline
    con.execute(
        "UPDATE samples SET value = value * 1.2 WHERE tag = 'rawmill1.power_kw' AND ts >= ?",
        [now - timedelta(hours=6)],
    )
    dev2 = mv_savings.recent_deviation(con, "plant1", "rawmill1", 6, now=now)
    assert dev2 == pytest.approx(100 * (1.2 * EX3_REP_E[2] * 1000 - expected) / expected, rel=1e-6)
    rows = mv_savings.deviation_kpi_rows(con, "plant1", now, hours=6)
    assert rows.select("asset", "kpi", "unit", "window_secs").row(0) == (
        "rawmill1",
        "baseline_deviation_pct",
        "%",
        21600,
    )
    assert rows["value"][0] == pytest.approx(dev2)


def test_excess_energy_against_the_baseline_and_its_money_and_co2(con: duckdb.DuckDBPyConnection) -> None:
    """docs/kpis.md §11: the excess kWh per hour of a kWh baseline, then x tariff and x grid factor."""
    b = _fit(con)
    now = T0 + timedelta(days=14, hours=12)
    con.execute(
        "UPDATE samples SET value = value * 1.2 WHERE tag = 'rawmill1.power_kw' AND ts >= ?",
        [now - timedelta(hours=6)],
    )
    d = mv_savings.recent_excess(con, "plant1", "rawmill1", 6, now=now)
    assert d is not None and d.pct is not None and d.excess_kwh_per_h is not None
    expected_per_day = b.intercept + b.coefficients[0] * EX3_REP_P[2] * 1000
    # pct = 100 (actual - expected) / expected over the 6 h; per hour that is pct/100 x expected/24
    assert d.excess_kwh_per_h == pytest.approx(d.pct / 100 * expected_per_day / 24, rel=1e-6)
    assert d.excess_kwh_per_h > 0
    # §11 worked example: 33.0 against 30.0 kWh/t at 6,000 t/d = 18,000 kWh/d = 750 kWh/h;
    # 11,700 CNY/d at 0.65 CNY/kWh, 9.551 t CO2/d at 0.5306 kg/kWh
    vals = mv_savings.excess_values(
        {"cm1": mv_savings.Deviation(10.0, 18000 / 24), "rm1": None},
        price_per_kwh=0.65,
        grid_co2_kg_per_kwh=0.5306,
    )
    assert vals["excess_power_cost_per_h"]["cm1"] == pytest.approx(11700 / 24)
    assert round(vals["excess_power_co2_kg_per_h"]["cm1"] * 24 / 1000, 3) == 9.551
    assert vals["excess_energy_kwh_per_h"]["rm1"] is None
    no_price = mv_savings.excess_values(
        {"cm1": mv_savings.Deviation(10.0, 750.0)}, price_per_kwh=None, grid_co2_kg_per_kwh=None
    )
    assert (
        no_price["excess_power_cost_per_h"]["cm1"] is None
        and no_price["excess_energy_kwh_per_h"]["cm1"] == 750.0
    )
    rows = mv_savings.excess_kpi_rows(vals, "plant1", now, {"excess_power_cost_per_h": "CNY/h"})
    assert rows.filter(pl.col("kpi") == "excess_power_cost_per_h")["unit"].to_list() == ["CNY/h"]
    assert set(rows["window_secs"].to_list()) == {3600}


def test_recent_deviation_is_none_without_baseline_or_data(con: duckdb.DuckDBPyConnection) -> None:
    now = T0 + timedelta(days=14)
    assert mv_savings.recent_deviation(con, "plant1", "rawmill1", 1, now=now) is None
    _fit(con)
    assert (
        mv_savings.recent_deviation(con, "plant1", "rawmill1", 1, now=datetime(2030, 1, 1, tzinfo=UTC))
        is None
    )


def test_reporting_mean_outside_baseline_range_is_reported(con: duckdb.DuckDBPyConnection) -> None:
    b = _fit(con)
    con.execute(
        "UPDATE samples SET value = value * 3 WHERE tag = 'rawmill1.feed_tph' AND ts >= ?",
        [T0 + timedelta(days=12)],
    )
    _, warnings = mv_savings.compute_savings(
        con, b, T0 + timedelta(days=12), T0 + timedelta(days=15), store=False
    )
    assert any("outside the baseline range" in w for w in warnings)
    assert any("3 of 3 reporting periods" in w for w in warnings)


def test_resolve_site_picks_the_only_site_or_asks(con: duckdb.DuckDBPyConnection) -> None:
    assert mv_store.resolve_site(con, None) == "plant1"
    storage.insert_frame(con, "kpi", kpi_rows([(T0, "plant2", "k", "x", 1.0, "", 60)]))
    with pytest.raises(MVError, match="several sites"):
        mv_store.resolve_site(con, None)
    assert mv_store.resolve_site(con, "plant2") == "plant2"


def test_update_savings_works_off_a_long_backlog_over_several_calls(
    con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = _fit(con)
    monkeypatch.setattr(mv_savings, "CATCH_UP", timedelta(hours=30))  # 2 periods of a day per call
    now = T0 + timedelta(days=15)
    assert mv_savings.update_savings(con, "plant1", now) == 2
    assert mv_savings.update_savings(con, "plant1", now) == 1
    assert mv_savings.update_savings(con, "plant1", now) == 0
    s = mv_savings.savings_frame(con, b.baseline_id)
    assert s["cumulative_avoided"].to_list() == pytest.approx([105.5e3, 286.0e3, 394.8e3], abs=60)
    assert s["fraction"].to_list() == [1.0, 1.0, 1.0]


def _stop_and_overload(con: duckdb.DuckDBPyConnection) -> None:
    """Reporting day 13: mill stopped (feed and power 0). Day 14: feed x 1.5 = 307.5 kt, far above the
    baseline range 170-215 kt (+ 10 % of 45 = 219.5). Day 15 unchanged."""
    d13, d14 = T0 + timedelta(days=12), T0 + timedelta(days=13)
    con.execute("UPDATE samples SET value = 0 WHERE ts >= ? AND ts < ?", [d13, d14])
    con.execute(
        "UPDATE samples SET value = value * 1.5 WHERE tag = 'rawmill1.feed_tph' AND ts >= ? AND ts < ?",
        [d14, d14 + timedelta(days=1)],
    )


def test_stopped_and_out_of_range_periods_earn_no_savings(con: duckdb.DuckDBPyConnection) -> None:
    """Auditor issue: a stopped mill was credited the intercept (830.7 MWh/day here) as avoided energy."""
    b = _fit(con)
    _stop_and_overload(con)
    rows, warnings = mv_savings.compute_savings(con, b, T0 + timedelta(days=12), T0 + timedelta(days=15))
    assert rows["avoided"].to_list()[:2] == [None, None]
    # only day 15 counts: 108.75 MWh (docs/kpis.md §7 worked example 3, third reporting month)
    assert rows["avoided"][2] == pytest.approx(108.75e3, rel=1e-3)
    assert rows["cumulative_avoided"].to_list() == pytest.approx([0.0, 0.0, 108.75e3], rel=1e-3)
    assert "1 period(s) excluded from savings: asset stopped" in " | ".join(warnings)
    assert (
        "1 period(s) excluded from savings: driver outside the baseline range by more than 10 %"
        in " | ".join(warnings)
    )
    assert not any("coverage" in w for w in warnings)
    # the live path stores the same and the rule feed sees no deviation while stopped
    con.execute("DELETE FROM mv_savings")
    mv_savings.update_savings(con, "plant1", T0 + timedelta(days=15))
    s = mv_savings.savings_frame(con, b.baseline_id)
    assert s["avoided"].is_null().to_list() == [True, True, False]
    assert s["cumulative_avoided"].to_list() == pytest.approx([0.0, 0.0, 108.75e3], rel=1e-3)
    stopped_noon = T0 + timedelta(days=12, hours=12)
    assert mv_savings.recent_deviation(con, "plant1", "rawmill1", 6, now=stopped_noon) is None
    assert mv_savings.recent_deviations(con, "plant1", stopped_noon) == {"rawmill1": None}


def test_baseline_without_driver_ranges_excludes_stopped_periods_only(con: duckdb.DuckDBPyConnection) -> None:
    """A baseline stored before ranges were recorded: no range check, the stopped rule still applies."""
    b = _fit(con)
    con.execute("UPDATE baselines SET driver_min = NULL, driver_max = NULL")
    (b,) = mv_store.list_baselines(con)
    assert b.driver_min == ()
    _stop_and_overload(con)
    rows, _ = mv_savings.compute_savings(con, b, T0 + timedelta(days=12), T0 + timedelta(days=15))
    assert rows["avoided"].is_null().to_list() == [True, False, False]


def test_a_baseline_fitted_on_archived_tag_history_is_unchanged(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """Raw samples moved to the Parquet archive (agent/tiering.py) still feed baselines through
    ``v_samples``: the same periods, the same coefficients, to the last bit."""
    from agent.tiering import TierSettings, maintain

    before = _fit(con)
    res = maintain(
        con,
        TierSettings(archive_dir=tmp_path / "archive", samples_retention_days=1),
        now=T0 + timedelta(days=40),
    )
    assert res.rows_moved > 0 and con.execute("SELECT count(*) FROM samples").fetchall() == [(0,)]
    after = _fit(con)
    assert (after.n, after.intercept, after.coefficients, after.cv_rmse) == (
        before.n,
        before.intercept,
        before.coefficients,
        before.cv_rmse,
    )
