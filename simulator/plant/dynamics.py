"""Time-stepping building blocks shared by every plant section, and the scenario severity ramps.

Owns: exact first-order lags (stable for any step size), Ornstein-Uhlenbeck drifts, the period
crossing test used for hourly lab samples, :class:`Noise` (one random stream per section, so a
scenario in one section never changes the noise of another) and :class:`Severity` (each fault
scenario's intensity 0..1 following its switch with an onset lag; docs/simulator.md lists the
onset time constants).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from simulator.scenarios import CATALOGUE, ScheduledScenario

Arr = npt.NDArray[np.float64]
BArr = npt.NDArray[np.bool_]

#: Scenario onset/decay time constants (simulated seconds); the other scenarios act as switches.
ONSET_TAU: Final = {
    "false_air_leak": 480.0,
    "burner_inefficiency": 240.0,
    "mill_running_empty": 60.0,
    "whr_underperformance": 600.0,
    "compressed_air_leak": 60.0,
    "cooler_air_shortfall": 300.0,
}


def decay(h: float, tau: float) -> float:
    return math.exp(-h / tau)


def lag(x: Arr, target: Arr | float, h: float, tau: float) -> Arr:
    """Exact first-order lag over ``h`` seconds (stable for any step size)."""
    a = math.exp(-h / tau)
    return target + (x - target) * a


def lag_settle(x: Arr, target: Arr, h: float, tau: float) -> Arr:
    """A lag that lands exactly on its target: a stopped feeder reads 0.0, not 1e-38."""
    y = lag(x, target, h, tau)
    return np.where(np.abs(y - target) < 1e-6, target, y)


def ou_step(x: Arr, sigma: float, tau: float, h: float, z: Arr) -> Arr:
    """Exact Ornstein-Uhlenbeck step: mean 0, stationary std ``sigma``, correlation time ``tau``."""
    a = math.exp(-h / tau)
    return x * a + (sigma * math.sqrt(1.0 - a * a)) * z


def crossed(t0: float, t1: float, period: float) -> bool:
    """True if a multiple of ``period`` lies in (t0, t1]: a periodic sample falls in this substep."""
    return math.floor(t1 / period) > math.floor(t0 / period)


class Noise:
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
        self.level: dict[str, float] = dict.fromkeys(ONSET_TAU, 0.0)
        self.on: dict[str, bool] = {}
        self.update(0.0, 0.0)

    def active(self, name: str, t: float) -> bool:
        return any(s.name == name and s.active(t) for s in self.scenarios)

    def update(self, t: float, h: float) -> None:
        """Switch states at ``t``; intensities follow them with their onset lag over ``h`` seconds."""
        self.on = {name: self.active(name, t) for name in CATALOGUE}
        if h <= 0:
            return
        for name, tau in ONSET_TAU.items():
            target = 1.0 if self.on[name] else 0.0
            self.level[name] = target + (self.level[name] - target) * decay(h, tau)

    def __getitem__(self, name: str) -> float:
        return self.level[name]

    def is_on(self, name: str) -> bool:
        return self.on.get(name, False)
