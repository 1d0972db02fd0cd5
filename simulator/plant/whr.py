"""The waste-heat recovery section: SP boiler on PH exit gas, AQC boiler on cooler air, one generator.

Owns boiler heat from the kiln's gas flow and temperatures (docs/kpis.md §5), generation with boiler
inertia, the trip/restart hysteresis, auxiliary power and the generator energy counter;
``whr_underperformance`` (fouling, open AQC bypass) acts here only (docs/simulator.md).
"""

from __future__ import annotations

import numpy as np

from simulator.plant.constants import (
    AIR_CP_KJ_PER_NM3_K,
    AQC_AIR_KNM3_PER_H,
    GAS_CP_KJ_PER_NM3_K,
    NOMINAL_CLINKER_TPH,
    WHR_EFFICIENCY,
)
from simulator.plant.dynamics import Arr, Noise, Severity, lag, ou_step
from simulator.plant.kiln import Kiln


class Whr:
    """SP boiler on PH exit gas + AQC boiler on cooler air, one turbine-generator (docs/kpis.md §5)."""

    def __init__(self, noise: Noise, lines: int, kiln: Kiln) -> None:
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
        self.ou_aqc = ou_step(self.ou_aqc, 5.0, 2 * 3600.0, h, z[0])
        aqc_run = 380.0 + 0.6 * (kiln.run_temps["clinker"] - 115.0) + self.ou_aqc - 45.0 * self.sev
        self.aqc_in = lag(self.aqc_in, ambient + kiln.bed * (aqc_run - ambient), h, 300.0)
        self.q, self.sp_out, self.aqc_out = self._heat_mw(kiln, self.sev)
        self.ph_in = kiln.temps["ph_exit"] - 3.0
        self.on = np.where(self.on, self.q >= 0.2 * self.q_nominal, self.q > 0.35 * self.q_nominal).astype(
            np.bool_
        )
        eta = WHR_EFFICIENCY - 0.03 * self.sev
        target = self.on * eta * self.q * 1000.0
        self.gen = np.where(self.on, lag(self.gen, target, h, 480.0), 0.0)
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
