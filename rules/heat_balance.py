"""Kiln heat balance and attribution of a specific-heat deviation to its causes (docs/kpis.md §10).

The question the plant asks is "SHC is 60 kcal/kg above target: why?". This module answers it from
the signals a kiln usually has: preheater exit temperature and O2, CO (preheater exit or kiln
inlet) and clinker temperature after the cooler. It is pure NumPy, vectorised over rows (one row per
window and kiln), so the KPI pipeline calls it once per evaluation; NaN in an input means "no good
value" and makes that row's breakdown NaN.

The model (docs/kpis.md §10.5): every loss that depends on a measured signal is linear in the fuel
heat per kg clinker q (more fuel, more flue gas), L = a + b·q; everything not measured (heat of
formation, shell, cooler air, dust, ...) is one lump B, back-calculated from the design state and
held constant. The energy balance q = B + Σ(a + b·q) then has the closed form q = (B + Σa)/(1 − Σb),
which includes the fuel feedback (extra fuel makes extra gas that also leaves hot). A deviation from
design is split by Shapley values over the measured factors (exact sum, independent of the order in
which factors are "switched" from design to actual); what the model does not reproduce is
``unattributed``.

Internal unit: kJ per kg clinker; inputs and outputs in kcal/kg, %, °C like the KPIs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from math import factorial
from typing import Final, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from rules.constants import CALCINATION_CO2_KG_PER_T, KJ_PER_KCAL

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Species = Literal["N2", "O2", "CO2", "H2O", "air"]
O2Basis = Literal["dry", "wet"]
CoLocation = Literal["ph_exit", "kiln_inlet"]

# ------------------------------------------------------------------------------------ constants
#: Molar volume of an ideal gas at 0 °C and 101.325 kPa, Nm³/kmol (docs/kpis.md §10.2).
NM3_PER_KMOL: Final = 22.414
#: O2 volume fraction of dry air; the rest (0.7905) is counted as N2, argon included (docs/kpis.md §10.2).
AIR_O2_FRACTION: Final = 0.2095
AIR_N2_FRACTION: Final = 1.0 - AIR_O2_FRACTION
#: Heating value of CO (CO + ½O2 → CO2), kJ/Nm³: 283.0 MJ/kmol / 22.414 = 12,626; 12,625 is the value
#: the §10 worked example uses (the Chinese heat-balance formulas round it to 12,630) (docs/kpis.md §10.3).
CO_HEATING_VALUE_KJ_PER_NM3: Final = 12_625.0
#: Mean specific heat of clinker between ambient and 150-250 °C, kJ/(kg·K); [U], range 0.78-0.84,
#: hence overridable per kiln (:attr:`LossDesign.clinker_cp_kj_per_kg_k`) (docs/kpis.md §10.3).
CLINKER_CP_KJ_PER_KG_K: Final = 0.80
#: Water evaporated from the raw meal, kg per kg clinker; [U] default, overridable (docs/kpis.md §10.2).
RAW_MEAL_WATER_KG_PER_KG: Final = 0.010
#: Calcination CO2, kg per kg clinker (docs/kpis.md §4 default 525 kg/t).
CALCINATION_CO2_KG_PER_KG: Final = CALCINATION_CO2_KG_PER_T / 1000.0
#: ... as gas: 0.525 / 44.01 x 22.414 = 0.2674 Nm³ per kg clinker (docs/kpis.md §10.2).
CALCINATION_CO2_NM3_PER_KG: Final = CALCINATION_CO2_KG_PER_KG / 44.01 * NM3_PER_KMOL
#: Latent heat of water at 25 °C, MJ/kg, and kg water formed per kg hydrogen (18.015 / 2.016):
#: NCV = HHV − 2.442·(8.936·H + W) (docs/kpis.md §10.2).
LATENT_HEAT_WATER_MJ_PER_KG: Final = 2.442
WATER_PER_HYDROGEN: Final = 8.936
#: Molar masses, kg/kmol, as the §10.2 stoichiometry uses them (H per O2 demand: 2 x 2.016 = 4.032).
_M_C, _M_H2, _M_O2, _M_N2, _M_S, _M_H2O = 12.011, 2.016, 31.998, 28.013, 32.06, 18.015

#: Temperatures of the mean-cp table, °C (docs/kpis.md §10.3, computed with Cantera / GRI-Mech 3.0).
GAS_CP_TEMPS_C: Final = (20.0, 100.0, 200.0, 300.0, 350.0, 400.0, 500.0, 1000.0)
#: Mean specific heat between 0 °C and t, kJ/(Nm³·K), per gas and temperature of GAS_CP_TEMPS_C.
GAS_MEAN_CP: Final[dict[str, tuple[float, ...]]] = {
    "N2": (1.2954, 1.2997, 1.3054, 1.3124, 1.3167, 1.3214, 1.3323, 1.3974),
    "O2": (1.3075, 1.3180, 1.3358, 1.3563, 1.3669, 1.3775, 1.3980, 1.4773),
    "CO2": (1.6264, 1.7040, 1.7908, 1.8672, 1.9020, 1.9346, 1.9941, 2.2095),
    "H2O": (1.4956, 1.5051, 1.5217, 1.5419, 1.5530, 1.5646, 1.5889, 1.7223),
    "air": (1.2979, 1.3035, 1.3118, 1.3216, 1.3272, 1.3331, 1.3461, 1.4141),
}
#: Gas temperatures accepted by the model, °C. Outside the table (20-1000 °C) the end segments are
#: extrapolated linearly: mildly below 20 °C (a winter ambient) or above 1000 °C is fine; beyond
#: these limits a "temperature" is a sensor fault and the row's breakdown is NaN.
GAS_TEMP_MIN_C: Final = -50.0
GAS_TEMP_MAX_C: Final = 1200.0
#: Marginal loss per unit of fuel heat (Σb) at or above which the model is meaningless (the fuel's
#: own gas would carry away nearly all its heat): such a row's breakdown is NaN. Normal kilns: 0.1-0.3.
MAX_FEEDBACK: Final = 0.9
#: A breakdown is tagged low confidence when |unattributed| exceeds this share of |deviation|
#: (docs/kpis.md §10.5 step 5, [U]).
LOW_CONFIDENCE_REMAINDER_SHARE: Final = 0.5
#: Rounding noise of the attribution, kcal/kg: a remainder this small is zero (a row at design).
_NOISE_KCAL: Final = 1e-9

_CP_T: Final = np.array(GAS_CP_TEMPS_C)
_SPECIES: Final = ("CO2", "N2", "O2", "H2O", "air")
#: Per gas of _SPECIES: mean cp at the lower end of each table segment, and the segment's slope.
_CP_LO: Final = [np.array(GAS_MEAN_CP[sp][:-1]) for sp in _SPECIES]
_CP_SLOPE: Final = [np.diff(GAS_MEAN_CP[sp]) / np.diff(_CP_T) for sp in _SPECIES]


# ------------------------------------------------------------------------------------ gas properties
def _mean_cps(t: FloatArray, n: int = len(_SPECIES)) -> list[FloatArray]:
    """Mean cp of the first ``n`` gases of _SPECIES at ``t``: the table segment's line; below 20 °C
    and above 1000 °C the first / last segment extrapolated."""
    idx = np.zeros(t.shape, dtype=np.intp)  # segment: count of inner table points <= t (5x faster
    for edge in _CP_T[1:-1]:  # than searchsorted for this 8-point table)
        idx += t >= edge
    dt = t - _CP_T.take(idx)
    return [_CP_LO[k].take(idx) + _CP_SLOPE[k].take(idx) * dt for k in range(n)]


@lru_cache(maxsize=64)
def _h0(t: float) -> tuple[float, ...]:
    """c̄p(t)·t of CO2, N2, O2, H2O, kJ/Nm³, at one temperature (a design value or the ambient)."""
    return tuple(float(c * t) for c in _mean_cps(np.asarray(t, dtype=np.float64), 4))


def mean_cp(species: Species, t_c: npt.ArrayLike) -> FloatArray:
    """Mean cp of a gas between 0 °C and ``t_c``, kJ/(Nm³·K): linear in the docs/kpis.md §10.3 table.

    Linear interpolation errs < 0.02 % against exact enthalpies at preheater-exit temperatures; outside
    20-1000 °C the first / last segment is extrapolated linearly.
    """
    return _mean_cps(np.asarray(t_c, dtype=np.float64))[_SPECIES.index(species)]


def sensible_heat(species: Species, t_c: npt.ArrayLike, ambient_c: float) -> FloatArray:
    """Heat to bring 1 Nm³ of a gas from ambient to ``t_c``, kJ/Nm³: c̄p(t)·t − c̄p(ta)·ta (§10.3)."""
    out: FloatArray = mean_cp(species, t_c) * np.asarray(t_c, dtype=np.float64)
    return out - float(mean_cp(species, ambient_c)) * ambient_c


class _TPart(NamedTuple):
    """The exit-gas loss at one gas temperature before the excess air is known, kJ/kg clinker:
    L = a0 + b0·q + V_ex·air with V_ex = r·V_d0 (see :func:`_gas_lin`)."""

    a0: FloatArray
    b0: FloatArray
    #: sensible heat of 1 Nm³ of (excess) air, taken as its N2 and O2, kJ/Nm³
    air: FloatArray


def _t_part(t: FloatArray | float, ambient_c: float, g: GasArrays, meal_water: float) -> _TPart:
    """Sensible heat of the flue-gas components at ``t`` (rows, or one design value), summed over the
    stoichiometric gas (fuel CO2, N2, H2O per kJ; calcination CO2 and meal water per kg clinker)."""
    ha = _h0(ambient_c)
    if isinstance(t, int | float):
        ht = _h0(float(t))
        co2, n2, o2, h2o = (np.asarray(ht[k] - ha[k]) for k in range(4))
    else:
        cp_t = _mean_cps(t, 4)
        co2, n2, o2, h2o = (cp_t[k] * t - ha[k] for k in range(4))
    meal = meal_water / _M_H2O * NM3_PER_KMOL
    return _TPart(
        a0=co2 * CALCINATION_CO2_NM3_PER_KG + h2o * meal,
        b0=(co2 * g.co2 + n2 * g.n2 + h2o * g.h2o) / 1000.0,
        air=AIR_N2_FRACTION * n2 + AIR_O2_FRACTION * o2,
    )


# ------------------------------------------------------------------------------------ fuel
@dataclass(frozen=True, slots=True)
class GasPerMJ:
    """Stoichiometric flue gas and air of a fuel, Nm³ per MJ of fuel heat (NCV basis).

    Per MJ rather than per kg because the kiln's fuel is known as heat per kg clinker (SHC): gas per
    kg clinker = SHC x gas per MJ, whatever the fuel's NCV. ``co2`` includes SO2 (same volume per
    mole, negligible mass).
    """

    co2: float
    h2o: float
    n2: float
    air: float


def hhv_from_analysis(c: float, h: float, o: float, n: float, s: float, ash: float) -> float:
    """Higher heating value, MJ/kg, by the Channiwala-Parikh correlation (mass %, as fired)."""
    return 0.3491 * c + 1.1783 * h + 0.1005 * s - 0.1034 * o - 0.0151 * n - 0.0211 * ash


def ncv_from_analysis(c: float, h: float, o: float, n: float, s: float, ash: float, moisture: float) -> float:
    """Net calorific value, MJ/kg as fired: Channiwala-Parikh HHV minus the latent heat of the water
    formed from hydrogen and of the fuel moisture (mass %, as fired; docs/kpis.md §10.2).

    For plausibility checks of a lab NCV against the lab's ultimate analysis, and to express an
    analysis per MJ when the fuel's NCV is not a configured constant.
    """
    hhv = hhv_from_analysis(c, h, o, n, s, ash)
    return hhv - LATENT_HEAT_WATER_MJ_PER_KG * (WATER_PER_HYDROGEN * h + moisture) / 100.0


def gas_per_mj(
    c: float, h: float, o: float, n: float, s: float, moisture: float, ncv_mj_per_kg: float
) -> GasPerMJ:
    """Flue-gas products of a fuel from its as-fired ultimate analysis (mass %) and NCV (MJ/kg).

    Complete combustion with stoichiometric air (docs/kpis.md §10.2): O2 demand
    22.414·(C/12.011 + H/4.032 + S/32.06 − O/31.998) Nm³/kg, air = O2 / 0.2095; products CO2 (+SO2)
    22.414·(C/12.011 + S/32.06), H2O 22.414·(H/2.016 + W/18.015), N2 0.7905·air + 22.414·N/28.013;
    each divided by the NCV. Excess air is added later from the measured O2.
    """
    parts = {"C": c, "H": h, "O": o, "N": n, "S": s, "moisture": moisture}
    for name, v in parts.items():
        if not (np.isfinite(v) and 0.0 <= v <= 100.0):
            raise ValueError(f"fuel {name} must be a mass % in 0-100, got {v}")
    if sum(parts.values()) > 100.0 + 1e-6:
        raise ValueError(f"fuel analysis adds up to more than 100 %: {sum(parts.values())}")
    if not (np.isfinite(ncv_mj_per_kg) and ncv_mj_per_kg > 0.0):
        raise ValueError(f"fuel NCV must be > 0 MJ/kg, got {ncv_mj_per_kg}")
    cf, hf, of, nf, sf, wf = c / 100, h / 100, o / 100, n / 100, s / 100, moisture / 100
    o2_min = NM3_PER_KMOL * (cf / _M_C + hf / (2 * _M_H2) + sf / _M_S - of / _M_O2)
    if o2_min <= 0.0:
        raise ValueError("fuel analysis needs no combustion air (O2 demand <= 0)")
    air = o2_min / AIR_O2_FRACTION
    co2 = NM3_PER_KMOL * (cf / _M_C + sf / _M_S)
    h2o = NM3_PER_KMOL * (hf / _M_H2 + wf / _M_H2O)
    n2 = AIR_N2_FRACTION * air + NM3_PER_KMOL * nf / _M_N2
    return GasPerMJ(
        co2=co2 / ncv_mj_per_kg, h2o=h2o / ncv_mj_per_kg, n2=n2 / ncv_mj_per_kg, air=air / ncv_mj_per_kg
    )


#: As-fired analysis of the reference coal of docs/kpis.md §10.2, mass %: C, H, O, N, S, ash, moisture.
REFERENCE_COAL_ANALYSIS: Final = (64.0, 4.0, 7.0, 1.2, 0.8, 15.0, 8.0)
#: Its NCV by Channiwala-Parikh minus latent heat: 25.009 MJ/kg.
REFERENCE_COAL_NCV_MJ_PER_KG: Final = ncv_from_analysis(*REFERENCE_COAL_ANALYSIS)
#: Gas per MJ of the reference coal (air 0.2621 Nm³/MJ). The fallback for a fuel without an ultimate
#: analysis ("from NCV only"): per MJ, bituminous coals differ little; petcoke, oil, gas and
#: alternative fuels differ more, so give their lab analysis when available (docs/kpis.md §10.2).
REFERENCE_COAL: Final = gas_per_mj(
    *REFERENCE_COAL_ANALYSIS[:5], REFERENCE_COAL_ANALYSIS[6], REFERENCE_COAL_NCV_MJ_PER_KG
)


class GasArrays(NamedTuple):
    """Stoichiometric flue gas per MJ of fuel heat, Nm³/MJ, per row (a heat-weighted fuel mix)."""

    co2: FloatArray
    h2o: FloatArray
    n2: FloatArray


def mix_gas(energy_shares: npt.ArrayLike, per_fuel: Sequence[GasPerMJ]) -> GasArrays:
    """Heat-weighted flue gas per MJ of several fuels, per row.

    ``energy_shares`` is (W x K): the heat of fuel k in row w in any unit (GJ/h or shares); each row
    is normalised by its sum. A row with a NaN or negative entry, or a total <= 0, is NaN (the mix is
    unknown when a feeder has no good value).
    """
    s = np.asarray(energy_shares, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != len(per_fuel):
        raise ValueError(f"energy_shares must be (rows x {len(per_fuel)}), got shape {s.shape}")
    total = s.sum(axis=1)
    bad = ~np.isfinite(total) | (total <= 0.0) | (s < 0.0).any(axis=1)
    total = np.where(bad, np.nan, total)
    clean = np.where(bad[:, None], 0.0, s)

    def mix(values: list[float]) -> FloatArray:
        out: FloatArray = clean @ np.array(values, dtype=np.float64) / total
        return out

    return GasArrays(
        co2=mix([g.co2 for g in per_fuel]),
        h2o=mix([g.h2o for g in per_fuel]),
        n2=mix([g.n2 for g in per_fuel]),
    )


#: A fuel's gas per MJ: one fuel for every row, or per-row arrays (a mix) as arrays or a 3-tuple.
Gas = GasPerMJ | GasArrays | tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike]


def _gas_arrays(gas: Gas) -> GasArrays:
    if isinstance(gas, GasPerMJ):
        return GasArrays(*(np.asarray(v, dtype=np.float64) for v in (gas.co2, gas.h2o, gas.n2)))
    co2, h2o, n2 = gas
    return GasArrays(*(np.asarray(v, dtype=np.float64) for v in (co2, h2o, n2)))


# ------------------------------------------------------------------------------------ flue gas
def _stoich_dry(q_kj: FloatArray, g: GasArrays) -> FloatArray:
    """Dry flue gas at zero excess air, Nm³/kg clinker: fuel CO2 + N2, plus calcination CO2."""
    out: FloatArray = (g.co2 + g.n2) * (q_kj / 1000.0) + CALCINATION_CO2_NM3_PER_KG
    return out


def _water(q_kj: FloatArray, g: GasArrays, meal_water: float) -> FloatArray:
    """Water vapour, Nm³/kg clinker: from the fuel plus the raw meal's moisture."""
    out: FloatArray = g.h2o * (q_kj / 1000.0) + meal_water / _M_H2O * NM3_PER_KMOL
    return out


def _excess_ratio(
    o2: FloatArray, q_kj: FloatArray, g: GasArrays, basis: O2Basis, meal_water: float
) -> FloatArray:
    """Excess (and false) air per Nm³ of stoichiometric dry gas, V_ex / V_d0, from O2 (a fraction).

    Dry: O2 = 0.2095·V_ex/(V_d0 + V_ex), so V_ex/V_d0 = O2/(0.2095 − O2). Wet:
    O2 = 0.2095·V_ex/(V_d0 + V_ex + W), solved exactly for V_ex with the water W of this state
    (a fixed "6 % water" would be wrong whenever fuel, its moisture or the SHC differ).
    """
    r: FloatArray = o2 / (AIR_O2_FRACTION - o2)
    if basis == "wet":
        vd0 = _stoich_dry(q_kj, g)
        r = r * (vd0 + _water(q_kj, g, meal_water)) / vd0
    return r


def _wet_per_dry(r: FloatArray, q_kj: FloatArray, g: GasArrays, meal_water: float) -> FloatArray:
    """Wet / dry gas volume of a state: converts a wet-basis concentration to the dry basis."""
    dry = _stoich_dry(q_kj, g) * (1.0 + r)
    out: FloatArray = (dry + _water(q_kj, g, meal_water)) / dry
    return out


@dataclass(frozen=True, slots=True)
class FlueGas:
    """Flue gas at the preheater exit, Nm³ per kg clinker (arrays of the input shape)."""

    co2: FloatArray
    h2o: FloatArray
    n2: FloatArray
    o2: FloatArray
    #: Dry gas at zero excess air (fuel CO2 + N2 and calcination CO2).
    stoich_dry: FloatArray
    #: Excess and false air (everything the O2 analyser sees beyond stoichiometry).
    excess_air: FloatArray
    dry: FloatArray
    wet: FloatArray


def flue_gas(
    shc_kcal_per_kg: npt.ArrayLike,
    o2_pct: npt.ArrayLike,
    gas: Gas,
    *,
    o2_basis: O2Basis = "dry",
    raw_meal_water_kg_per_kg: float = RAW_MEAL_WATER_KG_PER_KG,
) -> FlueGas:
    """Preheater-exit gas per kg clinker from SHC, O2 and the fuel's gas per MJ (docs/kpis.md §10.2).

    ``o2_pct`` on ``o2_basis``; outside 0 <= O2 < 20.95 % every volume is NaN.
    """
    g = _gas_arrays(gas)
    q = np.asarray(shc_kcal_per_kg, dtype=np.float64) * KJ_PER_KCAL
    x = np.asarray(o2_pct, dtype=np.float64) / 100.0
    ok = (x >= 0.0) & (x < AIR_O2_FRACTION)
    x = np.where(ok, x, 0.0)
    nan = np.where(ok, 0.0, np.nan)  # O2 out of range: every volume NaN
    vd0 = _stoich_dry(q, g) + nan
    water = _water(q, g, raw_meal_water_kg_per_kg) + nan
    vex = _excess_ratio(x, q, g, o2_basis, raw_meal_water_kg_per_kg) * vd0
    return FlueGas(
        co2=g.co2 * (q / 1000.0) + CALCINATION_CO2_NM3_PER_KG + nan,
        h2o=water,
        n2=g.n2 * (q / 1000.0) + AIR_N2_FRACTION * vex,
        o2=AIR_O2_FRACTION * vex,
        stoich_dry=vd0,
        excess_air=vex,
        dry=vd0 + vex,
        wet=vd0 + vex + water,
    )


# ------------------------------------------------------------------------------------ loss terms
class _Lin(NamedTuple):
    """A loss linear in the fuel heat q (kJ/kg clinker): L = a + b·q, kJ/kg clinker."""

    a: FloatArray
    b: FloatArray


def _gas_lin(tp: _TPart, r: FloatArray, g: GasArrays) -> _Lin:
    """Exit-gas sensible heat Σ Vᵢ·Δhᵢ: stoichiometric gas and water, plus the excess air
    V_ex = r·V_d0 = r·((CO2 + N2 per kJ)·q + calcination CO2) as its N2 and O2."""
    return _Lin(
        tp.a0 + r * CALCINATION_CO2_NM3_PER_KG * tp.air, tp.b0 + r * ((g.co2 + g.n2) / 1000.0) * tp.air
    )


def _co_ph_lin(x: FloatArray, r: FloatArray, g: GasArrays, basis: O2Basis, meal_water: float) -> _Lin:
    """CO at the preheater exit: x_CO · gas volume (dry or wet, the analyser's basis) · 12,625 kJ/Nm³."""
    k = x * (1.0 + r) * CO_HEATING_VALUE_KJ_PER_NM3
    a = k * CALCINATION_CO2_NM3_PER_KG
    b = k * (g.co2 + g.n2) / 1000.0
    if basis == "wet":
        kw = x * CO_HEATING_VALUE_KJ_PER_NM3
        a = a + kw * meal_water / _M_H2O * NM3_PER_KMOL
        b = b + kw * g.h2o / 1000.0
    return _Lin(a, b)


def _co_kiln_lin(x: FloatArray, o2k: FloatArray, g: GasArrays, design: LossDesign) -> _Lin:
    """CO at the kiln inlet, upper bound (the calciner may burn it out): x_CO times the kiln's dry gas
    (kiln-burner share of the fuel gas, the share of calcination CO2 released in the kiln, excess air
    from the kiln-inlet O2), times 12,625 kJ/Nm³ (docs/kpis.md §10.4)."""
    k = x * (AIR_O2_FRACTION / (AIR_O2_FRACTION - o2k)) * CO_HEATING_VALUE_KJ_PER_NM3
    a = k * design.kiln_calcination_share * CALCINATION_CO2_NM3_PER_KG
    b = k * design.kiln_burner_fuel_share * (g.co2 + g.n2) / 1000.0
    return _Lin(a, b)


def exit_gas_loss(
    shc_kcal_per_kg: npt.ArrayLike,
    t_exit_c: npt.ArrayLike,
    o2_pct: npt.ArrayLike,
    gas: Gas,
    *,
    ambient_c: float = 20.0,
    o2_basis: O2Basis = "dry",
    raw_meal_water_kg_per_kg: float = RAW_MEAL_WATER_KG_PER_KG,
) -> FloatArray:
    """Sensible heat of the preheater-exit gas above ambient, kcal/kg clinker, at a given SHC (direct:
    no fuel feedback). NaN for O2 outside 0 <= O2 < 20.95 %."""
    g = _gas_arrays(gas)
    q = np.asarray(shc_kcal_per_kg, dtype=np.float64) * KJ_PER_KCAL
    x = np.asarray(o2_pct, dtype=np.float64) / 100.0
    ok = (x >= 0.0) & (x < AIR_O2_FRACTION)
    r = _excess_ratio(np.where(ok, x, 0.0), q, g, o2_basis, raw_meal_water_kg_per_kg)
    tp = _t_part(np.asarray(t_exit_c, dtype=np.float64), ambient_c, g, raw_meal_water_kg_per_kg)
    lin = _gas_lin(tp, r, g)
    out: FloatArray = np.where(ok, (lin.a + lin.b * q) / KJ_PER_KCAL, np.nan)
    return out


def co_loss_ph_exit(
    shc_kcal_per_kg: npt.ArrayLike,
    co_pct: npt.ArrayLike,
    o2_pct: npt.ArrayLike,
    gas: Gas,
    *,
    o2_basis: O2Basis = "dry",
    raw_meal_water_kg_per_kg: float = RAW_MEAL_WATER_KG_PER_KG,
) -> FloatArray:
    """Unburnt CO leaving the preheater, kcal/kg clinker, at a given SHC (direct); CO and O2 on the
    same basis (one analyser)."""
    g = _gas_arrays(gas)
    q = np.asarray(shc_kcal_per_kg, dtype=np.float64) * KJ_PER_KCAL
    x = np.asarray(o2_pct, dtype=np.float64) / 100.0
    ok = (x >= 0.0) & (x < AIR_O2_FRACTION)
    r = _excess_ratio(np.where(ok, x, 0.0), q, g, o2_basis, raw_meal_water_kg_per_kg)
    co = np.asarray(co_pct, dtype=np.float64) / 100.0
    lin = _co_ph_lin(co, r, g, o2_basis, raw_meal_water_kg_per_kg)
    out: FloatArray = np.where(ok, (lin.a + lin.b * q) / KJ_PER_KCAL, np.nan)
    return out


def co_loss_kiln_inlet(
    shc_kcal_per_kg: npt.ArrayLike,
    co_pct: npt.ArrayLike,
    gas: Gas,
    design: LossDesign,
    kiln_inlet_o2_pct: npt.ArrayLike | None = None,
) -> FloatArray:
    """Upper bound of the CO loss from kiln-inlet CO, kcal/kg clinker, at a given SHC (direct).

    Kiln-inlet O2 (dry) defaults to ``design.kiln_inlet_o2_pct``; burner and calcination shares
    come from ``design``.
    """
    g = _gas_arrays(gas)
    q = np.asarray(shc_kcal_per_kg, dtype=np.float64) * KJ_PER_KCAL
    o2k = np.asarray(
        design.kiln_inlet_o2_pct if kiln_inlet_o2_pct is None else kiln_inlet_o2_pct, dtype=np.float64
    )
    ok = (o2k >= 0.0) & (o2k < AIR_O2_FRACTION * 100.0)
    co = np.asarray(co_pct, dtype=np.float64) / 100.0
    lin = _co_kiln_lin(co, np.where(ok, o2k, 0.0) / 100.0, g, design)
    out: FloatArray = np.where(ok, (lin.a + lin.b * q) / KJ_PER_KCAL, np.nan)
    return out


def clinker_loss(
    t_clinker_c: npt.ArrayLike, *, ambient_c: float = 20.0, cp: float = CLINKER_CP_KJ_PER_KG_K
) -> FloatArray:
    """Sensible heat of the clinker leaving the cooler, kcal/kg: cp·(T_cl − T_a) (docs/kpis.md §10.4)."""
    out: FloatArray = cp * (np.asarray(t_clinker_c, dtype=np.float64) - ambient_c) / KJ_PER_KCAL
    return out


# ------------------------------------------------------------------------------------ attribution
@dataclass(frozen=True, slots=True)
class LossDesign:
    """The kiln's reference state: the deviation SHC − design SHC is attributed against it.

    ``o2_basis`` applies to the design O2 and CO and to the measured preheater-exit O2 and CO alike
    (one analyser; never mix bases). Wet readings are converted to dry with the water of their own
    state (design values at the design SHC, measured ones at the measured SHC), so the model's
    factors are dry fractions whatever the basis. Kiln-inlet O2 and CO are dry (extractive analyser).
    ``co_location`` says where the CO signal is measured: at the preheater exit it is the CO loss;
    at the kiln inlet it is an upper bound, sized with the three kiln-inlet assumptions below
    (docs/kpis.md §10.4, [U], configurable).
    """

    #: Design specific heat, kcal/kg (the kiln's target_specific_heat_kcal_per_kg).
    shc_kcal_per_kg: float
    #: Design preheater exit gas temperature, °C.
    ph_exit_temp_c: float
    #: Design preheater exit O2, % on ``o2_basis``.
    ph_exit_o2_pct: float
    #: Design clinker temperature after the cooler, °C.
    clinker_temp_c: float
    #: Design CO, % at ``co_location`` (usually 0).
    co_pct: float = 0.0
    #: Ambient temperature, °C: reference of every sensible heat.
    ambient_temp_c: float = 20.0
    o2_basis: O2Basis = "dry"
    co_location: CoLocation = "ph_exit"
    #: Share of the fuel heat fired at the kiln burner (the rest in the calciner).
    kiln_burner_fuel_share: float = 0.40
    #: Kiln-inlet O2 (dry), %, used when no kiln-inlet O2 signal is given, and in the design state.
    kiln_inlet_o2_pct: float = 2.0
    #: Share of the calcination CO2 released in the kiln (most of it leaves the calciner).
    kiln_calcination_share: float = 0.08
    clinker_cp_kj_per_kg_k: float = CLINKER_CP_KJ_PER_KG_K
    raw_meal_water_kg_per_kg: float = RAW_MEAL_WATER_KG_PER_KG

    def __post_init__(self) -> None:
        checks = [
            (self.shc_kcal_per_kg > 0.0, "shc_kcal_per_kg must be > 0"),
            (GAS_TEMP_MIN_C <= self.ph_exit_temp_c <= GAS_TEMP_MAX_C, "ph_exit_temp_c out of range"),
            (GAS_TEMP_MIN_C <= self.ambient_temp_c <= 60.0, "ambient_temp_c out of range"),
            (0.0 <= self.ph_exit_o2_pct < AIR_O2_FRACTION * 100.0, "ph_exit_o2_pct must be in [0, 20.95)"),
            (0.0 <= self.co_pct < 100.0, "co_pct must be in [0, 100)"),
            (-50.0 <= self.clinker_temp_c <= 1500.0, "clinker_temp_c out of range"),
            (self.o2_basis in ("dry", "wet"), "o2_basis must be 'dry' or 'wet'"),
            (self.co_location in ("ph_exit", "kiln_inlet"), "co_location must be 'ph_exit' or 'kiln_inlet'"),
            (0.0 < self.kiln_burner_fuel_share <= 1.0, "kiln_burner_fuel_share must be in (0, 1]"),
            (
                0.0 <= self.kiln_inlet_o2_pct < AIR_O2_FRACTION * 100.0,
                "kiln_inlet_o2_pct must be in [0, 20.95)",
            ),
            (0.0 <= self.kiln_calcination_share <= 1.0, "kiln_calcination_share must be in [0, 1]"),
            (self.clinker_cp_kj_per_kg_k > 0.0, "clinker_cp_kj_per_kg_k must be > 0"),
            (self.raw_meal_water_kg_per_kg >= 0.0, "raw_meal_water_kg_per_kg must be >= 0"),
        ]
        for ok, msg in checks:
            if not ok:  # NaN fails every comparison, so it lands here too
                raise ValueError(f"LossDesign: {msg}")


@dataclass(frozen=True, slots=True)
class LossSplit:
    """The deviation SHC − design SHC split into causes, kcal/kg clinker, per row.

    A factor whose signal was not given (None) is absent: its array is None and its effect is in
    ``unattributed``. A row with any input NaN or out of range ("inputs not good") has NaN in every
    array and ``good`` False. For good rows the five terms add up to the deviation exactly.
    """

    #: (1a) preheater exit temperature (Shapley value of the exit-T factor).
    exit_gas_temp: FloatArray | None
    #: (1b) excess and false air (Shapley value of the O2 factor).
    excess_air: FloatArray | None
    #: (2) unburnt CO; an upper bound when the CO is measured at the kiln inlet.
    co: FloatArray | None
    #: (3) clinker exit temperature.
    clinker_temp: FloatArray | None
    #: Measured − modelled SHC: shell, cooler air, feed chemistry, F / NCV / weigher error, absent factors.
    unattributed: FloatArray
    #: Modelled SHC at the actual state = design SHC + the attributed terms.
    modelled_shc: FloatArray
    #: |unattributed| > 50 % of |deviation| (which includes every row whose attributed sum opposes the
    #: deviation). False for rows that are not good.
    low_confidence: BoolArray
    #: The row's inputs were good (every array finite).
    good: BoolArray


def _shapley_matrix(m: int) -> FloatArray:
    """(m x 2^m) matrix M with φ = M @ v for values v[mask] of every subset of m players (bit j of
    mask = player j): φ_j = Σ over S without j of |S|!(m−|S|−1)!/m! · (v(S ∪ j) − v(S))."""
    out = np.zeros((m, 1 << m))
    for j in range(m):
        for mask in range(1 << m):
            if not (mask >> j) & 1:
                k = mask.bit_count()
                w = factorial(k) * factorial(m - k - 1) / factorial(m)
                out[j, mask | (1 << j)] += w
                out[j, mask] -= w
    return out


_SHAPLEY: Final = tuple(_shapley_matrix(m) for m in range(5))
#: Rows per chunk of the attribution: its ~200 temporaries stay in the CPU cache (3x faster than one
#: pass over 10^5 rows, which is bound by memory traffic).
_CHUNK_ROWS: Final = 8192


def _arr(x: npt.ArrayLike) -> FloatArray:
    return np.atleast_1d(np.asarray(x, dtype=np.float64))


def _shapley_chunk(
    d: LossDesign, g: GasArrays, shc: FloatArray, sig: dict[str, FloatArray], ok: BoolArray
) -> FloatArray:
    """Shapley values (kJ/kg, measured factors x rows) of one chunk of rows: the factors in the order
    exit T, O2, CO, clinker T. Clears ``ok`` (a view) where the model is meaningless."""
    rows = ok.shape[0]
    ta, basis, meal = d.ambient_temp_c, d.o2_basis, d.raw_meal_water_kg_per_kg
    q_des = np.asarray(d.shc_kcal_per_kg * KJ_PER_KCAL, dtype=np.float64)
    q_act = shc * KJ_PER_KCAL

    def f64(v: float) -> FloatArray:  # a design value: a 0-d array, broadcast against the rows
        return np.asarray(v, dtype=np.float64)

    with np.errstate(all="ignore"):
        # --- each factor at design (index 0) and, when measured, at actual (index 1)
        tp = [_t_part(float(d.ph_exit_temp_c), ta, g, meal)] + (
            [_t_part(sig["t"], ta, g, meal)] if "t" in sig else []
        )
        r = [_excess_ratio(f64(d.ph_exit_o2_pct / 100.0), q_des, g, basis, meal)]
        r += [_excess_ratio(sig["o2"] / 100.0, q_act, g, basis, meal)] if "o2" in sig else []
        x = [f64(d.co_pct / 100.0)] + ([sig["co"] / 100.0] if "co" in sig else [])
        if basis == "wet" and d.co_location == "ph_exit":
            # the CO factor is the dry fraction, like O2: read at the state's own water content
            x[0] = x[0] * _wet_per_dry(r[0], q_des, g, meal)
            if len(x) == 2:
                x[1] = x[1] * _wet_per_dry(r[-1], q_act, g, meal)
        o2k = [
            f64(d.kiln_inlet_o2_pct / 100.0),
            sig["o2k"] / 100.0 if "o2k" in sig else f64(d.kiln_inlet_o2_pct / 100.0),
        ]
        cp = d.clinker_cp_kj_per_kg_k
        cl = [f64(cp * (d.clinker_temp_c - ta))] + ([cp * (sig["tcl"] - ta)] if "tcl" in sig else [])
        players = [f for f, n in enumerate((len(tp), len(r), len(x), len(cl))) if n == 2]

        lin_gas = {(ts, os): _gas_lin(tp[ts], r[os], g) for ts in range(len(tp)) for os in range(len(r))}
        lin_co: dict[tuple[int, int], _Lin] = {}
        for cs in range(len(x)):
            for os in range(len(r)):
                if d.co_location == "ph_exit":
                    lin_co[cs, os] = _co_ph_lin(x[cs], r[os], g, "dry", meal)
                elif os == 0:
                    lin_co[cs, 0] = _co_kiln_lin(x[cs], o2k[cs], g, d)
        co_o2 = d.co_location == "ph_exit"  # does the CO loss depend on the O2 state

        # --- B from the design state, per row (this row's fuel gas)
        lg, lc = lin_gas[0, 0], lin_co[0, 0]
        lump = q_des - (lg.a + lg.b * q_des) - (lc.a + lc.b * q_des) - cl[0]

        # --- numerator and 1/denominator of the model SHC per (T, O2, CO) state, B + clinker per state
        num: dict[tuple[int, int, int], FloatArray] = {}
        inv: dict[tuple[int, int, int], FloatArray] = {}
        for (ts, os), lg in lin_gas.items():
            for cs in range(len(x)):
                lc = lin_co[cs, os if co_o2 else 0]
                den = 1.0 - lg.b - lc.b
                ok &= den > 1.0 - MAX_FEEDBACK
                num[ts, os, cs] = lg.a + lc.a
                inv[ts, os, cs] = 1.0 / den
        base = [lump + c for c in cl]

        # --- model SHC for every subset of players at actual (bit j of mask = players[j] at actual)
        m = len(players)
        values = np.empty((1 << m, rows))
        for mask in range(1 << m):
            st = [0, 0, 0, 0]
            for j, f in enumerate(players):
                st[f] = (mask >> j) & 1
            key = (st[0], st[1], st[2])
            np.multiply(base[st[3]] + num[key], inv[key], out=values[mask])
        values -= values[0]  # v(S) − v(∅): exact zeros where actual = design
        phi: FloatArray = np.einsum("jk,kn->jn", _SHAPLEY[m], values)
    return phi


def attribute_losses(
    design: LossDesign,
    gas: Gas,
    shc_kcal_per_kg: npt.ArrayLike,
    t_exit: npt.ArrayLike | None,
    o2: npt.ArrayLike | None,
    co: npt.ArrayLike | None,
    t_clinker: npt.ArrayLike | None,
    kiln_inlet_o2: npt.ArrayLike | None = None,
) -> LossSplit:
    """Split SHC − design SHC into exit-gas temperature, excess air, CO, clinker temperature and the
    unattributed remainder, per row (docs/kpis.md §10.5).

    ``gas``: the fuel's gas per MJ (:class:`GasPerMJ`, or per-row arrays from :func:`mix_gas`).
    ``shc_kcal_per_kg``: measured SHC. Signals (°C, %; O2 and preheater-exit CO on
    ``design.o2_basis``, CO at ``design.co_location``): an array per row, or None when the kiln has
    no such signal - that factor is then held at design, takes no share, and its effect lands in
    ``unattributed``. ``kiln_inlet_o2`` (dry %) only refines a kiln-inlet CO bound (it belongs to
    the CO factor) and is ignored otherwise.

    Steps: per row, the unmeasured lump B is back-calculated from the design state with this row's
    fuel gas; the model SHC(state) = (B + Σa)/(1 − Σb) is evaluated for every subset of measured
    factors set to actual (at most 2⁴ = 16 states); Shapley values of those give each factor's share
    including fuel feedback; the remainder is measured − modelled.
    """
    shc = _arr(shc_kcal_per_kg)
    g = _gas_arrays(gas)
    kiln_co = design.co_location == "kiln_inlet" and co is not None
    given = {"t": t_exit, "o2": o2, "co": co, "tcl": t_clinker, "o2k": kiln_inlet_o2 if kiln_co else None}
    sig = {k: _arr(v) for k, v in given.items() if v is not None}
    shape = np.broadcast_shapes(shc.shape, *(v.shape for v in sig.values()), *(v.shape for v in g))
    if len(shape) != 1:
        raise ValueError(f"attribute_losses works on 1-D rows, got shape {shape}")

    # --- good rows: every input finite and in range (bad rows compute garbage, NaN-ed at the end)
    ok = np.broadcast_to(np.isfinite(shc) & (shc > 0.0), shape).copy()
    for v in g:
        ok &= np.isfinite(v) & (v >= 0.0)
    air_o2_pct = AIR_O2_FRACTION * 100.0
    for k, v in sig.items():
        ok &= np.isfinite(v)
        if k == "t":
            ok &= (v >= GAS_TEMP_MIN_C) & (v <= GAS_TEMP_MAX_C)
        elif k != "tcl":  # O2 below air; CO a real concentration
            ok &= (v >= 0.0) & (v < (100.0 if k == "co" else air_o2_pct))

    d = design
    n = shape[0]
    players = [f for f, v in enumerate((t_exit, o2, co, t_clinker)) if v is not None]
    phi = np.empty((len(players), n))
    for start in range(0, n, _CHUNK_ROWS):
        part = slice(start, start + _CHUNK_ROWS)

        def cut(v: FloatArray, part: slice = part) -> FloatArray:
            return v[part] if v.shape == shape else v  # size-1 and 0-d inputs broadcast

        phi[:, part] = _shapley_chunk(
            d, GasArrays(*(cut(v) for v in g)), cut(shc), {k: cut(v) for k, v in sig.items()}, ok[part]
        )
    phi /= KJ_PER_KCAL
    phi[:, ~ok] = np.nan

    terms: list[FloatArray | None] = [None, None, None, None]
    for j, f in enumerate(players):
        terms[f] = phi[j]
    deviation = np.where(ok, shc - d.shc_kcal_per_kg, np.nan)
    explained = phi.sum(axis=0)
    unattributed = deviation - explained
    # A sum of terms opposing the deviation leaves |remainder| > |deviation|: the share test covers it.
    low = ok & (np.abs(unattributed) > LOW_CONFIDENCE_REMAINDER_SHARE * np.abs(deviation) + _NOISE_KCAL)
    return LossSplit(
        exit_gas_temp=terms[0],
        excess_air=terms[1],
        co=terms[2],
        clinker_temp=terms[3],
        unattributed=unattributed,
        modelled_shc=d.shc_kcal_per_kg + explained,
        low_confidence=low,
        good=ok,
    )
