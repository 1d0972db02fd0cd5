"""The grinding sections: raw mill, coal mill (both on silo/bin level hysteresis) and cement mill.

Owns feed, drive/fan/separator power with its idle share (a mill running empty keeps most of its
power; docs/kpis.md §2 gives the kWh/t bands each section lands in), outlet temperatures, energy
counters and the periodic fineness samples. The raw and coal mills fill a homogenising silo and a
fine-coal bin that the kiln draws from (:class:`_LevelMill`); the cement mill changes product
(Blaine) every ~8 h and is the section ``mill_running_empty`` starves (docs/simulator.md).
"""

from __future__ import annotations

import numpy as np

from simulator.plant.constants import (
    CEMENT_CLINKER_SHARE_HIGH_BLAINE,
    CEMENT_CLINKER_SHARE_LOW_BLAINE,
    CEMENT_FEED_TPH,
    CEMENT_GRINDABILITY_SIGMA,
    CEMENT_GRINDABILITY_TAU_SECS,
)
from simulator.plant.dynamics import Arr, Noise, Severity, crossed, lag, lag_settle, ou_step


class _LevelMill:
    """A mill that fills a silo/bin and runs on level hysteresis (raw mill, coal mill)."""

    def __init__(
        self,
        noise: Noise,
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
        self.ou_feed = ou_step(self.ou_feed, self.feed_sigma, 2 * 3600.0, h, z[0])
        self.ou_temp = ou_step(self.ou_temp, 1.5, 3600.0, h, z[1])
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
        self.feed = lag_settle(self.feed, self.feed_cmd, h, 20.0)


class RawMill(_LevelMill):
    """Vertical roller mill filling a 20,000 t homogenising silo (docs/kpis.md §2: 14-18 kWh/t incl. fan)."""

    def __init__(self, noise: Noise, lines: int) -> None:
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
        self.outlet = lag(self.outlet, np.where(self.on, 90.0 + self.ou_temp, ambient + 15.0), h, 600.0)
        main, fan, sep = self.power()
        self.kwh = self.kwh + (main + fan + sep) * h / 3600.0
        if crossed(t0, t1, 3600.0):
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
    """Coal VRM filling a 300 t fine-coal bin drawn by the kiln's coal burners (docs/kpis.md §2: 18-25 kWh/t).

    Sized for the ~20 t/h of coal left after the alternative fuels (constants.py): 24 t/h, so the
    bin fills over more than a day and a ``normal`` day has the mill running throughout.
    """

    def __init__(self, noise: Noise, lines: int) -> None:
        super().__init__(
            noise,
            lines,
            feed_nominal=24.0,
            capacity_t=300.0,
            level0=0.40,
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
        main = on * (0.45 * 440.0 + 0.55 * 440.0 * load)
        fan = on * 90.0 * (0.9 + 0.1 * load)
        return main, fan

    def step(self, h: float, t0: float, t1: float, coal_tph: Arr, stop: bool, ambient: Arr) -> None:
        self.step_level(h, coal_tph, stop)
        self.outlet = lag(self.outlet, np.where(self.on, 70.0 + self.ou_temp, ambient + 10.0), h, 300.0)
        main, fan = self.power()
        self.kwh = self.kwh + (main + fan) * h / 3600.0
        if crossed(t0, t1, 3600.0):
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
    """Closed-circuit ball mill; product (Blaine) changes ~every 8 h, clinker grindability drifts.

    ~29-33 kWh/t per day in ``normal`` (GB 16780 grades 2-3, docs/kpis.md §3; constants.py). The
    clinker feeder delivers the product's clinker share of the feed (~0.73 / ~0.77, gypsum,
    limestone and slag the rest) so the agent's clinker factor (docs/kpis.md §9) has something to
    measure; ``mill_running_empty`` is an empty clinker hopper, so that feeder drops to zero.
    """

    def __init__(self, noise: Noise, lines: int) -> None:
        self.n = noise
        self.blaine_target = np.where(noise.rng.random(lines) < 0.5, 3400.0, 3600.0)
        self.grind = CEMENT_GRINDABILITY_SIGMA * noise.z(1)[0]  # stationary start: day 1 varies too
        self.feed_sp = self._feed_for(self.blaine_target) * (1.0 + self.grind)
        self.feed_cmd = self.feed_sp.copy()
        self.feed = self.feed_sp.copy()
        self.clinker_share = self._clinker_share_for(self.blaine_target)
        self.empty = 0.0  # mill_running_empty intensity: the clinker hopper runs dry
        self.on = np.ones(lines, dtype=np.bool_)
        self.blaine = self.blaine_target.copy()
        self.blaine_read = self.blaine_target.copy()
        self.outlet = np.full(lines, 108.0)
        self.ou_temp = np.zeros(lines)
        self.kwh = noise.rng.uniform(2e7, 9e7, lines).round()

    @staticmethod
    def _clinker_share_for(blaine: Arr) -> Arr:
        """Recipe: the finer (stronger) product carries more clinker."""
        return np.where(blaine > 3500.0, CEMENT_CLINKER_SHARE_HIGH_BLAINE, CEMENT_CLINKER_SHARE_LOW_BLAINE)

    @property
    def clinker_feed(self) -> Arr:
        """Clinker feeder, t/h: its share of the feed, nothing once the clinker hopper is empty."""
        return np.asarray(self.feed * self.clinker_share * (1.0 - self.empty))

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
        z = self.n.z(2)
        u = self.n.u(1)
        self.ou_temp = ou_step(self.ou_temp, 1.5, 3600.0, h, z[0])
        self.grind = ou_step(self.grind, CEMENT_GRINDABILITY_SIGMA, CEMENT_GRINDABILITY_TAU_SECS, h, z[1])
        switch = u[0] < h / (8 * 3600.0)
        self.blaine_target = np.where(switch, 7000.0 - self.blaine_target, self.blaine_target)
        self.feed_sp = self._feed_for(self.blaine_target) * (1.0 + self.grind)
        empty = self.empty = sev["mill_running_empty"]
        self.clinker_share = lag(self.clinker_share, self._clinker_share_for(self.blaine_target), h, 600.0)
        want = not stop
        target = (self.feed_sp * (1.0 - empty) + 0.5 * empty) if want else np.zeros_like(self.feed_sp)
        ramp = CEMENT_FEED_TPH / 300.0 * h
        self.feed_cmd = np.clip(self.feed_cmd + np.clip(target - self.feed_cmd, -ramp, ramp), 0.0, None)
        self.on = np.full_like(self.on, want) | (self.feed_cmd > 0.0)
        self.feed = lag_settle(self.feed, self.feed_cmd, h, 30.0)
        starved = np.clip(1.0 - self.feed / self.feed_sp, 0.0, 1.0)
        self.blaine = lag(self.blaine, self.blaine_target + 700.0 * starved, h, 1200.0)
        out_target = np.where(self.on, 108.0 + 22.0 * starved + self.ou_temp, ambient + 10.0)
        self.outlet = lag(self.outlet, out_target, h, 600.0)
        main, sep, fan = self.power()
        self.kwh = self.kwh + (main + sep + fan) * h / 3600.0
        if crossed(t0, t1, 600.0):  # online analyser every 10 min
            self.blaine_read = np.where(self.on, self.blaine + 30.0 * self.n.z(1)[0], self.blaine_read)

    def measure(self) -> dict[str, Arr]:
        z = self.n.z(6)
        main, sep, fan = self.power()
        return {
            "feed_tph": self.feed * (1 + 0.01 * z[0]),
            "clinker_feeder_tph": self.clinker_feed * (1 + 0.015 * z[5]),
            "main_drive_kw": main * (1 + 0.01 * z[1]),
            "separator_kw": sep * (1 + 0.02 * z[2]),
            "fan_kw": fan * (1 + 0.01 * z[3]),
            "fineness_blaine_cm2_per_g": self.blaine_read,
            "outlet_temp_c": self.outlet + 0.4 * z[4],
            "energy_kwh_total": self.kwh,
            "running": self.on.astype(np.float64),
        }
