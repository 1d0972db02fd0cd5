"""Wall-clock steps: detect them, record them, and keep KPI windows and alert episodes whole.

A gateway without a battery-backed clock boots with a wrong time and NTP steps it, often by hours;
an operator may set it by hand. Sample timestamps and KPI windows follow the wall clock (they are
what auditors read), while every schedule in the agent - polls, rule ticks, flushes, snapshots -
runs on the monotonic clock (asyncio's loop time, ``time.monotonic``), which never jumps.

:class:`ClockWatch` compares the two at every sample frame and rule tick: the difference
``wall - monotonic`` only drifts slowly (NTP slewing is at most 0.5 ms/s), so a change larger than
``agent.clock_step_secs`` between two checks is a step. The agent then (docs/storage.md, clocks):

- logs one WARNING and records a ``clock_events`` row (the wall time before and after, the step);
- closes the KPI windows of the samples taken before the step at the pre-step time, like a stop;
- starts a fresh rule engine on the samples taken after it, so a forward step emits no windows for
  the skipped time and a backward step does not make the engine ignore the "older" new samples;
- carries the firing alert episodes over, so none is resolved or fired again because of the step
  (an episode spanning a step keeps its ``started_at``; its duration includes the step).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClockStep:
    """One step: ``+`` forward, ``-`` backward; the wall time it would have been, and it is."""

    step_secs: float
    wall_before: datetime
    wall_after: datetime


class ClockWatch:
    """Tells a step of the wall clock from slewing, by the monotonic clock."""

    def __init__(
        self,
        threshold_secs: float,
        *,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold_secs = threshold_secs
        self._wall, self._mono = wall, mono
        self._offset = wall() - mono()

    def check(self) -> ClockStep | None:
        """A step since the previous check, or None. The baseline follows slewing at every check."""
        wall, mono = self._wall(), self._mono()
        offset = wall - mono
        step = offset - self._offset
        before = mono + self._offset
        self._offset = offset
        if abs(step) < self.threshold_secs:
            return None
        return ClockStep(step, datetime.fromtimestamp(before, UTC), datetime.fromtimestamp(wall, UTC))


def announce(step: ClockStep) -> None:
    log.warning(
        "wall clock stepped %+.1f s (%s -> %s): KPI windows closed at the step, none for skipped time, "
        "open alerts carried over (recorded in clock_events)",
        step.step_secs,
        step.wall_before.isoformat(timespec="seconds"),
        step.wall_after.isoformat(timespec="seconds"),
    )


def record(con: duckdb.DuckDBPyConnection, site: str, step: ClockStep) -> None:
    """A ``clock_events`` row, so an auditor sees why an hour has no KPIs or appears twice."""
    if step.step_secs > 0:
        direction = "forward: no KPI windows for the skipped time"
    else:
        direction = "backward: KPI windows of the repeated time appear twice"
    con.execute(
        "INSERT INTO clock_events VALUES (?, ?, ?, ?, ?)",
        [step.wall_after, site, step.step_secs, step.wall_before, direction],
    )
