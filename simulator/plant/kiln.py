"""The kiln section: kiln, 5-stage preheater + calciner and grate cooler, vectorised over the lines.

Owns feed and its operator setpoint steps, the stop / heat-up / run mode machine, the fuel mix
(heat = SHC x clinker, docs/kpis.md §1, split between main burner and calciner, docs/kpis.md §6;
RDF to the calciner and sawdust to the main burner at fixed feeder setpoints, coal trimmed to the
rest as the marginal fuel, docs/kpis.md §9), false air and its effect on SHC, PH exit O2, gas flow
and ID fan power (docs/kpis.md §8), the kiln thermal level and temperatures, drive powers, and the
hourly lab samples (free lime, calcination degree). docs/simulator.md describes the ``kiln_stop``,
``false_air_leak``, ``burner_inefficiency`` and ``cooler_air_shortfall`` effects asserted by the
tests; the loss signals move so that the heat-balance attribution of docs/kpis.md §10 can tell the
faults apart (excess air, exit gas and CO, clinker).
"""

from __future__ import annotations

from typing import Final

import numpy as np

from simulator.plant.constants import (
    AF_PERMIT_FEED_FRACTION,
    BASE_FALSE_AIR_PCT,
    BIOMASS_NCV_MJ_PER_KG,
    BIOMASS_TPH,
    BURNER_SHC_PENALTY,
    CALCINER_HEAT_SHARE,
    COAL_NCV_MJ_PER_KG,
    COOLER_SHC_PENALTY_KCAL_PER_KG,
    DESIGN_CLINKER_TEMP_C,
    DESIGN_PH_EXIT_TEMP_C,
    FEED_TO_CLINKER,
    FIXED_HEAT_LOSS_FRACTION,
    HEAT_UP_FIRING_FRACTION,
    KILN_INLET_O2_PCT,
    KJ_PER_KCAL,
    LEAK_FALSE_AIR_PCT,
    NOMINAL_CLINKER_TPH,
    NOMINAL_FEED_TPH,
    NOMINAL_GAS_KNM3_PER_H,
    RDF_NCV_MJ_PER_KG,
    RDF_TPH,
    SHC_KCAL_PER_FALSE_AIR_PCT,
    TARGET_SHC_KCAL_PER_KG,
)
from simulator.plant.dynamics import Arr, BArr, Noise, Severity, crossed, lag, lag_settle, ou_step

RUN, STOP, HEAT = 0, 1, 2  # kiln modes

#: How the faults move the loss signals (docs/kpis.md §10 attribution). Every extra kcal/kg fired
#: warms the PH exit gas by 0.25 °C; beyond that, false air shows as PH exit O2 (excess air) only,
#: the cold air it brings into the top cyclones offsetting its own share of the exit-gas heat; a
#: poor flame carries heat to the back end (PH exit T, kiln inlet) and leaves CO; a cooling-air
#: shortfall shows as clinker temperature.
BURNER_PH_EXIT_RISE_C: Final = 28.0
BURNER_KILN_INLET_CO_PCT: Final = 0.45
BURNER_PH_EXIT_CO_PCT: Final = 0.25
COOLER_CLINKER_RISE_C: Final = 70.0

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
    "rdf": (0.04, 1800.0),  # relative drift of the RDF feeder (bulk density, bridging)
    "bio": (0.03, 1800.0),
}
_KILN_RUN_TEMPS: Final = {
    "ph_exit": DESIGN_PH_EXIT_TEMP_C - 2.0,
    "burning_zone": 1450.0,
    "kiln_inlet": 1080.0,
    "calciner_outlet": 890.0,
    "tertiary_air": 860.0,
    "secondary_air": 1030.0,
    "clinker": DESIGN_CLINKER_TEMP_C,
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


class Kiln:
    """Kiln, 5-stage preheater + calciner, grate cooler: feed, fuel, gas, temperatures, drives."""

    def __init__(self, noise: Noise, lines: int) -> None:
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
        self.o2_in = KILN_INLET_O2_PCT * ones
        self.temps = {k: v * ones for k, v in _KILN_RUN_TEMPS.items()}
        self.shc = TARGET_SHC_KCAL_PER_KG * ones
        self.fa = BASE_FALSE_AIR_PCT * ones
        heat = self._heat_demand(np.full(lines, True))
        self.rdf = RDF_TPH * ones
        self.bio = BIOMASS_TPH * ones
        self.fuel_calc = (heat * CALCINER_HEAT_SHARE - self.rdf * RDF_NCV_MJ_PER_KG) / COAL_NCV_MJ_PER_KG
        self.fuel_main = (
            heat * (1 - CALCINER_HEAT_SHARE) - self.bio * BIOMASS_NCV_MJ_PER_KG
        ) / COAL_NCV_MJ_PER_KG
        self.free_lime = 1.3 * ones
        self.calc_degree = 92.5 * ones
        self.kwh = noise.rng.uniform(2e7, 9e7, lines).round()
        self.burner = 0.0
        self.cooler = 0.0  # cooler_air_shortfall intensity
        self.run_temps: dict[str, Arr] = {k: v * ones for k, v in _KILN_RUN_TEMPS.items()}

    @property
    def clinker(self) -> Arr:
        return self.feed / FEED_TO_CLINKER

    @property
    def coal(self) -> Arr:
        """Coal to both burners, t/h: what the coal mill's fine-coal bin supplies."""
        return self.fuel_main + self.fuel_calc

    @property
    def heat_input(self) -> Arr:
        """GJ/h fired, all fuels (t/h x MJ/kg)."""
        af = self.rdf * RDF_NCV_MJ_PER_KG + self.bio * BIOMASS_NCV_MJ_PER_KG
        return np.asarray(self.coal * COAL_NCV_MJ_PER_KG + af)

    @property
    def running(self) -> BArr:
        return np.asarray(self.speed > 0.5)

    def drives_kw(self) -> tuple[Arr, Arr, Arr]:
        spd = self.speed / 3.8
        load = np.clip(self.feed / NOMINAL_FEED_TPH, 0.0, 1.3)
        main = np.where(self.speed > 0.05, 60.0 + 440.0 * spd * (0.45 + 0.55 * load) + self.ou["drive"], 0.0)
        id_fan = 2300.0 * (self.gas / NOMINAL_GAS_KNM3_PER_H) ** 1.5
        cooler = 250.0 + 1450.0 * np.maximum(self.clinker / NOMINAL_CLINKER_TPH, 0.25 * self.bed)
        return main, id_fan, cooler * (1.0 - 0.15 * self.cooler)  # a tripped fan draws nothing

    def _heat_demand(self, run: BArr) -> Arr:
        """GJ/h the burners must deliver (docs/kpis.md §1: heat = SHC x clinker; SHC in kcal/kg)."""
        variable = (1.0 - FIXED_HEAT_LOSS_FRACTION) * self.shc * self.clinker
        fixed = FIXED_HEAT_LOSS_FRACTION * TARGET_SHC_KCAL_PER_KG * NOMINAL_CLINKER_TPH
        heat_run = KJ_PER_KCAL * 1e-3 * (variable + fixed)
        nominal = KJ_PER_KCAL * 1e-3 * TARGET_SHC_KCAL_PER_KG * NOMINAL_CLINKER_TPH
        return np.where(run, np.maximum(heat_run, HEAT_UP_FIRING_FRACTION * nominal), 0.0)

    def _fire(self, h: float, run: BArr, heat: Arr) -> None:
        """Feed ``heat`` GJ/h: alternative fuels at their setpoints, coal trimmed to the rest.

        The RDF (calciner) and sawdust (main burner) feeders run at fixed setpoints with a slow
        drift while the kiln runs with feed above AF_PERMIT_FEED_FRACTION of nominal, and trip at
        once otherwise (kiln stop, heat-up, early feed ramp). Coal is the marginal fuel: each
        burner's coal makes up its heat share (calciner share docs/kpis.md §6, reduced while the
        feed is low) minus the alternative fuel fired there, so the total heat follows the demand
        whatever the alternative fuels do, as the kiln controller would hold it.
        """
        permit = run & (self.feed >= AF_PERMIT_FEED_FRACTION * NOMINAL_FEED_TPH)
        self.rdf = np.where(permit, lag(self.rdf, RDF_TPH * (1.0 + self.ou["rdf"]), h, 120.0), 0.0)
        self.bio = np.where(permit, lag(self.bio, BIOMASS_TPH * (1.0 + self.ou["bio"]), h, 120.0), 0.0)
        share = np.where(
            run,
            (CALCINER_HEAT_SHARE + self.ou["share"]) * np.clip(self.feed / (0.3 * NOMINAL_FEED_TPH), 0, 1),
            0,
        )
        calc_coal = np.maximum(heat * share - self.rdf * RDF_NCV_MJ_PER_KG, 0.0) / COAL_NCV_MJ_PER_KG
        main_coal = (
            np.maximum(heat * (1.0 - share) - self.bio * BIOMASS_NCV_MJ_PER_KG, 0.0) / COAL_NCV_MJ_PER_KG
        )
        self.fuel_calc = lag_settle(self.fuel_calc, calc_coal, h, 45.0)
        self.fuel_main = lag_settle(self.fuel_main, main_coal, h, 45.0)

    def step(self, h: float, t0: float, t1: float, sev: Severity, stop: bool, ambient: Arr) -> None:
        z = self.n.z(len(_KILN_OU))
        u = self.n.u(2)
        for i, (name, (sigma, tau)) in enumerate(_KILN_OU.items()):
            self.ou[name] = ou_step(self.ou[name], sigma, tau, h, z[i])
        # operator feed setpoint steps (Poisson, ~every 4 h)
        step_evt = u[0] < h / (4 * 3600.0)
        self.feed_sp = np.where(step_evt, NOMINAL_FEED_TPH + (u[1] - 0.5) * 24.0, self.feed_sp)

        # mode machine: stop -> heat-up on the main burner -> feed ramp
        self.mode = np.where(stop, STOP, np.where(self.mode == STOP, HEAT, self.mode))
        self.mode = np.where((self.mode == HEAT) & (self.theta >= 0.9), RUN, self.mode)
        run = self.mode == RUN
        ramp = NOMINAL_FEED_TPH / 2700.0 * h  # 45 min from 0 to nominal
        self.feed_cmd = np.where(run, self.feed_cmd + np.clip(self.feed_sp - self.feed_cmd, -ramp, ramp), 0.0)
        self.feed = lag_settle(self.feed, self.feed_cmd, h, 20.0)

        self.burner = sev["burner_inefficiency"]
        self.cooler = sev["cooler_air_shortfall"]
        self.fa = BASE_FALSE_AIR_PCT + self.ou["fa"] + LEAK_FALSE_AIR_PCT * sev["false_air_leak"]
        self.shc = (
            TARGET_SHC_KCAL_PER_KG
            + self.shc_offset
            + self.ou["shc"]
            + SHC_KCAL_PER_FALSE_AIR_PCT * (self.fa - BASE_FALSE_AIR_PCT)
            + COOLER_SHC_PENALTY_KCAL_PER_KG * self.cooler
        ) * (1.0 + BURNER_SHC_PENALTY * self.burner)
        nominal_heat = KJ_PER_KCAL * 1e-3 * TARGET_SHC_KCAL_PER_KG * NOMINAL_CLINKER_TPH
        heat = np.where(self.mode == HEAT, HEAT_UP_FIRING_FRACTION * nominal_heat, self._heat_demand(run))
        self._fire(h, run, heat)

        firing = self.heat_input / nominal_heat
        theta_target = np.clip(firing / 0.3, 0.0, 1.0)
        tau_theta = np.where(theta_target > self.theta, 3600.0, 3 * 3600.0)
        self.theta = theta_target + (self.theta - theta_target) * np.exp(-h / tau_theta)
        bed_target = np.clip(self.clinker / (0.5 * NOMINAL_CLINKER_TPH), 0.0, 1.0)
        self.bed = lag(self.bed, bed_target, h, 1200.0)

        speed_target = np.where(
            run,
            3.8 * np.clip(self.feed_cmd / NOMINAL_FEED_TPH, 0.25, 1.15),
            np.where(self.mode == HEAT, 0.3, 0.0),
        )
        self.speed = lag_settle(self.speed, speed_target, h, 30.0)

        gas_run = (
            NOMINAL_GAS_KNM3_PER_H
            * (self.clinker / NOMINAL_CLINKER_TPH)
            * (self.shc / TARGET_SHC_KCAL_PER_KG)
            * (1.0 + self.fa / 100.0)
            / (1.0 + BASE_FALSE_AIR_PCT / 100.0)
        )
        gas_target = np.where(run, np.maximum(gas_run, 110.0), np.where(self.mode == HEAT, 110.0, 80.0))
        self.gas = lag(self.gas, gas_target, h, 60.0)

        w = np.clip(self.feed / (0.2 * NOMINAL_FEED_TPH), 0.0, 1.0)
        o2_run = KILN_INLET_O2_PCT + self.ou["o2"] - 0.6 * self.burner
        o2_target = np.where(run, w * o2_run + (1 - w) * 10.0, np.where(self.mode == HEAT, 10.0, 20.9))
        self.o2_in = lag(self.o2_in, o2_target, h, 180.0)

        # temperatures at operating state, then scaled by thermal level / clinker bed and lagged
        shc_dev = self.shc - TARGET_SHC_KCAL_PER_KG
        rt = self.run_temps
        rt["ph_exit"] = (
            DESIGN_PH_EXIT_TEMP_C - 2.0 + 0.25 * shc_dev + BURNER_PH_EXIT_RISE_C * self.burner + self.ou["ph"]
        )
        rt["burning_zone"] = 1450.0 + self.ou["bz"] - 30.0 * self.burner
        rt["kiln_inlet"] = 1080.0 + 0.3 * shc_dev + 40.0 * self.burner + self.ou["ki"]
        rt["calciner_outlet"] = 890.0 + 8.0 * self.burner + self.ou["cal"]
        rt["tertiary_air"] = 860.0 + self.ou["ta"] - 40.0 * self.cooler
        rt["secondary_air"] = 1030.0 + self.ou["sa"] - 40.0 * self.cooler
        # more clinker on the same cooling air leaves hotter; a fan short leaves it much hotter
        cooler_load = np.clip(self.clinker / NOMINAL_CLINKER_TPH, 0.0, 1.3) - 1.0
        rt["clinker"] = (
            DESIGN_CLINKER_TEMP_C + 60.0 * cooler_load + COOLER_CLINKER_RISE_C * self.cooler + self.ou["clk"]
        )
        rt["cooler_vent"] = 260.0 + 0.5 * (rt["clinker"] - DESIGN_CLINKER_TEMP_C) + self.ou["vent"]
        kiln_side = ("ph_exit", "burning_zone", "kiln_inlet", "calciner_outlet")
        for name, tau in _KILN_TEMP_TAU.items():
            level = self.theta if name in kiln_side else self.bed
            target = ambient + level * (rt[name] - ambient)
            self.temps[name] = lag(self.temps[name], target, h, tau)

        main, id_fan, cooler = self.drives_kw()
        self.kwh = self.kwh + (main + id_fan + cooler) * h / 3600.0
        if crossed(t0, t1, 3600.0):  # hourly lab sample while producing
            zl = self.n.z(2)
            producing = run & (self.feed > 0.5 * NOMINAL_FEED_TPH)
            fl = 1.3 + 0.004 * (1450.0 - rt["burning_zone"]) + 0.15 * zl[0]
            self.free_lime = np.where(producing, np.clip(fl, 0.4, 3.5), self.free_lime)
            cd = 92.5 - 2.0 * self.burner + 0.6 * zl[1]
            self.calc_degree = np.where(producing, cd, self.calc_degree)

    def measure(self) -> dict[str, Arr]:
        z = self.n.z(25)
        run = self.mode == RUN
        w = np.clip(self.feed / (0.2 * NOMINAL_FEED_TPH), 0.0, 1.0) * run
        main, id_fan, cooler = self.drives_kw()
        o2_out = (self.fa / 100.0 * 21.0 + self.o2_in) / (1.0 + self.fa / 100.0)  # docs/kpis.md §8 inverted
        co_in = (
            w * (0.03 * np.exp(0.25 * z[0]) + BURNER_KILN_INLET_CO_PCT * self.burner * np.exp(0.15 * z[1]))
            + (1 - w) * 0.005 * run
        )
        co_ph = w * (0.05 * np.exp(0.25 * z[2]) + BURNER_PH_EXIT_CO_PCT * self.burner)
        gas_ratio = self.gas / NOMINAL_GAS_KNM3_PER_H
        temps = self.temps
        return {
            "feed_tph": self.feed * (1 + 0.008 * z[3]),
            "main_burner_coal_tph": self.fuel_main * (1 + 0.015 * z[4]),
            "calciner_coal_tph": self.fuel_calc * (1 + 0.015 * z[5]),
            "rdf_tph": self.rdf * (1 + 0.03 * z[23]),  # lumpy fuel on a belt weigher: noisy
            "biomass_tph": self.bio * (1 + 0.02 * z[24]),
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
