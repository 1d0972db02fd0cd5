"""rules.mv: OLS statistics, EnPI Lite checks, savings and CUSUM (docs/kpis.md §7)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from mv_helpers import EX3_E, EX3_P, EX3_REP_E, EX3_REP_P
from polars.testing import assert_frame_equal

from rules.mv import (
    Aggregation,
    Baseline,
    MVError,
    aggregation_for,
    deviation_pct,
    fit_baseline,
    ols,
    percent_savings,
    reporting_warnings,
    savings,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _frame(e: Sequence[float], p: Sequence[float], start: datetime = T0) -> pl.DataFrame:
    return pl.DataFrame({"ts": [start + timedelta(days=i) for i in range(len(e))], "e_kw": e, "p_tph": p})


def _example3_baseline() -> Baseline:
    return fit_baseline(
        _frame(EX3_E, EX3_P),
        target="e_kw",
        drivers=["p_tph"],
        site="s",
        asset="rawmill1",
        granularity="month",
    )


def test_example3_fit_matches_domain_worked_example() -> None:
    """docs/kpis.md §7 example 3: E = 830.7 + 15.34 P, R² 0.9821, adj 0.9803, CV(RMSE) 0.7982 %, NMBE 0."""
    fit = ols(EX3_E, EX3_P)
    assert fit.params[0] == pytest.approx(830.7, rel=1e-4)
    assert fit.params[1] == pytest.approx(15.34, rel=1e-3)
    assert fit.r2 == pytest.approx(0.9821, abs=5e-5)
    assert fit.adj_r2 == pytest.approx(0.9803, abs=5e-5)
    assert fit.sse == pytest.approx(9146, rel=1e-3)
    assert fit.y_mean == pytest.approx(3789, rel=1e-4)
    assert fit.t_values[1] == pytest.approx(23.43, rel=1e-3)
    assert fit.cv_rmse == pytest.approx(0.7982, rel=1e-4)  # n - p with p = 2
    assert fit.nmbe == pytest.approx(0.0, abs=1e-9)  # in-sample OLS with intercept
    assert fit.p == 2


def test_cv_rmse_uses_n_minus_p_not_n() -> None:
    """The pinned convention: 0.7982 % with n − p; the n-denominator variant would be 0.7286 %."""
    fit = ols(EX3_E, EX3_P)
    with_n = 100 * np.sqrt(fit.sse / fit.n) / fit.y_mean
    assert with_n == pytest.approx(0.7286, rel=1e-3)
    assert fit.cv_rmse > with_n


def test_residual_sign_is_measured_minus_predicted() -> None:
    fit = ols([1.0, 2.0, 3.0, 10.0], [1.0, 2.0, 3.0, 4.0])
    assert np.allclose(fit.residuals, np.array([1.0, 2.0, 3.0, 10.0]) - fit.fitted)


def test_example3_savings_and_cusum_are_up_is_good() -> None:
    """Savings [105.5, 180.6, 108.7] MWh, CUSUM [105.5, 286.0, 394.8], 3.466 % (docs/kpis.md §7 example 3)."""
    b = _example3_baseline()
    s = savings(b, _frame(EX3_REP_E, EX3_REP_P, T0 + timedelta(days=20)))
    assert s["expected"].to_list() == pytest.approx([3745, 3976, 3669], abs=0.6)
    assert s["avoided"].to_list() == pytest.approx([105.5, 180.6, 108.7], abs=0.05)
    assert s["cumulative_avoided"].to_list() == pytest.approx([105.5, 286.0, 394.8], abs=0.05)
    pct = percent_savings(s)
    assert pct == pytest.approx(3.466, abs=5e-4)
    assert (s["avoided"] == s["expected"] - s["actual"]).all()


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_ols_matches_statsmodels_on_random_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(15, 200))
    k = int(rng.integers(1, 4))
    x = rng.normal(size=(n, k)) * rng.uniform(1, 100, size=k) + rng.uniform(-50, 500, size=k)
    beta = rng.normal(size=k) * 5
    y = 1000 + x @ beta + rng.normal(scale=rng.uniform(1, 200), size=n)
    ours = ols(y, x)
    ref = sm.OLS(y, sm.add_constant(x)).fit()
    np.testing.assert_allclose(ours.params, ref.params, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(ours.std_errors, ref.bse, rtol=1e-7)
    np.testing.assert_allclose(ours.p_values, ref.pvalues, rtol=1e-6, atol=1e-300)
    assert ours.r2 == pytest.approx(ref.rsquared, rel=1e-10)
    assert ours.adj_r2 == pytest.approx(ref.rsquared_adj, rel=1e-10)
    assert ours.f_pvalue == pytest.approx(ref.f_pvalue, rel=1e-6, abs=1e-300)
    assert ours.f_stat == pytest.approx(ref.fvalue, rel=1e-8)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=6, max_size=40),
    st.floats(-100, 100),
    st.floats(-1e5, 1e5),
)
def test_ols_recovers_an_exact_line(xs: list[float], slope: float, intercept: float) -> None:
    x = np.asarray(xs)
    if np.ptp(x) < 1.0:
        return  # a (nearly) constant driver is rejected, tested separately
    y = intercept + slope * x
    fit = ols(y, x)
    assert fit.params[1] == pytest.approx(slope, rel=1e-6, abs=1e-6)
    assert fit.params[0] == pytest.approx(intercept, rel=1e-6, abs=1e-3)


def test_valid_model_passes_enpi_lite_with_no_warnings() -> None:
    b = _example3_baseline()
    assert b.valid
    assert b.warnings == ()
    assert b.f_pvalue < 0.10
    assert b.p_values[1] < 0.10


def test_model_with_a_useless_driver_fails_enpi_lite() -> None:
    rng = np.random.default_rng(7)
    e = list(3000 + rng.normal(scale=50, size=30))
    p = list(rng.uniform(100, 200, size=30))
    b = fit_baseline(_frame(e, p), target="e_kw", drivers=["p_tph"], site="s", asset="a", granularity="day")
    assert not b.valid
    assert any("F-test" in w for w in b.warnings)
    assert any("R²" in w for w in b.warnings)
    assert any("no driver has p < 0.1" in w for w in b.warnings)


def test_negative_slope_and_few_points_are_warned_about() -> None:
    e = [100.0, 90.0, 81.0, 70.0, 59.0, 50.0]
    p = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    b = fit_baseline(_frame(e, p), target="e_kw", drivers=["p_tph"], site="s", asset="a", granularity="day")
    assert b.coefficients[0] < 0
    assert any("negative slope for p_tph" in w for w in b.warnings)
    assert any("only 6 periods" in w for w in b.warnings)


def test_collinear_or_constant_drivers_are_rejected() -> None:
    f = _frame(EX3_E, EX3_P).with_columns(q_tph=pl.col("p_tph") * 2)
    with pytest.raises(MVError, match="collinear"):
        fit_baseline(f, target="e_kw", drivers=["p_tph", "q_tph"], site="s", asset="a", granularity="day")
    with pytest.raises(MVError, match="collinear"):
        ols([1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0])


def test_too_few_points_for_the_parameters_is_an_error() -> None:
    with pytest.raises(MVError, match="too few"):
        ols([1.0, 2.0], [1.0, 2.0])


def test_predict_needs_every_driver() -> None:
    b = _example3_baseline()
    assert b.predict({"p_tph": [190.0]})[0] == pytest.approx(3745.45, abs=0.01)
    with pytest.raises(MVError, match="missing"):
        b.predict({"other": [1.0]})


def test_partial_period_scales_expected_and_actual_of_an_energy_target() -> None:
    """Half a day: expected = (intercept + slope·P_full)·0.5 = intercept·0.5 + slope·P_half."""
    b = _example3_baseline()
    f = pl.DataFrame({"ts": [T0], "e_kw": [3640.0], "p_tph": [190.0], "fraction": [0.5]})
    s = savings(b, f)
    assert s["expected"][0] == pytest.approx(0.5 * (b.intercept + b.coefficients[0] * 190))
    assert s["actual"][0] == pytest.approx(1820.0)


def test_specific_kpi_target_is_not_scaled_by_period_fraction() -> None:
    f = _frame([20.0, 21.0, 19.5, 22.0, 23.0, 20.5, 21.5, 22.5, 24.0, 19.0, 20.0, 23.5], EX3_P).rename(
        {"e_kw": "specific_power_kwh_per_t", "p_tph": "blaine_cm2_per_g"}
    )
    b = fit_baseline(
        f,
        target="specific_power_kwh_per_t",
        drivers=["blaine_cm2_per_g"],
        site="s",
        asset="m",
        granularity="day",
    )
    assert b.target_kind == "mean"
    rep = pl.DataFrame(
        {"ts": [T0], "specific_power_kwh_per_t": [21.0], "blaine_cm2_per_g": [190.0], "fraction": [0.25]}
    )
    s = savings(b, rep)
    assert s["actual"][0] == 21.0
    assert s["expected"][0] == pytest.approx(float(b.predict({"blaine_cm2_per_g": [190.0]})[0]))


def test_reporting_drivers_outside_range_and_3sd_are_flagged() -> None:
    b = _example3_baseline()
    inside = _frame(EX3_REP_E, EX3_REP_P)
    assert reporting_warnings(b, inside) == []
    outside = _frame([9000.0, 9100.0], [400.0, 410.0])
    w = reporting_warnings(b, outside)
    assert any("outside the baseline range" in x and "3 SD" in x for x in w)
    assert any("2 of 2 reporting periods" in x for x in w)


def test_deviation_sign_is_positive_when_using_more_than_expected() -> None:
    assert deviation_pct(100.0, 110.0) == pytest.approx(10.0)
    assert deviation_pct(100.0, 95.0) == pytest.approx(-5.0)
    assert deviation_pct(0.0, 5.0) is None


@pytest.mark.parametrize(
    ("name", "unit", "expected"),
    [
        ("rawmill1.power_kw", None, Aggregation("integrate", "kWh")),
        ("clinker_tph", "t/h", Aggregation("integrate", "t")),
        ("heat_input_gj_per_h", "GJ/h", Aggregation("integrate", "GJ")),
        ("plant.incomer_kwh_total", None, Aggregation("counter", "kWh")),
        ("specific_power_kwh_per_t", "kWh/t", Aggregation("mean", "kWh/t")),
        ("cm1.fineness_blaine_cm2_per_g", None, Aggregation("mean", "cm²/g")),
        ("kiln1.ph_exit_temp_c", None, Aggregation("mean", "°C")),
        ("kiln1.speed", None, Aggregation("mean", "")),
    ],
)
def test_aggregation_rule_by_name_suffix(name: str, unit: str | None, expected: Aggregation) -> None:
    assert aggregation_for(name, unit) == expected
    assert expected.extensive == (expected.kind != "mean")


def test_savings_of_empty_frame_is_empty_with_schema() -> None:
    b = _example3_baseline()
    empty = pl.DataFrame(schema={"ts": pl.Datetime("us", "UTC"), "e_kw": pl.Float64, "p_tph": pl.Float64})
    s = savings(b, empty)
    assert_frame_equal(s, s.clear())
    assert s.columns == ["ts", "expected", "actual", "avoided", "cumulative_avoided", "fraction"]
