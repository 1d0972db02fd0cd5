"""The alert state machine: idle -> pending -> firing -> resolved, one alert id per episode.

Pure and deterministic given the evaluation times: no clock is read here. Per rule and asset:

* ``when`` true (and not suppressed) starts *pending*; it fires once ``when`` has held at every
  evaluation for at least ``for`` (docs/rules.md). ``when`` false or NULL (no good data) ends pending.
* A firing alert resolves when ``clear`` is true. ``clear`` defaults to "``when`` is not true"; a
  separate ``clear`` threshold gives hysteresis, so a value between the two thresholds never flaps.
  NULL ``clear`` (data missing) keeps the alert firing: an outage never resolves an alert.
* ``suppress_when`` true: nothing is pending or firing (a firing alert resolves), e.g. while the kiln
  is stopped or starting up (docs/kpis.md §8).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime

log = logging.getLogger(__name__)


class Phase(enum.StrEnum):
    IDLE = "idle"
    PENDING = "pending"
    FIRING = "firing"


class Transition(enum.StrEnum):
    FIRED = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Observation:
    """The three conditions of a rule for one asset at one evaluation (None = NULL)."""

    when: bool | None
    clear: bool | None
    suppressed: bool | None = False


@dataclass(slots=True)
class AlertState:
    """Where one (rule, asset) pair is; ``alert_id`` and ``started_at`` are set while firing."""

    phase: Phase = Phase.IDLE
    pending_since: datetime | None = None
    alert_id: str | None = None
    started_at: datetime | None = None
    last_eval: datetime | None = None


def step(state: AlertState, now: datetime, obs: Observation, for_secs: float) -> Transition | None:
    """Advance ``state`` to evaluation time ``now``; return the transition, if any.

    Evaluations must come in non-decreasing time order; an older one is ignored.
    """
    if state.last_eval is not None and now < state.last_eval:
        return None
    state.last_eval = now
    if obs.suppressed is True:
        was_firing = state.phase is Phase.FIRING
        state.phase, state.pending_since = Phase.IDLE, None
        return Transition.RESOLVED if was_firing else None
    if state.phase is Phase.FIRING:
        if obs.clear is True:
            state.phase, state.pending_since = Phase.IDLE, None
            return Transition.RESOLVED
        return None
    if obs.when is not True:
        state.phase, state.pending_since = Phase.IDLE, None
        return None
    if state.phase is Phase.IDLE:
        state.phase, state.pending_since = Phase.PENDING, now
    assert state.pending_since is not None
    if (now - state.pending_since).total_seconds() >= for_secs:
        state.phase = Phase.FIRING
        return Transition.FIRED
    return None


def alert_id(site: str, asset: str, rule: str, started_at: datetime) -> str:
    """One id per episode (docs/mqtt.md: the firing and the resolved message share it)."""
    return f"{site}:{asset}:{rule}:{started_at:%Y%m%dT%H%M%SZ}"


class AlertTracker:
    """The states of every (rule, asset) pair of a site, with episode ids."""

    def __init__(self, site: str) -> None:
        self.site = site
        self._states: dict[tuple[str, str], AlertState] = {}
        self._last_ids: dict[tuple[str, str], str] = {}

    def state(self, rule: str, asset: str) -> AlertState:
        key = (rule, asset)
        st = self._states.get(key)
        if st is None:
            st = self._states[key] = AlertState()
        return st

    def observe(
        self, rule: str, asset: str, now: datetime, obs: Observation, for_secs: float
    ) -> tuple[Transition, str, datetime] | None:
        """Step one pair; on a transition return it with the episode's id and start time."""
        st = self.state(rule, asset)
        tr = step(st, now, obs, for_secs)
        if tr is None:
            return None
        if tr is Transition.FIRED:
            aid = alert_id(self.site, asset, rule, now)
            if aid == self._last_ids.get((rule, asset)):
                aid = f"{aid}-{int(now.timestamp() * 1000) % 1000:03d}"
            st.alert_id, st.started_at = aid, now
            self._last_ids[(rule, asset)] = aid
            log.info("alert %s firing", aid)
            return tr, aid, now
        open_id, started = st.alert_id, st.started_at
        assert open_id is not None and started is not None
        st.alert_id = st.started_at = None
        log.info("alert %s resolved", open_id)
        return tr, open_id, started

    def restore(self, rule: str, asset: str, alert_id: str, started_at: datetime) -> None:
        """Mark an episode stored as open before a restart as firing (it is not fired again)."""
        st = self.state(rule, asset)
        st.phase, st.pending_since = Phase.FIRING, None
        st.alert_id, st.started_at = alert_id, started_at
        self._last_ids[(rule, asset)] = alert_id

    def forget(self, rule: str, asset: str) -> None:
        self._states.pop((rule, asset), None)

    def firing(self) -> list[tuple[str, str, AlertState]]:
        """(rule, asset, state) of every firing pair, sorted for determinism."""
        return sorted(
            ((r, a, s) for (r, a), s in self._states.items() if s.phase is Phase.FIRING),
            key=lambda x: (x[0], x[1]),
        )
