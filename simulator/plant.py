"""A pure, deterministic model of a 5,000 t/d precalciner cement line (or several), in simulated time.

No sockets and no clocks: :meth:`PlantModel.step` advances simulated seconds and
:meth:`PlantModel.vector` / :meth:`PlantModel.values` return what the PLC would serve, in the order of
the tag map (:mod:`simulator.tagmap`). The same seed and the same sequence of steps give the same
values bit for bit. Each section (kiln, raw mill, coal mill, cement mill, WHR, site) is vectorised
over the lines with numpy and draws its noise from its own random stream, so a scenario in one
section never changes the noise of another.

Physics is deliberately simple but coupled the way a plant is:

* fuel follows clinker x specific heat (docs/kpis.md §1) with a fixed radiation loss, so SHC rises at low
  feed; kiln feed -> clinker by F = 1.6 (docs/kpis.md §1);
* false air raises PH exit O2 (two-point method, docs/kpis.md §8), SHC (~2 kcal/kg per % false air,
  docs/kpis.md §8), PH exit temperature, gas volume and ID fan power;
* drive power follows load with an idle share (mills running empty keep most of their power);
* WHR generation follows PH exit gas temperature x flow (SP boiler) and cooler air (AQC boiler),
  docs/kpis.md §5; raw and coal mills run on silo/bin level hysteresis fed by the kiln's demand;
* temperatures follow a kiln thermal level (cool-down ~3 h, heat-up ~1 h) with first-order lags;
* sensor noise per reading, slow Ornstein-Uhlenbeck drifts, Poisson operator setpoint steps,
  transmitter ranges (clamped, flagged), hourly lab values held between samples.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from simulator.registers import RegisterCodec
from simulator.scenarios import CATALOGUE, ScheduledScenario, parse_scenarios
from simulator.tagmap import TagMap, build_tagmap

Arr = npt.NDArray[np.float64]
BArr = npt.NDArray[np.bool_]

#: Simulated time 0; a Monday, so day shifts and weekdays line up in backfilled history.
DEFAULT_START: Final = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
MAX_SUBSTEP_SECS: Final = 60.0

# --- Plant constants (docs/kpis.md; all defaults of the generated agent config) -------------
KJ_PER_KCAL: Final = 4.1868  # docs/kpis.md §1: 1 kcal/kg = 4.1868 MJ/t
FEED_TO_CLINKER: Final = 1.6  # docs/kpis.md §1, [SIM] snapshot
NOMINAL_FEED_TPH: Final = 330.0  # 5,000 t/d line: 330 / 1.6 = 206 t/h clinker (docs/kpis.md §5: 208 t/h)
NOMINAL_CLINKER_TPH: Final = NOMINAL_FEED_TPH / FEED_TO_CLINKER
COAL_NCV_MJ_PER_KG: Final = 25.0  # docs/kpis.md §6: bituminous coal 21-26 MJ/kg
TARGET_SHC_KCAL_PER_KG: Final = 735.0  # docs/kpis.md §1: new 5-stage PH+PC < 725; normal band 700-780
DESIGN_PH_EXIT_TEMP_C: Final = 320.0  # docs/kpis.md §6: 5-stage 300-340 °C
FIXED_HEAT_LOSS_FRACTION: Final = 0.08  # radiation/shell loss independent of output [U]
BASE_FALSE_AIR_PCT: Final = 3.5  # docs/kpis.md §8: good < 5 %
LEAK_FALSE_AIR_PCT: Final = 16.5  # false_air_leak adds this: ~20 %, docs/kpis.md §8 critical > 15 %
SHC_KCAL_PER_FALSE_AIR_PCT: Final = 2.0  # docs/kpis.md §8: 1.5-2.5 kcal/kg per % false air
BURNER_SHC_PENALTY: Final = 0.07  # burner_inefficiency: +7 % heat demand
CALCINER_HEAT_SHARE: Final = 0.60  # docs/kpis.md §6: 55-62 % of heat
GAS_KNM3_PER_T_CLINKER: Final = 1.45  # PH exit gas ~1.45 Nm³/kg clinker [U]
NOMINAL_GAS_KNM3_PER_H: Final = GAS_KNM3_PER_T_CLINKER * NOMINAL_CLINKER_TPH
HEAT_UP_FIRING_FRACTION: Final = 0.35  # main burner only while heating up after a stop [U]
RAW_MILL_RATED_KW: Final = 7500.0  # main drive 4,200 + fan 3,000 + separator 300 (section rating)
COAL_MILL_RATED_KW: Final = 800.0
CEMENT_MILL_RATED_KW: Final = 5600.0  # main drive 4,700 + separator 250 + fan 650
KILN_RATED_KW: Final = 6000.0
CEMENT_FEED_TPH: Final = 135.0  # at 3,500 cm²/g; 3,400 -> 140 t/h, 3,600 -> 130 t/h
# WHR (docs/kpis.md §5): SP boiler on PH exit gas, AQC boiler on cooler mid-air; 30-45 kWh/t clinker.
GAS_CP_KJ_PER_NM3_K: Final = 1.45
AIR_CP_KJ_PER_NM3_K: Final = 1.32
AQC_AIR_KNM3_PER_H: Final = 220.0
WHR_EFFICIENCY: Final = 0.22


class SensorStatus(enum.IntEnum):
    """Quality the PLC attaches to a served value (OPC UA StatusCode on the wire)."""

    GOOD = 0
    UNCERTAIN_LAST_USABLE = 1  # PLC detected a failed input and holds the last value
    UNCERTAIN_EU_EXCEEDED = 2  # transmitter saturated at its measuring range
    BAD_SENSOR_FAILURE = 3  # input declared failed (OPC UA serves no value)


#: Sample quality stored by the agent for each status (docs/auditors.md).
STATUS_QUALITY: Final = {
    SensorStatus.GOOD: "good",
    SensorStatus.UNCERTAIN_LAST_USABLE: "stale",
    SensorStatus.UNCERTAIN_EU_EXCEEDED: "bad",
    SensorStatus.BAD_SENSOR_FAILURE: "bad",
}

#: Signals frozen by ``sensor_freeze``, and whether the PLC notices (status) or not.
FROZEN_SIGNALS: Final = (
    ("kiln", "ph_exit_o2_pct", False),
    ("kiln", "clinker_temp_c", True),
    ("whr", "aqc_inlet_temp_c", False),
)
FREEZE_BAD_AFTER_SECS: Final = 1800.0

# Scenario onset/decay time constants (simulated seconds).
_ONSET_TAU: Final = {
    "false_air_leak": 480.0,
    "burner_inefficiency": 240.0,
    "mill_running_empty": 60.0,
    "whr_underperformance": 600.0,
    "compressed_air_leak": 60.0,
}

RUN, STOP, HEAT = 0, 1, 2  # kiln modes


def _decay(h: float, tau: float) -> float:
    return math.exp(-h / tau)


def _lag(x: Arr, target: Arr | float, h: float, tau: float) -> Arr:
    """Exact first-order lag over ``h`` seconds (stable for any step size)."""
    a = math.exp(-h / tau)
    return target + (x - target) * a


def _lag_settle(x: Arr, target: Arr, h: float, tau: float) -> Arr:
    """A lag that lands exactly on its target: a stopped feeder reads 0.0, not 1e-38."""
    y = _lag(x, target, h, tau)
    return np.where(np.abs(y - target) < 1e-6, target, y)


def _ou(x: Arr, sigma: float, tau: float, h: float, z: Arr) -> Arr:
    """Exact Ornstein-Uhlenbeck step: mean 0, stationary std ``sigma``, correlation time ``tau``."""
    a = math.exp(-h / tau)
    return x * a + (sigma * math.sqrt(1.0 - a * a)) * z


def _crossed(t0: float, t1: float, period: float) -> bool:
    return math.floor(t1 / period) > math.floor(t0 / period)


class _Noise:
    """A section's own random stream: process noise per substep, measurement noise per reading."""

    def __init__(self, seq: np.random.SeedSequence, lines: int) -> None:
        self.rng = np.random.default_rng(seq)
        self.lines = lines

    def z(self, n: int) -> npt.NDArray[np.float64]:
        return self.rng.standard_normal((n, self.lines))

    def u(self, n: int) -> npt.NDArray[np.float64]:
        return self.rng.random((n, self.lines))


class Severity:
    """Scenario intensities 0..1 (lagged onsets) and switch states at the current time."""

    def __init__(self, scenarios: Sequence[ScheduledScenario]) -> None:
        self.scenarios = tuple(scenarios)
        self.level: dict[str, float] = dict.fromkeys(_ONSET_TAU, 0.0)
        self.on: dict[str, bool] = {}
        self.update(0.0, 0.0)

    def active(self, name: str, t: float) -> bool:
        return any(s.name == name and s.active(t) for s in self.scenarios)

    def update(self, t: float, h: float) -> None:
        """Switch states at ``t``; intensities follow them with their onset lag over ``h`` seconds."""
        self.on = {name: self.active(name, t) for name in CATALOGUE}
        if h <= 0:
            return
        for name, tau in _ONSET_TAU.items():
            target = 1.0 if self.on[name] else 0.0
            self.level[name] = target + (self.level[name] - target) * _decay(h, tau)

    def __getitem__(self, name: str) -> float:
        return self.level[name]

    def is_on(self, name: str) -> bool:
        return self.on.get(name, False)


class Kiln:
    """Kiln, 5-stage preheater + calciner, grate cooler: feed, fuel, gas, temperatures, drives."""

    def __init__(self, noise: _Noise, lines: int) -> None:
        self.n = noise
        ones = np.ones(lines)
        self.mode = np.full(lines, RUN)
        self.theta = ones.copy()  # thermal level of the kiln system, 1 = at operating temperature
        self.bed = ones.copy()  # cooler clinker bed heat, 1 = nominal
        offsets = noise.rng.uniform(-4.0, 4.0, lines)
        self.feed_sp = NOMINAL_FEED_TPH + offsets
        self.feed_cmd = self.feed_sp.copy()
        self.feed = self.feed_sp.copy()
        self.shc_offset = noise.rng.uniform(-6.0, 6.0, lines)
        self.ou = {k: np.zeros(lines) for k in _KILN_OU}
        self.speed = 3.8 * self.feed / NOMINAL_FEED_TPH
        self.gas = NOMINAL_GAS_KNM3_PER_H * ones
        self.o2_in = 2.3 * ones
        self.temps = {k: v * ones for k, v in _KILN_RUN_TEMPS.items()}
        self.shc = TARGET_SHC_KCAL_PER_KG * ones
        self.fa = BASE_FALSE_AIR_PCT * ones
        heat = self._heat_demand(np.full(lines, True))
        self.fuel_calc = heat / COAL_NCV_MJ_PER_KG * CALCINER_HEAT_SHARE
        self.fuel_main = heat / COAL_NCV_MJ_PER_KG - self.fuel_calc
        self.free_lime = 1.3 * ones
        self.calc_degree = 92.5 * ones
        self.kwh = noise.rng.uniform(2e7, 9e7, lines).round()
        self.burner = 0.0
        self.run_temps: dict[str, Arr] = {k: v * ones for k, v in _KILN_RUN_TEMPS.items()}

    @property
    def clinker(self) -> Arr:
        return self.feed / FEED_TO_CLINKER

    @property
    def fuel(self) -> Arr:
        return self.fuel_main + self.fuel_calc

    @property
    def running(self) -> BArr:
        return np.asarray(self.speed > 0.5)

    def drives_kw(self) -> tuple[Arr, Arr, Arr]:
        spd = self.speed / 3.8
        load = np.clip(self.feed / NOMINAL_FEED_TPH, 0.0, 1.3)
        main = np.where(self.speed > 0.05, 60.0 + 440.0 * spd * (0.45 + 0.55 * load) + self.ou["drive"], 0.0)
        id_fan = 2300.0 * (self.gas / NOMINAL_GAS_KNM3_PER_H) ** 1.5
        cooler = 250.0 + 1450.0 * np.maximum(self.clinker / NOMINAL_CLINKER_TPH, 0.25 * self.bed)
        return main, id_fan, cooler

    def _heat_demand(self, run: BArr) -> Arr:
        """GJ/h the burners must deliver (docs/kpis.md §1: heat = SHC x clinker; SHC in kcal/kg)."""
        variable = (1.0 - FIXED_HEAT_LOSS_FRACTION) * self.shc * self.clinker
        fixed = FIXED_HEAT_LOSS_FRACTION * TARGET_SHC_KCAL_PER_KG * NOMINAL_CLINKER_TPH
        heat_run = KJ_PER_KCAL * 1e-3 * (variable + fixed)
        nominal = KJ_PER_KCAL * 1e-3 * TARGET_SHC_KCAL_PER_KG * NOMINAL_CLINKER_TPH
        return np.where(run, np.maximum(heat_run, HEAT_UP_FIRING_FRACTION * nominal), 0.0)

    def step(self, h: float, t0: float, t1: float, sev: Severity, stop: bool, ambient: Arr) -> None:
        z = self.n.z(len(_KILN_OU))
        u = self.n.u(2)
        for i, (name, (sigma, tau)) in enumerate(_KILN_OU.items()):
            self.ou[name] = _ou(self.ou[name], sigma, tau, h, z[i])
        # operator feed setpoint steps (Poisson, ~every 4 h)
        step_evt = u[0] < h / (4 * 3600.0)
        self.feed_sp = np.where(step_evt, NOMINAL_FEED_TPH + (u[1] - 0.5) * 24.0, self.feed_sp)

        # mode machine: stop -> heat-up on the main burner -> feed ramp
        self.mode = np.where(stop, STOP, np.where(self.mode == STOP, HEAT, self.mode))
        self.mode = np.where((self.mode == HEAT) & (self.theta >= 0.9), RUN, self.mode)
        run = self.mode == RUN
        ramp = NOMINAL_FEED_TPH / 2700.0 * h  # 45 min from 0 to nominal
        self.feed_cmd = np.where(run, self.feed_cmd + np.clip(self.feed_sp - self.feed_cmd, -ramp, ramp), 0.0)
        self.feed = _lag_settle(self.feed, self.feed_cmd, h, 20.0)

        self.burner = sev["burner_inefficiency"]
        self.fa = BASE_FALSE_AIR_PCT + self.ou["fa"] + LEAK_FALSE_AIR_PCT * sev["false_air_leak"]
        self.shc = (
            TARGET_SHC_KCAL_PER_KG
            + self.shc_offset
            + self.ou["shc"]
            + SHC_KCAL_PER_FALSE_AIR_PCT * (self.fa - BASE_FALSE_AIR_PCT)
        ) * (1.0 + BURNER_SHC_PENALTY * self.burner)
        nominal_heat = KJ_PER_KCAL * 1e-3 * TARGET_SHC_KCAL_PER_KG * NOMINAL_CLINKER_TPH
        heat = np.where(self.mode == HEAT, HEAT_UP_FIRING_FRACTION * nominal_heat, self._heat_demand(run))
        fuel_total = heat / COAL_NCV_MJ_PER_KG  # GJ/h / (GJ/t) = t/h
        share = np.where(
            run,
            (CALCINER_HEAT_SHARE + self.ou["share"]) * np.clip(self.feed / (0.3 * NOMINAL_FEED_TPH), 0, 1),
            0,
        )
        self.fuel_calc = _lag_settle(self.fuel_calc, fuel_total * share, h, 45.0)
        self.fuel_main = _lag_settle(self.fuel_main, fuel_total * (1.0 - share), h, 45.0)

        firing = self.fuel * COAL_NCV_MJ_PER_KG / nominal_heat
        theta_target = np.clip(firing / 0.3, 0.0, 1.0)
        tau_theta = np.where(theta_target > self.theta, 3600.0, 3 * 3600.0)
        self.theta = theta_target + (self.theta - theta_target) * np.exp(-h / tau_theta)
        bed_target = np.clip(self.clinker / (0.5 * NOMINAL_CLINKER_TPH), 0.0, 1.0)
        self.bed = _lag(self.bed, bed_target, h, 1200.0)

        speed_target = np.where(
            run,
            3.8 * np.clip(self.feed_cmd / NOMINAL_FEED_TPH, 0.25, 1.15),
            np.where(self.mode == HEAT, 0.3, 0.0),
        )
        self.speed = _lag_settle(self.speed, speed_target, h, 30.0)

        gas_run = (
            NOMINAL_GAS_KNM3_PER_H
            * (self.clinker / NOMINAL_CLINKER_TPH)
            * (self.shc / TARGET_SHC_KCAL_PER_KG)
            * (1.0 + self.fa / 100.0)
            / (1.0 + BASE_FALSE_AIR_PCT / 100.0)
        )
        gas_target = np.where(run, np.maximum(gas_run, 110.0), np.where(self.mode == HEAT, 110.0, 80.0))
        self.gas = _lag(self.gas, gas_target, h, 60.0)

        w = np.clip(self.feed / (0.2 * NOMINAL_FEED_TPH), 0.0, 1.0)
        o2_run = 2.3 + self.ou["o2"] - 0.6 * self.burner
        o2_target = np.where(run, w * o2_run + (1 - w) * 10.0, np.where(self.mode == HEAT, 10.0, 20.9))
        self.o2_in = _lag(self.o2_in, o2_target, h, 180.0)

        # temperatures at operating state, then scaled by thermal level / clinker bed and lagged
        shc_dev = self.shc - TARGET_SHC_KCAL_PER_KG
        rt = self.run_temps
        rt["ph_exit"] = (
            DESIGN_PH_EXIT_TEMP_C
            - 2.0
            + 1.2 * (self.fa - BASE_FALSE_AIR_PCT)
            + 0.25 * shc_dev
            + self.ou["ph"]
        )
        rt["burning_zone"] = 1450.0 + self.ou["bz"] - 30.0 * self.burner
        rt["kiln_inlet"] = 1080.0 + 0.3 * shc_dev + 40.0 * self.burner + self.ou["ki"]
        rt["calciner_outlet"] = 890.0 + 8.0 * self.burner + self.ou["cal"]
        rt["tertiary_air"] = 860.0 + self.ou["ta"]
        rt["secondary_air"] = 1030.0 + self.ou["sa"]
        rt["clinker"] = 115.0 + self.ou["clk"]
        rt["cooler_vent"] = 260.0 + 0.5 * self.ou["clk"] + self.ou["vent"]
        kiln_side = ("ph_exit", "burning_zone", "kiln_inlet", "calciner_outlet")
        for name, tau in _KILN_TEMP_TAU.items():
            level = self.theta if name in kiln_side else self.bed
            target = ambient + level * (rt[name] - ambient)
            self.temps[name] = _lag(self.temps[name], target, h, tau)

        main, id_fan, cooler = self.drives_kw()
        self.kwh = self.kwh + (main + id_fan + cooler) * h / 3600.0
        if _crossed(t0, t1, 3600.0):  # hourly lab sample while producing
            zl = self.n.z(2)
            producing = run & (self.feed > 0.5 * NOMINAL_FEED_TPH)
            fl = 1.3 + 0.004 * (1450.0 - rt["burning_zone"]) + 0.15 * zl[0]
            self.free_lime = np.where(producing, np.clip(fl, 0.4, 3.5), self.free_lime)
            cd = 92.5 - 2.0 * self.burner + 0.6 * zl[1]
            self.calc_degree = np.where(producing, cd, self.calc_degree)

    def measure(self) -> dict[str, Arr]:
        z = self.n.z(24)
        run = self.mode == RUN
        w = np.clip(self.feed / (0.2 * NOMINAL_FEED_TPH), 0.0, 1.0) * run
        main, id_fan, cooler = self.drives_kw()
        o2_out = (self.fa / 100.0 * 21.0 + self.o2_in) / (1.0 + self.fa / 100.0)  # docs/kpis.md §8 inverted
        co_in = (
            w * (0.03 * np.exp(0.25 * z[0]) + 0.30 * self.burner * np.exp(0.15 * z[1]))
            + (1 - w) * 0.005 * run
        )
        co_ph = w * (0.05 * np.exp(0.25 * z[2]) + 0.15 * self.burner)
        gas_ratio = self.gas / NOMINAL_GAS_KNM3_PER_H
        temps = self.temps
        return {
            "feed_tph": self.feed * (1 + 0.008 * z[3]),
            "main_burner_coal_tph": self.fuel_main * (1 + 0.015 * z[4]),
            "calciner_coal_tph": self.fuel_calc * (1 + 0.015 * z[5]),
            "main_drive_kw": main * (1 + 0.02 * z[6]),
            "kiln_inlet_o2_pct": self.o2_in + 0.04 * z[7],
            "kiln_inlet_co_pct": co_in,
            "ph_exit_o2_pct": o2_out + 0.03 * z[8],
            "ph_exit_co_pct": co_ph,
            "ph_exit_gas_knm3_per_h": self.gas * (1 + 0.01 * z[9]),
            "id_fan_kw": id_fan * (1 + 0.01 * z[10]),
            "cooler_fans_kw": cooler * (1 + 0.01 * z[11]),
            "calcination_degree_pct": self.calc_degree,
            "free_lime_pct": self.free_lime,
            "speed_rpm": self.speed * (1 + 0.002 * z[12]),
            "energy_kwh_total": self.kwh,
            "burning_zone_temp_c": temps["burning_zone"] + 4.0 * z[13],
            "kiln_inlet_temp_c": temps["kiln_inlet"] + 3.0 * z[14],
            "calciner_outlet_temp_c": temps["calciner_outlet"] + 2.0 * z[15],
            "tertiary_air_temp_c": temps["tertiary_air"] + 4.0 * z[16],
            "secondary_air_temp_c": temps["secondary_air"] + 4.0 * z[17],
            "ph_exit_temp_c": temps["ph_exit"] + 1.0 * z[18],
            "cooler_vent_temp_c": temps["cooler_vent"] + 2.0 * z[19],
            "clinker_temp_c": temps["clinker"] + 2.0 * z[20],
            "ph_exit_draft_mbar": -56.0 * gas_ratio**2 + 0.8 * z[21],
            "hood_draft_mbar": np.where(run, -0.30 + self.ou["hood"], -0.05) + 0.02 * z[22],
            "running": self.running.astype(np.float64),
        }


# name: (stationary sigma, correlation time s)
_KILN_OU: Final = {
    "shc": (5.0, 6 * 3600.0),
    "fa": (0.3, 12 * 3600.0),
    "o2": (0.15, 1800.0),
    "share": (0.01, 4 * 3600.0),
    "drive": (15.0, 6 * 3600.0),
    "ph": (3.0, 4 * 3600.0),
    "bz": (12.0, 3600.0),
    "ki": (10.0, 3600.0),
    "cal": (5.0, 3600.0),
    "ta": (15.0, 2 * 3600.0),
    "sa": (15.0, 2 * 3600.0),
    "clk": (6.0, 2 * 3600.0),
    "vent": (6.0, 3600.0),
    "hood": (0.05, 1800.0),
}
_KILN_RUN_TEMPS: Final = {
    "ph_exit": DESIGN_PH_EXIT_TEMP_C - 2.0,
    "burning_zone": 1450.0,
    "kiln_inlet": 1080.0,
    "calciner_outlet": 890.0,
    "tertiary_air": 860.0,
    "secondary_air": 1030.0,
    "clinker": 115.0,
    "cooler_vent": 260.0,
}
_KILN_TEMP_TAU: Final = {
    "ph_exit": 600.0,
    "burning_zone": 600.0,
    "kiln_inlet": 300.0,
    "calciner_outlet": 300.0,
    "tertiary_air": 600.0,
    "secondary_air": 600.0,
    "clinker": 600.0,
    "cooler_vent": 300.0,
}


class _LevelMill:
    """A mill that fills a silo/bin and runs on level hysteresis (raw mill, coal mill)."""

    def __init__(
        self,
        noise: _Noise,
        lines: int,
        *,
        feed_nominal: float,
        capacity_t: float,
        level0: float,
        stop_at: float,
        start_at: float,
        yield_: float,
        ramp_secs: float,
        feed_sigma: float,
        outlet_c: float,
    ) -> None:
        self.n = noise
        self.feed_nominal = feed_nominal
        self.capacity = capacity_t
        self.level = np.full(lines, level0 * capacity_t)
        self.stop_at, self.start_at, self.yield_, self.ramp_secs = stop_at, start_at, yield_, ramp_secs
        self.feed_sigma = feed_sigma
        self.on = np.ones(lines, dtype=np.bool_)
        self.want = np.ones(lines, dtype=np.bool_)
        self.ou_feed = np.zeros(lines)
        self.ou_temp = np.zeros(lines)
        self.feed_cmd = np.full(lines, feed_nominal)
        self.feed = self.feed_cmd.copy()
        self.outlet = np.full(lines, outlet_c)
        self.kwh = noise.rng.uniform(2e7, 9e7, lines).round()

    def step_level(self, h: float, demand_tph: Arr, stop: bool) -> None:
        z = self.n.z(2)
        self.ou_feed = _ou(self.ou_feed, self.feed_sigma, 2 * 3600.0, h, z[0])
        self.ou_temp = _ou(self.ou_temp, 1.5, 3600.0, h, z[1])
        self.level = np.clip(
            self.level + (self.yield_ * self.feed - demand_tph) * h / 3600.0, 0, self.capacity
        )
        frac = self.level / self.capacity
        self.want = np.where(frac >= self.stop_at, False, np.where(frac <= self.start_at, True, self.want))
        self.want &= not stop
        sp = np.where(self.want, self.feed_nominal + self.ou_feed, 0.0)
        ramp = self.feed_nominal / self.ramp_secs * h
        self.feed_cmd = np.clip(self.feed_cmd + np.clip(sp - self.feed_cmd, -ramp, ramp), 0.0, None)
        self.on = self.want | (self.feed_cmd > 0.0)
        self.feed = _lag_settle(self.feed, self.feed_cmd, h, 20.0)


class RawMill(_LevelMill):
    """Vertical roller mill filling a 20,000 t homogenising silo (docs/kpis.md §2: 14-18 kWh/t incl. fan)."""

    def __init__(self, noise: _Noise, lines: int) -> None:
        super().__init__(
            noise,
            lines,
            feed_nominal=415.0,
            capacity_t=20000.0,
            level0=0.60,
            stop_at=0.92,
            start_at=0.65,
            yield_=0.95,
            ramp_secs=180.0,
            feed_sigma=8.0,
            outlet_c=90.0,
        )
        self.r90 = np.full(lines, 12.5)

    def power(self) -> tuple[Arr, Arr, Arr]:
        load = self.feed / self.feed_nominal
        on = self.on.astype(np.float64)
        main = on * (0.40 * 3700.0 + 0.60 * 3700.0 * load)  # idle share: rollers lifted
        fan = on * 2450.0 * (0.92 + 0.08 * load)
        sep = on * 200.0
        return main, fan, sep

    def step(self, h: float, t0: float, t1: float, kiln_feed: Arr, stop: bool, ambient: Arr) -> None:
        self.step_level(h, kiln_feed, stop)
        self.outlet = _lag(self.outlet, np.where(self.on, 90.0 + self.ou_temp, ambient + 15.0), h, 600.0)
        main, fan, sep = self.power()
        self.kwh = self.kwh + (main + fan + sep) * h / 3600.0
        if _crossed(t0, t1, 3600.0):
            self.r90 = np.where(self.on, 12.5 + 0.6 * self.n.z(1)[0], self.r90)

    def measure(self) -> dict[str, Arr]:
        z = self.n.z(6)
        main, fan, sep = self.power()
        return {
            "feed_tph": self.feed * (1 + 0.01 * z[0]),
            "main_drive_kw": main * (1 + 0.015 * z[1]),
            "fan_kw": fan * (1 + 0.01 * z[2]),
            "separator_kw": sep * (1 + 0.02 * z[3]),
            "r90_pct": self.r90,
            "outlet_temp_c": self.outlet + 0.5 * z[4],
            "energy_kwh_total": self.kwh,
            "running": self.on.astype(np.float64),
        }


class CoalMill(_LevelMill):
    """Coal VRM filling a 250 t fine-coal bin drawn by the kiln burners (docs/kpis.md §2: 18-25 kWh/t)."""

    def __init__(self, noise: _Noise, lines: int) -> None:
        super().__init__(
            noise,
            lines,
            feed_nominal=28.0,
            capacity_t=250.0,
            level0=0.55,
            stop_at=0.92,
            start_at=0.35,
            yield_=1.0,
            ramp_secs=120.0,
            feed_sigma=0.6,
            outlet_c=70.0,
        )
        self.r90 = np.full(lines, 11.0)

    def power(self) -> tuple[Arr, Arr]:
        load = self.feed / self.feed_nominal
        on = self.on.astype(np.float64)
        main = on * (0.45 * 470.0 + 0.55 * 470.0 * load)
        fan = on * 120.0 * (0.9 + 0.1 * load)
        return main, fan

    def step(self, h: float, t0: float, t1: float, fuel_tph: Arr, stop: bool, ambient: Arr) -> None:
        self.step_level(h, fuel_tph, stop)
        self.outlet = _lag(self.outlet, np.where(self.on, 70.0 + self.ou_temp, ambient + 10.0), h, 300.0)
        main, fan = self.power()
        self.kwh = self.kwh + (main + fan) * h / 3600.0
        if _crossed(t0, t1, 3600.0):
            self.r90 = np.where(self.on, 11.0 + 0.6 * self.n.z(1)[0], self.r90)

    def measure(self) -> dict[str, Arr]:
        z = self.n.z(4)
        main, fan = self.power()
        return {
            "feed_tph": self.feed * (1 + 0.01 * z[0]),
            "main_drive_kw": main * (1 + 0.015 * z[1]),
            "fan_kw": fan * (1 + 0.01 * z[2]),
            "r90_pct": self.r90,
            "outlet_temp_c": self.outlet + 0.4 * z[3],
            "energy_kwh_total": self.kwh,
            "running": self.on.astype(np.float64),
        }


class CementMill:
    """Closed-circuit ball mill; product (Blaine) changes ~every 8 h (docs/kpis.md §2: 32-40 kWh/t)."""

    def __init__(self, noise: _Noise, lines: int) -> None:
        self.n = noise
        self.blaine_target = np.where(noise.rng.random(lines) < 0.5, 3400.0, 3600.0)
        self.feed_sp = self._feed_for(self.blaine_target)
        self.feed_cmd = self.feed_sp.copy()
        self.feed = self.feed_sp.copy()
        self.on = np.ones(lines, dtype=np.bool_)
        self.blaine = self.blaine_target.copy()
        self.blaine_read = self.blaine_target.copy()
        self.outlet = np.full(lines, 108.0)
        self.ou_temp = np.zeros(lines)
        self.kwh = noise.rng.uniform(2e7, 9e7, lines).round()

    @staticmethod
    def _feed_for(blaine: Arr) -> Arr:
        return np.asarray(CEMENT_FEED_TPH * (3500.0 / blaine) ** 1.3, dtype=np.float64)

    def power(self) -> tuple[Arr, Arr, Arr]:
        load = self.feed / CEMENT_FEED_TPH
        on = self.on.astype(np.float64)
        main = on * 4000.0 * (0.88 + 0.12 * load)  # ball charge keeps drawing power when empty
        sep = on * 170.0 * (self.blaine_target / 3500.0) ** 2
        fan = on * 560.0
        return main, sep, fan

    def step(self, h: float, t0: float, t1: float, sev: Severity, stop: bool, ambient: Arr) -> None:
        z = self.n.z(1)
        u = self.n.u(1)
        self.ou_temp = _ou(self.ou_temp, 1.5, 3600.0, h, z[0])
        switch = u[0] < h / (8 * 3600.0)
        self.blaine_target = np.where(switch, 7000.0 - self.blaine_target, self.blaine_target)
        self.feed_sp = self._feed_for(self.blaine_target)
        empty = sev["mill_running_empty"]
        want = not stop
        target = (self.feed_sp * (1.0 - empty) + 0.5 * empty) if want else np.zeros_like(self.feed_sp)
        ramp = CEMENT_FEED_TPH / 300.0 * h
        self.feed_cmd = np.clip(self.feed_cmd + np.clip(target - self.feed_cmd, -ramp, ramp), 0.0, None)
        self.on = np.full_like(self.on, want) | (self.feed_cmd > 0.0)
        self.feed = _lag_settle(self.feed, self.feed_cmd, h, 30.0)
        starved = np.clip(1.0 - self.feed / self.feed_sp, 0.0, 1.0)
        self.blaine = _lag(self.blaine, self.blaine_target + 700.0 * starved, h, 1200.0)
        out_target = np.where(self.on, 108.0 + 22.0 * starved + self.ou_temp, ambient + 10.0)
        self.outlet = _lag(self.outlet, out_target, h, 600.0)
        main, sep, fan = self.power()
        self.kwh = self.kwh + (main + sep + fan) * h / 3600.0
        if _crossed(t0, t1, 600.0):  # online analyser every 10 min
            self.blaine_read = np.where(self.on, self.blaine + 30.0 * self.n.z(1)[0], self.blaine_read)

    def measure(self) -> dict[str, Arr]:
        z = self.n.z(5)
        main, sep, fan = self.power()
        return {
            "feed_tph": self.feed * (1 + 0.01 * z[0]),
            "main_drive_kw": main * (1 + 0.01 * z[1]),
            "separator_kw": sep * (1 + 0.02 * z[2]),
            "fan_kw": fan * (1 + 0.01 * z[3]),
            "fineness_blaine_cm2_per_g": self.blaine_read,
            "outlet_temp_c": self.outlet + 0.4 * z[4],
            "energy_kwh_total": self.kwh,
            "running": self.on.astype(np.float64),
        }


class Whr:
    """SP boiler on PH exit gas + AQC boiler on cooler air, one turbine-generator (docs/kpis.md §5)."""

    def __init__(self, noise: _Noise, lines: int, kiln: Kiln) -> None:
        self.n = noise
        self.ou_aqc = np.zeros(lines)
        self.aqc_in = np.full(lines, 380.0)
        self.q_nominal = self._heat_mw(kiln, 0.0)[0]
        self.q = self.q_nominal.copy()
        self.gen = WHR_EFFICIENCY * self.q * 1000.0
        self.on = np.ones(lines, dtype=np.bool_)
        self.sev = 0.0
        _, self.sp_out, self.aqc_out = self._heat_mw(kiln, 0.0)
        self.ph_in = kiln.temps["ph_exit"].copy()
        self.kwh = noise.rng.uniform(2e7, 9e7, lines).round()

    def _heat_mw(self, kiln: Kiln, sev: float) -> tuple[Arr, Arr, Arr]:
        t_ph = kiln.temps["ph_exit"] - 3.0  # duct loss to the SP boiler
        eps_sp = 0.65 - 0.25 * sev  # fouling
        sp_out = t_ph - eps_sp * np.maximum(t_ph - 150.0, 0.0)
        q_sp = kiln.gas * 1000.0 * GAS_CP_KJ_PER_NM3_K * (t_ph - sp_out) / 3.6e6
        air = AQC_AIR_KNM3_PER_H * np.maximum(kiln.clinker / NOMINAL_CLINKER_TPH, 0.25 * kiln.bed)
        eps_aqc = 0.93 - 0.13 * sev
        aqc_out = self.aqc_in - eps_aqc * np.maximum(self.aqc_in - 80.0, 0.0)
        q_aqc = air * 1000.0 * AIR_CP_KJ_PER_NM3_K * (self.aqc_in - aqc_out) / 3.6e6
        return np.asarray(q_sp + q_aqc), np.asarray(sp_out), np.asarray(aqc_out)

    def step(self, h: float, kiln: Kiln, sev: Severity, ambient: Arr) -> None:
        z = self.n.z(1)
        self.sev = sev["whr_underperformance"]
        self.ou_aqc = _ou(self.ou_aqc, 5.0, 2 * 3600.0, h, z[0])
        aqc_run = 380.0 + 0.6 * (kiln.run_temps["clinker"] - 115.0) + self.ou_aqc - 45.0 * self.sev
        self.aqc_in = _lag(self.aqc_in, ambient + kiln.bed * (aqc_run - ambient), h, 300.0)
        self.q, self.sp_out, self.aqc_out = self._heat_mw(kiln, self.sev)
        self.ph_in = kiln.temps["ph_exit"] - 3.0
        self.on = np.where(self.on, self.q >= 0.2 * self.q_nominal, self.q > 0.35 * self.q_nominal).astype(
            np.bool_
        )
        eta = WHR_EFFICIENCY - 0.03 * self.sev
        target = self.on * eta * self.q * 1000.0
        self.gen = np.where(self.on, _lag(self.gen, target, h, 480.0), 0.0)
        self.kwh = self.kwh + self.gen * h / 3600.0

    def aux_kw(self) -> Arr:
        return np.where(self.on, 300.0 + 0.065 * self.gen, 250.0)

    def measure(self) -> dict[str, Arr]:
        z = self.n.z(10)
        load = self.gen / 7865.0
        return {
            "generator_kw": self.gen * (1 + 0.005 * z[0]),
            "aux_kw": self.aux_kw() * (1 + 0.02 * z[1]),
            "main_steam_pressure_mpa": np.where(self.on, 1.25 + 0.35 * load, 0.3) + 0.01 * z[2],
            "main_steam_tph": self.gen / 215.0 * (1 + 0.01 * z[3]),
            "condenser_pressure_kpa": 8.0 + 5.0 * self.sev + 0.1 * z[4],
            "aqc_inlet_temp_c": self.aqc_in + 2.0 * z[5],
            "aqc_outlet_temp_c": self.aqc_out + 1.0 * z[6],
            "sp_inlet_temp_c": self.ph_in + 1.0 * z[7],
            "sp_outlet_temp_c": self.sp_out + 1.0 * z[8],
            "main_steam_temp_c": np.where(self.on, self.aqc_in - 25.0, self.aqc_in * 0.6) + 1.0 * z[9],
            "generator_kwh_total": self.kwh,
            "running": self.on.astype(np.float64),
        }


class Site:
    """Site-wide signals: incomer (grid import), compressor house, crusher, packing, ambient."""

    def __init__(self, noise: _Noise, lines: int, start: datetime) -> None:
        self.n = noise
        self.lines = lines
        self.start = start
        self.ou_amb = np.zeros(1)
        self.ambient = np.full(1, 15.0)
        self.kwh_in = noise.rng.uniform(2e8, 9e8, 1).round()
        self.kwh_comp = noise.rng.uniform(1e7, 5e7, 1).round()
        self.prod_frac = np.ones(1)
        self.producing = True
        self.day = True
        self.leak = 0.0
        self.consumption = np.zeros(1)
        self.generation = np.zeros(1)
        self.t = 0.0

    def hour(self, t: float) -> float:
        ts = self.start + timedelta(seconds=t)
        return ts.hour + ts.minute / 60.0

    def step_ambient(self, h: float, t: float) -> None:
        z = self.n.z(1)[:, :1]
        self.ou_amb = _ou(self.ou_amb, 3.0, 2 * 86400.0, h, z[0])
        self.ambient = 15.0 + 7.0 * math.sin(2 * math.pi * (self.hour(t) - 9.0) / 24.0) + self.ou_amb

    def air_nm3_per_min(self) -> Arr:
        return np.asarray(self.lines * (110.0 * self.prod_frac + 25.0 + 75.0 * self.leak))

    def compressor_kw(self) -> Arr:
        return np.asarray(self.lines * 120.0 + 5.0 * self.air_nm3_per_min())

    def crusher_kw(self) -> float:
        wobble = 0.75 + 0.25 * abs(math.sin(self.t / 97.0))
        return self.lines * 620.0 * wobble if (self.day and self.producing) else 0.0

    def packing_kw(self) -> float:
        return self.lines * 360.0 if (self.day and self.producing) else 0.0

    def step(
        self,
        h: float,
        t: float,
        sev: Severity,
        sections_kw: Arr,
        generation_kw: Arr,
        prod_frac: Arr,
        producing: bool,
    ) -> None:
        self.t = t
        self.leak = sev["compressed_air_leak"]
        hr = self.hour(t)
        self.day = 6.0 <= hr < 22.0
        self.prod_frac = np.asarray([prod_frac.mean()])
        self.producing = producing
        other = self.lines * (400.0 + 1200.0 * self.prod_frac)
        self.consumption = np.asarray(
            sections_kw.sum() + self.compressor_kw() + self.crusher_kw() + self.packing_kw() + other
        )
        self.generation = np.asarray([generation_kw.sum()])
        incomer = self.consumption - self.generation
        self.kwh_in = self.kwh_in + np.maximum(incomer, 0.0) * h / 3600.0
        self.kwh_comp = self.kwh_comp + self.compressor_kw() * h / 3600.0

    def measure(self) -> dict[str, Arr]:
        z = self.n.z(7)[:, :1]
        air = self.air_nm3_per_min()
        return {
            "incomer_kw": (self.consumption - self.generation) + 0.003 * self.consumption * z[0],
            "compressor_kw": self.compressor_kw() * (1 + 0.03 * z[1]),
            "compressor_header_bar": 7.0 - 0.3 * air / (135.0 * self.lines) + 0.03 * z[2],
            "compressed_air_nm3_per_min": air * (1 + 0.02 * z[3]),
            "crusher_kw": self.crusher_kw() * (1 + 0.05 * z[4]),
            "packing_kw": self.packing_kw() * (1 + 0.05 * z[5]),
            "incomer_kwh_total": self.kwh_in,
            "compressor_kwh_total": self.kwh_comp,
            "ambient_temp_c": self.ambient + 0.2 * z[6],
            "production_running": np.asarray([1.0 if self.producing else 0.0]),
        }


class _Filler:
    """Cheap, vectorised filler signals for load tests: slow sine + noise per tag."""

    def __init__(self, seq: np.random.SeedSequence, n: int) -> None:
        rng = np.random.default_rng(seq)
        self.rng = rng
        self.base = rng.uniform(10.0, 90.0, n)
        self.amp = rng.uniform(1.0, 5.0, n)
        self.omega = 2 * np.pi / rng.uniform(60.0, 3600.0, n)
        self.phase = rng.uniform(0.0, 2 * np.pi, n)

    def values(self, t: float) -> Arr:
        noise = 0.2 * self.rng.standard_normal(self.base.shape[0])
        return np.asarray(self.base + self.amp * np.sin(self.omega * t + self.phase) + noise)


class PlantModel:
    """The whole plant: ``lines`` kiln lines, the site, scenarios, and the served value vector."""

    def __init__(
        self,
        *,
        scenario: str | Sequence[ScheduledScenario] = "normal",
        seed: int = 1,
        lines: int = 1,
        extra_tags: int = 0,
        start: datetime = DEFAULT_START,
    ) -> None:
        self.scenarios = parse_scenarios(scenario) if isinstance(scenario, str) else tuple(scenario)
        self.seed = seed
        self.lines = lines
        self.start = start
        self.tagmap: TagMap = build_tagmap(lines=lines, extra_tags=extra_tags)
        self.codec = RegisterCodec(self.tagmap)
        self.t = 0.0
        seqs = np.random.SeedSequence(seed).spawn(7)
        self.sev = Severity(self.scenarios)
        self.kiln = Kiln(_Noise(seqs[0], lines), lines)
        self.raw = RawMill(_Noise(seqs[1], lines), lines)
        self.coal = CoalMill(_Noise(seqs[2], lines), lines)
        self.cement = CementMill(_Noise(seqs[3], lines), lines)
        self.whr = Whr(_Noise(seqs[4], lines), lines, self.kiln)
        self.site = Site(_Noise(seqs[5], lines), lines, start)
        self.filler = _Filler(seqs[6], extra_tags)
        self._slots = self._build_slots()
        self._lo, self._hi, self._ranged = self._instrument_limits()
        self._frozen_idx, self._frozen_flagged = self._frozen_slots()
        self._freeze_since: float | None = None
        self._served = np.zeros(len(self.tagmap))
        self._status = np.zeros(len(self.tagmap), dtype=np.int8)
        self.site.step_ambient(0.0, 0.0)
        self._update_site(0.0)
        self._publish(freeze=False)

    # --- structure ---------------------------------------------------------------------------
    def _build_slots(self) -> dict[tuple[str, str], npt.NDArray[np.intp]]:
        """(asset type, signal) -> tag indices for lines 1..N (or the single plant tag)."""
        slots: dict[tuple[str, str], list[int]] = {}
        for t in self.tagmap.tags:
            if t.asset_type != "filler":
                slots.setdefault((t.asset_type, t.signal), []).append(t.index)
        return {k: np.array(v, dtype=np.intp) for k, v in slots.items()}

    def _instrument_limits(self) -> tuple[Arr, Arr, BArr]:
        n = len(self.tagmap)
        lo, hi, ranged = np.full(n, -np.inf), np.full(n, np.inf), np.zeros(n, dtype=np.bool_)
        for t in self.tagmap.tags:
            if t.instrument is not None:
                lo[t.index], hi[t.index], ranged[t.index] = t.instrument[0], t.instrument[1], True
        return lo, hi, ranged

    def _frozen_slots(self) -> tuple[npt.NDArray[np.intp], BArr]:
        idx: list[int] = []
        flagged: list[bool] = []
        for kind, signal, noticed in FROZEN_SIGNALS:
            for i in self._slots[(kind, signal)]:
                idx.append(int(i))
                flagged.append(noticed)
        return np.array(idx, dtype=np.intp), np.array(flagged, dtype=np.bool_)

    # --- time --------------------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        """Simulated wall-clock time (``start`` + elapsed simulated seconds)."""
        return self.start + timedelta(seconds=self.t)

    def step(self, dt: float) -> None:
        """Advance ``dt`` simulated seconds (internally in substeps of at most 60 s)."""
        if not dt > 0:
            raise ValueError("dt must be positive")
        n = max(1, math.ceil(dt / MAX_SUBSTEP_SECS - 1e-9))
        h = dt / n
        for _ in range(n):
            self._substep(h)
        self._publish()

    def advance(self, secs: float, *, step_secs: float = 1.0) -> None:
        """Step ``secs`` simulated seconds in steps of ``step_secs`` (a reading after each)."""
        remaining = secs
        while remaining > 1e-9:
            dt = min(step_secs, remaining)
            self.step(dt)
            remaining -= dt

    def _substep(self, h: float) -> None:
        t0, t1 = self.t, self.t + h
        self.sev.update(t1, h)
        stop_all = self.sev.is_on("compressed_air_leak")
        kiln_stop = stop_all or self.sev.is_on("kiln_stop")
        self.site.step_ambient(h, t1)
        amb = np.broadcast_to(self.site.ambient, (self.lines,)).astype(np.float64)
        self.kiln.step(h, t0, t1, self.sev, kiln_stop, amb)
        self.raw.step(h, t0, t1, self.kiln.feed, stop_all, amb)
        self.coal.step(h, t0, t1, self.kiln.fuel, stop_all, amb)
        self.cement.step(h, t0, t1, self.sev, stop_all, amb)
        self.whr.step(h, self.kiln, self.sev, amb)
        self.t = t1
        self._update_site(h)

    def _update_site(self, h: float) -> None:
        main, id_fan, cooler = self.kiln.drives_kw()
        raw = sum(self.raw.power())
        coal = sum(self.coal.power())
        cement = sum(self.cement.power())
        sections = np.asarray(main + id_fan + cooler + raw + coal + cement + self.whr.aux_kw())
        kiln_on = self.kiln.running
        prod = 0.4 * kiln_on + 0.2 * self.raw.on + 0.1 * self.coal.on + 0.3 * self.cement.on
        producing = bool((kiln_on | self.raw.on | self.coal.on | self.cement.on).any())
        self.site.step(
            h, self.t, self.sev, sections, self.whr.gen, np.asarray(prod, dtype=np.float64), producing
        )

    # --- outputs -----------------------------------------------------------------------------
    def _publish(self, *, freeze: bool = True) -> None:
        """Take one reading of every signal: noise, transmitter clamp, freeze, PLC quantization."""
        raw = np.zeros(len(self.tagmap))
        for kind, section in (
            ("kiln", self.kiln.measure()),
            ("raw_mill", self.raw.measure()),
            ("coal_mill", self.coal.measure()),
            ("cement_mill", self.cement.measure()),
            ("whr", self.whr.measure()),
            ("plant", self.site.measure()),
        ):
            for signal, arr in section.items():
                raw[self._slots[(kind, signal)]] = arr
        if self.tagmap.extra_tags:
            raw[len(raw) - self.tagmap.extra_tags :] = self.filler.values(self.t)
        status = np.zeros(len(raw), dtype=np.int8)
        over = self._ranged & ((raw < self._lo) | (raw > self._hi))
        raw = np.clip(raw, self._lo, self._hi)
        status[over] = SensorStatus.UNCERTAIN_EU_EXCEEDED
        served = self.codec.quantize(raw)
        if freeze and self.sev.is_on("sensor_freeze"):
            # stuck transmitters: the PLC keeps serving the last reading, bit for bit
            if self._freeze_since is None:
                self._freeze_since = self.t
            frozen = self._frozen_idx
            served[frozen] = self._served[frozen]
            status[frozen] = SensorStatus.GOOD
            late = self.t - self._freeze_since >= FREEZE_BAD_AFTER_SECS
            flagged = SensorStatus.BAD_SENSOR_FAILURE if late else SensorStatus.UNCERTAIN_LAST_USABLE
            status[frozen[self._frozen_flagged]] = flagged
        else:
            self._freeze_since = None
        self._served = served
        self._status = status

    def vector(self) -> Arr:
        """Served values in tag-map order (a copy); bits as 0.0/1.0."""
        return self._served.copy()

    def statuses(self) -> npt.NDArray[np.int8]:
        """:class:`SensorStatus` per tag, tag-map order (a copy)."""
        return self._status.copy()

    def values(self) -> dict[str, float]:
        """Served engineering values by tag name, exactly as an agent decodes them."""
        return dict(zip(self.tagmap.names, self._served.tolist(), strict=True))

    def value(self, name: str) -> float:
        return float(self._served[self.tagmap.index[name]])

    def status(self, name: str) -> SensorStatus:
        return SensorStatus(int(self._status[self.tagmap.index[name]]))

    def active_scenarios(self) -> list[str]:
        return sorted({s.name for s in self.scenarios if s.active(self.t)})

    @property
    def plc_reachable(self) -> bool:
        """False while ``plc_dropout`` is on: the runner closes the servers."""
        return not self.sev.active("plc_dropout", self.t)

    @property
    def plc_responsive(self) -> bool:
        """False while ``plc_hang`` is on: the runner swaps the servers for silent listeners."""
        return not self.sev.active("plc_hang", self.t)

    def sample_frame(self, ts: datetime | None = None) -> pl.DataFrame:
        """The current reading as a sample frame (connectors.base.SAMPLE_SCHEMA), for backfill/tests.

        Quality follows :data:`STATUS_QUALITY`; a Bad sensor has no value (null), as on OPC UA.
        """
        from connectors.base import sample_frame

        quality = np.array(list(STATUS_QUALITY.values()), dtype=object)[self._status]
        values = self._served.copy()
        values[self._status == SensorStatus.BAD_SENSOR_FAILURE] = np.nan
        return sample_frame(ts or self.now, self.tagmap.names, values, quality)
