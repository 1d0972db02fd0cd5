"""Kiln heat balance and loss attribution (rules/heat_balance.py) against docs/kpis.md §10.

Hand values are written as docs/kpis.md §10 quotes them and compared at the precision quoted
(:func:`quoted`); a few are also pinned to more digits of the same arithmetic (rel 1e-9).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules import heat_balance as hb
from rules.constants import KJ_PER_KCAL

REF = hb.REFERENCE_COAL
#: docs/kpis.md §10 worked example: design 730 kcal/kg, exit 305 °C, O2 3.5 % dry, CO 0, clinker 150 °C
DESIGN = hb.LossDesign(730.0, 305.0, 3.5, 150.0, co_location="kiln_inlet")
DESIGN_PH = hb.LossDesign(730.0, 305.0, 3.5, 150.0)
#: ... actual 790 kcal/kg: exit 330 °C, O2 5.0 %, CO 0.3 % at the kiln inlet, clinker 210 °C
ACTUAL: dict[str, float] = {
    "shc_kcal_per_kg": 790.0,
    "t_exit": 330.0,
    "o2": 5.0,
    "co": 0.3,
    "t_clinker": 210.0,
}
AT_DESIGN: dict[str, float] = {"t_exit": 305.0, "o2": 3.5, "co": 0.0, "t_clinker": 150.0}
FACTORS = ("exit_gas_temp", "excess_air", "co", "clinker_temp")
#: A second and third fuel for mixes (petcoke-like, RDF-like; illustrative analyses)
PETCOKE = hb.gas_per_mj(85.0, 3.5, 1.5, 1.5, 5.0, 1.0, 33.0)
RDF = hb.gas_per_mj(45.0, 6.0, 30.0, 1.0, 0.3, 15.0, 16.0)


def quoted(x: Any, s: str) -> None:
    """``x`` rounds to the hand value ``s`` at the decimals ``s`` is written with."""
    decimals = len(s.split(".")[1]) if "." in s else 0
    assert f"{float(x):.{decimals}f}" == s, (float(x), s)


def one(split: hb.LossSplit, name: str) -> float:
    arr = getattr(split, name)
    assert arr is not None, name
    return float(arr[0])


def terms_sum(split: hb.LossSplit) -> npt.NDArray[np.float64]:
    total = split.unattributed.copy()
    for name in FACTORS:
        arr = getattr(split, name)
        if arr is not None:
            total = total + arr
    return total


def single_change(design: hb.LossDesign, **change: float) -> hb.LossSplit:
    """All four factors measured, at design except ``change``; measured SHC = design SHC."""
    state: dict[str, float] = {**AT_DESIGN, **change}
    return hb.attribute_losses(design, REF, design.shc_kcal_per_kg, **state)


# ------------------------------------------------------------------------------------ §10.2 flue gas
def test_reference_coal_stoichiometry() -> None:
    """docs/kpis.md §10 worked example (§10.2 coal): NCV 25.009 MJ/kg, air 6.5548 Nm³/kg = 0.2621 Nm³/MJ,
    products CO2 1.1999, H2O 0.5443, N2 5.1912 Nm³/kg."""
    c, h, o, n, s, ash, w = hb.REFERENCE_COAL_ANALYSIS
    quoted(hb.hhv_from_analysis(c, h, o, n, s, ash), "26.078")  # docs/kpis.md §10 worked example
    quoted(hb.REFERENCE_COAL_NCV_MJ_PER_KG, "25.009")  # docs/kpis.md §10 worked example
    ncv = hb.REFERENCE_COAL_NCV_MJ_PER_KG
    quoted(REF.air * ncv, "6.5548")  # docs/kpis.md §10 worked example
    quoted(REF.air, "0.2621")  # docs/kpis.md §10 worked example
    quoted(REF.co2 * ncv, "1.1999")  # docs/kpis.md §10 worked example
    quoted(REF.h2o * ncv, "0.5443")  # docs/kpis.md §10 worked example
    quoted(REF.n2 * ncv, "5.1912")  # docs/kpis.md §10 worked example
    assert hb.ncv_from_analysis(c, h, o, n, s, ash, w) == ncv


def test_calcination_and_meal_water_gas() -> None:
    """docs/kpis.md §10 worked example: calcination CO2 0.525 kg/kg = 0.2674 Nm³/kg; meal water 0.0124 Nm³."""
    quoted(hb.CALCINATION_CO2_NM3_PER_KG, "0.2674")  # docs/kpis.md §10 worked example
    quoted(
        hb.RAW_MEAL_WATER_KG_PER_KG / 18.015 * hb.NM3_PER_KMOL, "0.0124"
    )  # docs/kpis.md §10 worked example


def test_flue_gas_at_design() -> None:
    """docs/kpis.md §10 worked example: 730 kcal/kg, 3.5 % O2 dry: fuel 0.12221 kg/kg, excess air 0.2103,
    gas 1.2587 dry / 1.3377 wet Nm³/kg clinker; water 5.90 % of the wet gas."""
    quoted(730.0 * KJ_PER_KCAL / 1000.0 / hb.REFERENCE_COAL_NCV_MJ_PER_KG, "0.12221")  # §10 worked example
    fg = hb.flue_gas(730.0, 3.5, REF)
    quoted(fg.excess_air, "0.2103")  # docs/kpis.md §10 worked example
    quoted(fg.dry, "1.2587")  # docs/kpis.md §10 worked example
    quoted(fg.wet, "1.3377")  # docs/kpis.md §10 worked example
    quoted(100.0 * fg.h2o / fg.wet, "5.90")  # docs/kpis.md §10 worked example
    assert float(100.0 * fg.o2 / fg.dry) == pytest.approx(3.5, rel=1e-12)
    assert float(fg.co2 + fg.n2 + fg.o2) == pytest.approx(float(fg.dry), rel=1e-12)


def test_flue_gas_at_actual() -> None:
    """docs/kpis.md §10 worked example, actual state 790 kcal/kg and 5.0 % O2: fuel 0.13225 kg/kg,
    gas 1.4614 dry / 1.5458 wet Nm³/kg."""
    quoted(790.0 * KJ_PER_KCAL / 1000.0 / hb.REFERENCE_COAL_NCV_MJ_PER_KG, "0.13225")  # §10 worked example
    fg = hb.flue_gas(790.0, 5.0, REF)
    quoted(fg.dry, "1.4614")  # docs/kpis.md §10 worked example
    quoted(fg.wet, "1.5458")  # docs/kpis.md §10 worked example


def test_one_percent_o2_raises_wet_gas_by_5_72_pct() -> None:
    """docs/kpis.md §10 worked example: +1 %-point O2 (3.5 → 4.5 % dry) at 730 kcal/kg: wet gas +5.72 %."""
    a, b = hb.flue_gas(730.0, 3.5, REF), hb.flue_gas(730.0, 4.5, REF)
    quoted(100.0 * (b.wet / a.wet - 1.0), "5.72")  # docs/kpis.md §10 worked example


def test_wet_o2_conversion_is_exact() -> None:
    """The wet O2 of a state, fed back on the wet basis, gives the same excess air (no fixed 6 %)."""
    shc = np.array([650.0, 730.0, 900.0])
    dry = hb.flue_gas(shc, np.array([1.0, 3.5, 9.0]), PETCOKE)
    o2_wet = 100.0 * dry.o2 / dry.wet
    wet = hb.flue_gas(shc, o2_wet, PETCOKE, o2_basis="wet")
    np.testing.assert_allclose(wet.excess_air, dry.excess_air, rtol=1e-12)
    assert not np.allclose(o2_wet, np.array([1.0, 3.5, 9.0]) * 0.94, rtol=1e-3)


def test_flue_gas_o2_out_of_range_is_nan() -> None:
    fg = hb.flue_gas(np.array([730.0, 730.0, 730.0]), np.array([20.95, -0.1, 25.0]), REF)
    assert np.isnan(fg.dry).all() and np.isnan(fg.wet).all() and np.isnan(fg.co2).all()


def test_gas_per_mj_rejects_bad_analyses() -> None:
    with pytest.raises(ValueError, match="more than 100"):
        hb.gas_per_mj(80.0, 10.0, 10.0, 1.0, 1.0, 5.0, 25.0)
    with pytest.raises(ValueError, match="NCV"):
        hb.gas_per_mj(64.0, 4.0, 7.0, 1.2, 0.8, 8.0, 0.0)
    with pytest.raises(ValueError, match="mass %"):
        hb.gas_per_mj(-1.0, 4.0, 7.0, 1.2, 0.8, 8.0, 25.0)
    with pytest.raises(ValueError, match="O2 demand"):
        hb.gas_per_mj(0.0, 0.0, 50.0, 0.0, 0.0, 50.0, 1.0)


# ------------------------------------------------------------------------------------ §10.3 gas cp
def test_mean_cp_table_interpolation_and_extrapolation() -> None:
    """docs/kpis.md §10.3 table: exact at its points, linear between, end segments extrapolated."""
    for sp in ("N2", "O2", "CO2", "H2O", "air"):
        np.testing.assert_allclose(hb.mean_cp(sp, hb.GAS_CP_TEMPS_C), hb.GAS_MEAN_CP[sp], rtol=1e-14)
    assert float(hb.mean_cp("CO2", 325.0)) == pytest.approx((1.8672 + 1.9020) / 2, rel=1e-14)
    # below 20 °C: the 20-100 °C line; above 1000 °C: the 500-1000 °C line
    assert float(hb.mean_cp("N2", 0.0)) == pytest.approx(1.2954 - 20 * (1.2997 - 1.2954) / 80, rel=1e-14)
    assert float(hb.mean_cp("H2O", 1100.0)) == pytest.approx(
        1.7223 + 100 * (1.7223 - 1.5889) / 500, rel=1e-14
    )
    assert float(hb.sensible_heat("N2", 20.0, 20.0)) == 0.0


# ------------------------------------------------------------------------------------ §10.4 direct losses
def test_direct_losses_at_design_and_actual() -> None:
    """docs/kpis.md §10 worked example: design L_gas 137.21, L_cl 24.84 → B 567.95 kcal/kg; actual
    L_gas 170.97, L_CO 3.60 (kiln inlet, upper bound), L_cl 36.30."""
    l_gas_d = float(hb.exit_gas_loss(730.0, 305.0, 3.5, REF))
    l_cl_d = float(hb.clinker_loss(150.0))
    quoted(l_gas_d, "137.21")  # docs/kpis.md §10 worked example
    quoted(l_cl_d, "24.84")  # docs/kpis.md §10 worked example
    quoted(730.0 - l_gas_d - l_cl_d, "567.95")  # docs/kpis.md §10 worked example: B
    assert 730.0 - l_gas_d - l_cl_d == pytest.approx(567.947482798895, rel=1e-9)
    assert (730.0 - l_gas_d - l_cl_d) * KJ_PER_KCAL == pytest.approx(2377.9, abs=0.05)  # kJ/kg
    quoted(hb.exit_gas_loss(790.0, 330.0, 5.0, REF), "170.97")  # docs/kpis.md §10 worked example
    quoted(hb.co_loss_kiln_inlet(790.0, 0.3, REF, DESIGN), "3.60")  # docs/kpis.md §10 worked example
    quoted(hb.clinker_loss(210.0), "36.30")  # docs/kpis.md §10 worked example


def test_direct_causes_at_actual_fuel() -> None:
    """docs/kpis.md §10 worked example, direct column (at actual fuel, no feedback): exit T 14.49,
    excess air 11.32, CO 3.60, clinker 11.46 kcal/kg."""
    egl = hb.exit_gas_loss
    quoted(egl(790.0, 330.0, 5.0, REF) - egl(790.0, 305.0, 5.0, REF), "14.49")  # §10 worked example
    quoted(egl(790.0, 305.0, 5.0, REF) - egl(790.0, 305.0, 3.5, REF), "11.32")  # §10 worked example
    quoted(hb.clinker_loss(210.0) - hb.clinker_loss(150.0), "11.46")  # §10 worked example


def feedback_b() -> float:
    """Marginal exit-gas loss per unit of fuel heat at the design point (losses are linear in SHC)."""
    egl = hb.exit_gas_loss
    return float(egl(1000.0, 305.0, 3.5, REF) - egl(0.0, 305.0, 3.5, REF)) / 1000.0


def test_feedback_multiplier() -> None:
    """docs/kpis.md §10 worked example: b = 13.25 % of the marginal fuel energy → multiplier 1.1527."""
    quoted(100.0 * feedback_b(), "13.25")  # docs/kpis.md §10 worked example
    quoted(1.0 / (1.0 - feedback_b()), "1.1527")  # docs/kpis.md §10 worked example


def test_sensitivities_direct_and_with_feedback() -> None:
    """docs/kpis.md §10 worked example (§10.4): direct / × the design feedback multiplier: +10 °C exit
    5.08 / 5.86; +1 %-pt O2 6.90 / 7.95; 1 % CO kiln inlet 11.13 / 12.83, PH exit 37.96 / 43.75;
    +10 °C clinker 1.91 / 2.20 kcal/kg."""
    egl, mult = hb.exit_gas_loss, 1.0 / (1.0 - feedback_b())
    direct = {
        "exit": float(egl(730.0, 315.0, 3.5, REF) - egl(730.0, 305.0, 3.5, REF)),
        "o2": float(egl(730.0, 305.0, 4.5, REF) - egl(730.0, 305.0, 3.5, REF)),
        "co_kiln": float(hb.co_loss_kiln_inlet(730.0, 1.0, REF, DESIGN)),
        "co_ph": float(hb.co_loss_ph_exit(730.0, 1.0, 3.5, REF)),
        "clinker": float(hb.clinker_loss(160.0) - hb.clinker_loss(150.0)),
    }
    want = {  # docs/kpis.md §10 worked example
        "exit": ("5.08", "5.86"),
        "o2": ("6.90", "7.95"),
        "co_kiln": ("11.13", "12.83"),
        "co_ph": ("37.96", "43.75"),
        "clinker": ("1.91", "2.20"),
    }
    for k, (d, f) in want.items():
        quoted(direct[k], d)
        quoted(direct[k] * mult, f)


def test_single_factor_shapley_is_the_exact_one_factor_change() -> None:
    """docs/kpis.md §10 worked example (§10.4): with one factor changed, its Shapley value is the exact
    model change: +10 °C exit 5.892, +1 %-pt O2 8.014, +10 °C clinker 2.203, 1 % CO kiln inlet 13.04,
    at the PH exit 45.80 kcal/kg. Larger than direct × 1.1527 (5.86, 7.95, 12.83, 43.75) where the
    change itself raises the feedback (hotter or more gas per unit of fuel, CO in the extra gas)."""
    cases = [
        (DESIGN_PH, {"t_exit": 315.0}, "exit_gas_temp", "5.892"),
        (DESIGN_PH, {"o2": 4.5}, "excess_air", "8.014"),
        (DESIGN_PH, {"t_clinker": 160.0}, "clinker_temp", "2.203"),
        (DESIGN, {"co": 1.0}, "co", "13.04"),
        (DESIGN_PH, {"co": 1.0}, "co", "45.80"),
    ]
    for design, change, name, want in cases:
        split = single_change(design, **change)
        quoted(one(split, name), want)  # docs/kpis.md §10 worked example
        assert one(split, name) == pytest.approx(float(split.modelled_shc[0]) - 730.0, rel=1e-12)
        others = [one(split, f) for f in FACTORS if f != name]
        assert max(abs(v) for v in others) < 1e-12
    # the clinker loss does not depend on the fuel: exactly direct / (1 − b)
    assert one(single_change(DESIGN_PH, t_clinker=160.0), "clinker_temp") == pytest.approx(
        8.0 / KJ_PER_KCAL / (1.0 - feedback_b()), rel=1e-12
    )


# ------------------------------------------------------------------------------------ §10.5 attribution
def test_worked_example_attribution() -> None:
    """docs/kpis.md §10 worked example (§10.5): Shapley 15.84 (exit T) / 13.38 (excess air) / 4.028 (CO,
    kiln inlet, upper bound) / 13.43 (clinker); explained 46.68 of 60 → model 776.68; remainder 13.32."""
    split = hb.attribute_losses(DESIGN, REF, **ACTUAL)
    want = {"exit_gas_temp": "15.84", "excess_air": "13.38", "co": "4.028", "clinker_temp": "13.43"}
    for name, s in want.items():
        quoted(one(split, name), s)  # docs/kpis.md §10 worked example
    quoted(split.modelled_shc[0] - 730.0, "46.68")  # docs/kpis.md §10 worked example
    quoted(split.modelled_shc[0], "776.68")  # docs/kpis.md §10 worked example
    quoted(split.unattributed[0], "13.32")  # docs/kpis.md §10 worked example
    # the same arithmetic to more digits (docs/kpis.md §10 worked example)
    precise = {
        "exit_gas_temp": 15.837565162947756,
        "excess_air": 13.376350411432828,
        "co": 4.027584509266172,
        "clinker_temp": 13.433682417178556,
        "unattributed": 13.324817499174717,
    }
    for name, v in precise.items():
        assert one(split, name) == pytest.approx(v, rel=1e-9)
    assert terms_sum(split)[0] == pytest.approx(60.0, abs=1e-12)
    assert not split.low_confidence[0] and split.good[0]


def test_design_state_reproduces_design_shc() -> None:
    """docs/kpis.md §10 worked example: the model reproduces 730.000 kcal/kg at design; every term 0."""
    for design in (DESIGN, DESIGN_PH, hb.LossDesign(730.0, 305.0, 3.3, 150.0, o2_basis="wet", co_pct=0.05)):
        state = {**AT_DESIGN, "o2": design.ph_exit_o2_pct, "co": design.co_pct}
        split = hb.attribute_losses(design, (REF.co2, REF.h2o, REF.n2), 730.0, **state)
        quoted(split.modelled_shc[0], "730.000")  # docs/kpis.md §10 worked example
        for name in (*FACTORS, "unattributed"):
            assert one(split, name) == 0.0
        assert not split.low_confidence[0]


def test_wet_basis_gives_the_same_split_as_dry() -> None:
    """One physical state, analysers on the wet basis: O2 and PH-exit CO converted with the state's own
    water (design at design SHC, actual at measured SHC) → the same split as on the dry basis."""
    rng = np.random.default_rng(7)
    n = 200
    shc = rng.uniform(650.0, 900.0, n)
    t, o2d, cod, tcl = (
        rng.uniform(250, 400, n),
        rng.uniform(1, 10, n),
        rng.uniform(0, 1, n),
        rng.uniform(80, 300, n),
    )
    gas = hb.mix_gas(rng.uniform(0.0, 1.0, (n, 3)), [REF, PETCOKE, RDF])
    for location in ("ph_exit", "kiln_inlet"):
        dry_design = hb.LossDesign(730.0, 305.0, 3.5, 150.0, co_pct=0.02, co_location=location)
        fg_d = hb.flue_gas(730.0, 3.5, gas)
        fg_a = hb.flue_gas(shc, o2d, gas)
        o2w_d, o2w_a = 100.0 * fg_d.o2 / fg_d.wet, 100.0 * fg_a.o2 / fg_a.wet
        # PH-exit CO is read on the O2 analyser's basis; kiln-inlet CO and O2 are always dry
        co_w = cod * fg_a.dry / fg_a.wet if location == "ph_exit" else cod
        dry = hb.attribute_losses(dry_design, gas, shc, t, o2d, cod, tcl)
        for i in range(n):  # the design wet O2 differs per row (each row's fuel water)
            co_des = 0.02 * float(fg_d.dry[i] / fg_d.wet[i]) if location == "ph_exit" else 0.02
            wet_design = hb.LossDesign(
                730.0, 305.0, float(o2w_d[i]), 150.0, co_pct=co_des, o2_basis="wet", co_location=location
            )
            row = (gas.co2[i], gas.h2o[i], gas.n2[i])
            wet = hb.attribute_losses(wet_design, row, shc[i], t[i], o2w_a[i], co_w[i], tcl[i])
            for name in (*FACTORS, "unattributed"):
                assert one(wet, name) == pytest.approx(float(getattr(dry, name)[i]), rel=1e-9, abs=1e-9)


def test_absent_factor_lands_in_unattributed() -> None:
    """Clinker temperature not measured: no clinker term, its effect (held at design) in unattributed;
    the other three are the Shapley values of the 3-factor game; the sum still equals the deviation."""
    split = hb.attribute_losses(DESIGN, REF, 790.0, 330.0, 5.0, 0.3, None)
    assert split.clinker_temp is None
    held = hb.attribute_losses(DESIGN, REF, 790.0, 330.0, 5.0, 0.3, 150.0)
    assert split.modelled_shc[0] == pytest.approx(float(held.modelled_shc[0]), rel=1e-12)
    assert terms_sum(split)[0] == pytest.approx(60.0, abs=1e-12)
    full = hb.attribute_losses(DESIGN, REF, **ACTUAL)
    assert one(split, "unattributed") > one(full, "unattributed") + 10.0  # 13.32 + about 13 of clinker
    # with all signals absent, everything is unattributed
    none = hb.attribute_losses(DESIGN, REF, 790.0, None, None, None, None)
    assert all(getattr(none, f) is None for f in FACTORS)
    assert one(none, "unattributed") == 60.0 and float(none.modelled_shc[0]) == 730.0
    assert none.low_confidence[0]


def test_exit_temperature_without_o2_still_attributed() -> None:
    """O2 missing: the excess-air share is not attributable, the exit-T term still is."""
    split = hb.attribute_losses(DESIGN_PH, REF, 790.0, 330.0, None, None, 210.0)
    assert split.excess_air is None and split.co is None
    assert one(split, "exit_gas_temp") > 0.0 and terms_sum(split)[0] == pytest.approx(60.0, abs=1e-12)


def test_bad_inputs_make_the_row_nan() -> None:
    """NaN or out-of-range input in a row → that row's whole split NaN ("inputs not good"); other rows
    are unaffected."""
    base = {"shc_kcal_per_kg": 790.0, "t_exit": 330.0, "o2": 5.0, "co": 0.3, "t_clinker": 210.0}
    bad_values = {
        "shc_kcal_per_kg": [np.nan, 0.0, -5.0, np.inf],
        "t_exit": [np.nan, 5000.0, -100.0],
        "o2": [np.nan, 20.95, 21.0, -0.5],
        "co": [np.nan, -0.1, 100.0],
        "t_clinker": [np.nan, np.inf],
    }
    good = hb.attribute_losses(DESIGN, REF, **ACTUAL)
    for key, bads in bad_values.items():
        arrays = {k: np.full(len(bads) + 1, v) for k, v in base.items()}
        arrays[key][1:] = bads
        split = hb.attribute_losses(DESIGN, REF, **arrays)
        assert split.good.tolist() == [True] + [False] * len(bads), key
        for name in (*FACTORS, "unattributed", "modelled_shc"):
            arr = getattr(split, name)
            assert np.isnan(arr[1:]).all(), (key, name)
            assert arr[0] == pytest.approx(float(getattr(good, name)[0]), rel=1e-12)
        assert not split.low_confidence[1:].any()
    # kiln-inlet O2 belongs to the CO factor: bad → NaN row; out of range too
    split = hb.attribute_losses(DESIGN, REF, **ACTUAL, kiln_inlet_o2=np.array([np.nan, 21.0, 2.0]))
    assert split.good.tolist() == [False, False, True]
    assert split.co is not None and good.co is not None
    assert np.isnan(split.co[:2]).all()
    assert float(split.co[2]) == pytest.approx(float(good.co[0]), rel=1e-12)
    # a NaN fuel share → NaN gas → NaN row
    gas = hb.mix_gas(np.array([[1.0, 0.0], [np.nan, 1.0]]), [REF, PETCOKE])
    split = hb.attribute_losses(DESIGN, gas, **ACTUAL)
    assert split.good.tolist() == [True, False]


def test_kiln_inlet_o2_refines_the_co_bound() -> None:
    """Kiln-inlet CO upper bound: a measured kiln-inlet O2 replaces the 2 % assumption (more O2, more
    gas, larger bound); it is ignored when CO is measured at the preheater exit."""
    two = hb.attribute_losses(DESIGN, REF, **ACTUAL, kiln_inlet_o2=2.0)
    base = hb.attribute_losses(DESIGN, REF, **ACTUAL)
    assert one(two, "co") == pytest.approx(one(base, "co"), rel=1e-12)
    four = hb.attribute_losses(DESIGN, REF, **ACTUAL, kiln_inlet_o2=4.0)
    assert one(four, "co") > one(base, "co")
    ph = hb.attribute_losses(DESIGN_PH, REF, **ACTUAL)
    ph_nan = hb.attribute_losses(DESIGN_PH, REF, **ACTUAL, kiln_inlet_o2=np.nan)
    assert one(ph_nan, "co") == one(ph, "co") and ph_nan.good[0]


def test_low_confidence() -> None:
    """docs/kpis.md §10.5 step 5: |remainder| > 50 % of |deviation| → low confidence; the worked example
    (13.32 of 60) is not; a model that explains more than the deviation, or the opposite sign, is."""
    shc = np.array([790.0, 750.0, 700.0, 730.0])
    split = hb.attribute_losses(DESIGN, REF, shc, 330.0, 5.0, 0.3, 210.0)
    assert split.low_confidence.tolist() == [False, True, True, True]
    assert (np.abs(split.unattributed[1:]) > 0.5 * np.abs(shc[1:] - 730.0)).all()


def test_vectorised_equals_row_by_row() -> None:
    rng = np.random.default_rng(11)
    n = 60
    shc = rng.uniform(650.0, 900.0, n)
    sig = {
        "t_exit": rng.uniform(250, 400, n),
        "o2": rng.uniform(1, 10, n),
        "co": rng.uniform(0, 1, n),
        "t_clinker": rng.uniform(80, 300, n),
    }
    sig["o2"][5] = np.nan
    gas = hb.mix_gas(rng.uniform(0.0, 1.0, (n, 3)), [REF, PETCOKE, RDF])
    for design in (DESIGN, DESIGN_PH, hb.LossDesign(730.0, 305.0, 3.3, 150.0, o2_basis="wet")):
        split = hb.attribute_losses(design, gas, shc, **sig)
        for i in range(n):
            row = (gas.co2[i], gas.h2o[i], gas.n2[i])
            single = hb.attribute_losses(design, row, shc[i], **{k: v[i] for k, v in sig.items()})
            for name in (*FACTORS, "unattributed", "modelled_shc"):
                np.testing.assert_allclose(getattr(single, name), getattr(split, name)[i : i + 1], rtol=1e-12)
            assert single.low_confidence[0] == split.low_confidence[i]


def test_chunked_rows_equal_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Long inputs are processed in chunks of rows (cache-sized); chunk borders change nothing, with
    per-row gas or one fuel, scalar signals broadcast, and bad rows anywhere."""
    rng = np.random.default_rng(5)
    n = 53
    shc = rng.uniform(650.0, 900.0, n)
    o2 = rng.uniform(1, 10, n)
    o2[[0, 6, 7, 52]] = np.nan
    gas = hb.mix_gas(rng.uniform(0.0, 1.0, (n, 2)), [REF, RDF])
    for g in (gas, REF):
        for design in (DESIGN, hb.LossDesign(730.0, 305.0, 3.3, 150.0, o2_basis="wet")):
            args = (design, g, shc, rng.uniform(250, 400, n), o2, 0.1, rng.uniform(80, 300, n))
            whole = hb.attribute_losses(*args)
            monkeypatch.setattr(hb, "_CHUNK_ROWS", 7)
            chunked = hb.attribute_losses(*args)
            monkeypatch.undo()
            for name in (*FACTORS, "unattributed", "modelled_shc"):  # BLAS may round differently
                np.testing.assert_allclose(getattr(chunked, name), getattr(whole, name), rtol=1e-13)
            for name in ("good", "low_confidence"):
                np.testing.assert_array_equal(getattr(chunked, name), getattr(whole, name))
            assert whole.good.sum() == n - 4


def shapley_by_orders(
    design: hb.LossDesign,
    gas: hb.GasArrays,
    shc: npt.NDArray[np.float64],
    sig: dict[str, npt.NDArray[np.float64]],
) -> dict[str, npt.NDArray[np.float64]]:
    """Shapley values as the mean over all 24 orders of switching factors from design to actual, each
    state's model SHC taken from attribute_losses with the other factors at their design values."""
    names = ("t_exit", "o2", "co", "t_clinker")
    at_design = {"t_exit": design.ph_exit_temp_c, "o2": design.ph_exit_o2_pct, "co": design.co_pct}
    at_design["t_clinker"] = design.clinker_temp_c

    def v(subset: frozenset[str]) -> npt.NDArray[np.float64]:
        state = {k: sig[k] if k in subset else np.full_like(shc, at_design[k]) for k in names}
        return hb.attribute_losses(design, gas, shc, **state).modelled_shc

    cache: dict[frozenset[str], npt.NDArray[np.float64]] = {}
    out = {k: np.zeros_like(shc) for k in names}
    orders = list(itertools.permutations(names))
    for order in orders:
        s: frozenset[str] = frozenset()
        for k in order:
            before = cache.setdefault(s, v(s))
            s = s | {k}
            out[k] += (cache.setdefault(s, v(s)) - before) / len(orders)
    return out


def test_shapley_matches_the_average_over_orders() -> None:
    """The subset-weight Shapley equals the mean over all 24 factor orders (order independence)."""
    rng = np.random.default_rng(3)
    n = 100
    shc = rng.uniform(650.0, 900.0, n)
    sig = {
        "t_exit": rng.uniform(250, 400, n),
        "o2": rng.uniform(1, 10, n),
        "co": rng.uniform(0, 1, n),
        "t_clinker": rng.uniform(80, 300, n),
    }
    gas = hb.mix_gas(rng.uniform(0.0, 1.0, (n, 2)), [REF, RDF])
    for design in (DESIGN, DESIGN_PH):
        split = hb.attribute_losses(design, gas, shc, **sig)
        ref = shapley_by_orders(design, gas, shc, sig)
        for name, key in zip(FACTORS, ("t_exit", "o2", "co", "t_clinker"), strict=True):
            np.testing.assert_allclose(getattr(split, name), ref[key], rtol=1e-9, atol=1e-9)


plausible = st.fixed_dictionaries(
    {
        "shc": st.floats(650.0, 900.0),
        "t_exit": st.floats(250.0, 400.0),
        "o2": st.floats(1.0, 10.0),
        "co": st.floats(0.0, 1.0),
        "t_clinker": st.floats(80.0, 300.0),
        "coal_share": st.floats(0.0, 1.0),
        "present": st.lists(st.booleans(), min_size=4, max_size=4),
        "location": st.sampled_from(["ph_exit", "kiln_inlet"]),
        "basis": st.sampled_from(["dry", "wet"]),
    }
)


@settings(max_examples=300, deadline=None)
@given(plausible)
def test_terms_always_sum_to_the_deviation(state: dict[str, Any]) -> None:
    """Property: for any plausible state, whichever factors are measured, exit T + excess air + CO +
    clinker + unattributed = SHC − design SHC (relative 1e-9)."""
    design = hb.LossDesign(730.0, 305.0, 3.5, 150.0, o2_basis=state["basis"], co_location=state["location"])
    gas = hb.mix_gas(np.array([[state["coal_share"], 1.0 - state["coal_share"] + 1e-3]]), [REF, RDF])
    values = [state[k] for k in ("t_exit", "o2", "co", "t_clinker")]
    args = [v if p else None for v, p in zip(values, state["present"], strict=True)]
    split = hb.attribute_losses(design, gas, state["shc"], *args)
    assert split.good[0]
    deviation = state["shc"] - 730.0
    assert float(terms_sum(split)[0]) == pytest.approx(deviation, rel=1e-9, abs=1e-9 * 730.0)
    assert float(split.modelled_shc[0] + split.unattributed[0]) == pytest.approx(state["shc"], rel=1e-12)
    for name, p in zip(FACTORS, state["present"], strict=True):
        assert (getattr(split, name) is None) != p
        if p:
            assert math.isfinite(one(split, name))


# ------------------------------------------------------------------------------------ fuel mix
def test_mix_gas() -> None:
    """Heat-weighted per row; rows normalised by their total (GJ/h or shares alike); a NaN or negative
    entry, or a zero total, gives NaN."""
    shares = np.array([[1.0, 0.0], [100.0, 100.0], [0.3, 0.7], [np.nan, 1.0], [-1.0, 2.0], [0.0, 0.0]])
    mix = hb.mix_gas(shares, [REF, PETCOKE])
    assert mix.co2[0] == pytest.approx(REF.co2, rel=1e-14)
    assert mix.n2[1] == pytest.approx((REF.n2 + PETCOKE.n2) / 2, rel=1e-14)
    assert mix.h2o[2] == pytest.approx(0.3 * REF.h2o + 0.7 * PETCOKE.h2o, rel=1e-14)
    assert np.isnan(mix.co2[3:]).all() and np.isnan(mix.h2o[3:]).all()
    with pytest.raises(ValueError, match="rows x 2"):
        hb.mix_gas(np.array([1.0, 0.0]), [REF, PETCOKE])


def test_alternative_fuels_differ_from_coal_per_mj() -> None:
    """Per MJ, a wet biomass-rich fuel brings much more water than coal: why the lab analysis matters."""
    assert RDF.h2o > 2 * REF.h2o
    assert abs(PETCOKE.air / REF.air - 1.0) < 0.1


def test_loss_design_validation() -> None:
    with pytest.raises(ValueError, match="ph_exit_o2_pct"):
        hb.LossDesign(730.0, 305.0, 20.95, 150.0)
    with pytest.raises(ValueError, match="o2_basis"):
        hb.LossDesign(730.0, 305.0, 3.5, 150.0, o2_basis="moist")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shc_kcal_per_kg"):
        hb.LossDesign(math.nan, 305.0, 3.5, 150.0)
    with pytest.raises(ValueError, match="kiln_burner_fuel_share"):
        hb.LossDesign(730.0, 305.0, 3.5, 150.0, kiln_burner_fuel_share=0.0)
