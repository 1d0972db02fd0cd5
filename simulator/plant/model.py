"""The whole plant: sections wired together, stepped in simulated time, and read like a PLC.

Owns :class:`PlantModel`: the random streams of the sections (one each, spawned from the seed),
the order in which a substep advances them, the tag-map slots their signals land in, and the served
value vector with its statuses (transmitter ranges, ``sensor_freeze``, PLC quantisation). The
physics lives in the section modules; docs/simulator.md ("The plant model") describes the API.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
import polars as pl

from simulator.plant.constants import DEFAULT_START, MAX_SUBSTEP_SECS
from simulator.plant.dynamics import Arr, BArr, Noise, Severity
from simulator.plant.kiln import Kiln
from simulator.plant.mills import CementMill, CoalMill, RawMill
from simulator.plant.site import Filler, Site
from simulator.plant.status import FREEZE_BAD_AFTER_SECS, FROZEN_SIGNALS, STATUS_QUALITY, SensorStatus
from simulator.plant.whr import Whr
from simulator.registers import RegisterCodec
from simulator.scenarios import ScheduledScenario, parse_scenarios
from simulator.tagmap import TagMap, build_tagmap

I8Arr = npt.NDArray[np.int8]


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
        self.kiln = Kiln(Noise(seqs[0], lines), lines)
        self.raw = RawMill(Noise(seqs[1], lines), lines)
        self.coal = CoalMill(Noise(seqs[2], lines), lines)
        self.cement = CementMill(Noise(seqs[3], lines), lines)
        self.whr = Whr(Noise(seqs[4], lines), lines, self.kiln)
        self.site = Site(Noise(seqs[5], lines), lines, start)
        self.filler = Filler(seqs[6], extra_tags)
        self._slots = self._build_slots()
        self._lo, self._hi, self._ranged = self._instrument_limits()
        self._frozen_idx, self._frozen_flagged = self._frozen_slots()
        self._freeze_since: float | None = None
        self._served = np.zeros(len(self.tagmap))
        self._status = np.zeros(len(self.tagmap), dtype=np.int8)
        self.site.step_ambient(0.0, 0.0)
        self._step_site(0.0)
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
        """Advance ``dt`` simulated seconds (internally in substeps of at most 60 s), then take a reading.

        The physics runs in equal substeps (:meth:`_substep`); the reading (:meth:`_publish`) is
        taken once at the end, as a PLC scan would.
        """
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
        """One substep of ``h`` <= 60 s: scenario effects, then the sections, then the site totals."""
        t0, t1 = self.t, self.t + h
        stop_all, kiln_stop = self._apply_scenarios(t1, h)
        self._step_sections(h, t0, t1, stop_all=stop_all, kiln_stop=kiln_stop)
        self.t = t1
        self._step_site(h)

    def _apply_scenarios(self, t1: float, h: float) -> tuple[bool, bool]:
        """Scenario switches at the substep's end and their lagged intensities; (stop all, stop kiln).

        Switches are evaluated at ``t1`` so a fault starting inside a substep acts in it; the
        intensities are integrated over the same ``h`` as the physics, so the onset lags
        (docs/simulator.md) do not depend on the step size. ``compressed_air_leak`` is a planned
        stop of every section, ``kiln_stop`` of the kiln only.
        """
        self.sev.update(t1, h)
        stop_all = self.sev.is_on("compressed_air_leak")
        kiln_stop = stop_all or self.sev.is_on("kiln_stop")
        return stop_all, kiln_stop

    def _step_sections(self, h: float, t0: float, t1: float, *, stop_all: bool, kiln_stop: bool) -> None:
        """Advance ambient and each section over one substep, in coupling order.

        Ambient first (every section's cool-down target), then the kiln, whose feed, fuel and gas
        of this substep drive the raw mill's and coal mill's silo draw and the WHR boilers. Each
        section draws from its own stream, so the order fixes the couplings, never the noise.
        """
        self.site.step_ambient(h, t1)
        amb = np.broadcast_to(self.site.ambient, (self.lines,)).astype(np.float64)
        self.kiln.step(h, t0, t1, self.sev, kiln_stop, amb)
        self.raw.step(h, t0, t1, self.kiln.feed, stop_all, amb)
        self.coal.step(h, t0, t1, self.kiln.coal, stop_all, amb)
        self.cement.step(h, t0, t1, self.sev, stop_all, amb)
        self.whr.step(h, self.kiln, self.sev, amb)

    def _step_site(self, h: float) -> None:
        """Site totals from the sections' state at the substep's end.

        The incomer and the compressor house follow the section loads and WHR generation just
        computed, and production-running follows whether any section runs. Also called with
        ``h = 0`` at construction so the first reading already has consistent site totals.
        """
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
        """Take one reading of every signal: noise, transmitter clamp, PLC quantisation, freeze."""
        raw = self._read_sensors()
        raw, status = self._apply_instrument_ranges(raw)
        served = self._quantise(raw)
        self._apply_sensor_freeze(served, status, freeze=freeze)
        self._served = served
        self._status = status

    def _read_sensors(self) -> Arr:
        """Every section's measured signals (with measurement noise) in tag-map order.

        One PLC scan reads every signal once: measurement noise is drawn here, per reading, from each
        section's own stream (process noise is drawn per substep in the sections). The filler tags
        fill the end of the tag map.
        """
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
        return raw

    def _apply_instrument_ranges(self, raw: Arr) -> tuple[Arr, I8Arr]:
        """Clamp to each transmitter's measuring range and flag it Uncertain_EngineeringUnitsExceeded.

        A saturated transmitter reads its range limit, not the process value (e.g. the pyrometer
        at 700 °C in a long ``kiln_stop``, docs/simulator.md); every other tag starts Good.
        """
        status = np.zeros(len(raw), dtype=np.int8)
        over = self._ranged & ((raw < self._lo) | (raw > self._hi))
        raw = np.clip(raw, self._lo, self._hi)
        status[over] = SensorStatus.UNCERTAIN_EU_EXCEEDED
        return raw, status

    def _quantise(self, raw: Arr) -> Arr:
        """Round to the PLC data type of each tag (float32, scaled int16, uint16, uint32, bits).

        Served values are what a correct agent decodes from the registers, so :meth:`values`
        equals the wire bit for bit (docs/simulator.md, "Modbus TCP").
        """
        return self.codec.quantize(raw)

    def _apply_sensor_freeze(self, served: Arr, status: I8Arr, *, freeze: bool) -> None:
        """``sensor_freeze``: stuck transmitters repeat the last served value (in place).

        Applied after quantisation so the frozen tags repeat the previous reading bit for bit. The
        unnoticed ones read Good (even past their range); a noticed one is Uncertain_LastUsableValue,
        then Bad_SensorFailure after ``FREEZE_BAD_AFTER_SECS``. ``freeze=False`` (the first reading)
        has nothing to hold yet.
        """
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
