"""Site-wide signals, and the filler tags for load tests.

:class:`Site` owns ambient temperature (daily sine + slow drift), the incomer (all section loads +
compressors + crusher + packing + unmetered loads - WHR generation, docs/simulator.md), the
compressor house with ``compressed_air_leak``, day-shift crusher and packing, and the site energy
counters. :class:`Filler` owns the cheap ``--extra-tags`` signals (docs/simulator.md, "Scale").
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np

from simulator.plant.dynamics import Arr, Noise, Severity, ou_step


class Site:
    """Site-wide signals: incomer (grid import), compressor house, crusher, packing, ambient."""

    def __init__(self, noise: Noise, lines: int, start: datetime) -> None:
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
        self.ou_amb = ou_step(self.ou_amb, 3.0, 2 * 86400.0, h, z[0])
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


class Filler:
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
