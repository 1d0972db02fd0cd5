"""The alert state machine: pending -> firing after ``for``, hysteresis, suppression, one id per episode."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from rules.state import AlertState, AlertTracker, Observation, Phase, Transition, alert_id, step

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def at(secs: float) -> datetime:
    return T0 + timedelta(seconds=secs)


def phase(state: AlertState) -> Phase:
    """Read the phase through a call, so the checker does not narrow it across ``step``."""
    return state.phase


def obs(
    value: float | None, fire_above: float = 10.0, clear_below: float | None = 9.0, suppressed: bool = False
) -> Observation:
    when = None if value is None else value > fire_above
    clear = None if value is None else (value < clear_below if clear_below is not None else not when)
    return Observation(when, clear, suppressed)


def test_fires_only_after_the_condition_held_for_its_duration() -> None:
    st_ = AlertState()
    assert step(st_, at(0), obs(12), 600) is None
    assert st_.phase is Phase.PENDING
    assert step(st_, at(590), obs(12), 600) is None
    assert step(st_, at(600), obs(12), 600) is Transition.FIRED
    assert phase(st_) is Phase.FIRING


def test_pending_resets_when_the_condition_breaks() -> None:
    st_ = AlertState()
    step(st_, at(0), obs(12), 600)
    step(st_, at(300), obs(5), 600)
    assert st_.phase is Phase.IDLE
    step(st_, at(310), obs(12), 600)
    assert step(st_, at(900), obs(12), 600) is None  # only 590 s since the restart of pending
    assert step(st_, at(910), obs(12), 600) is Transition.FIRED


def test_no_data_ends_pending_but_never_resolves_a_firing_alert() -> None:
    st_ = AlertState()
    step(st_, at(0), obs(12), 0)
    assert st_.phase is Phase.FIRING
    assert step(st_, at(10), obs(None), 0) is None
    assert st_.phase is Phase.FIRING
    pending = AlertState()
    step(pending, at(0), obs(12), 60)
    step(pending, at(10), obs(None), 60)
    assert pending.phase is Phase.IDLE


def test_hysteresis_keeps_firing_between_clear_and_fire_thresholds() -> None:
    st_ = AlertState()
    step(st_, at(0), obs(12), 0)
    for i, v in enumerate([9.5, 10.5, 9.1, 9.9]):
        assert step(st_, at(10 * (i + 1)), obs(v), 0) is None
    assert step(st_, at(60), obs(8.9), 0) is Transition.RESOLVED


def test_default_clear_is_not_when() -> None:
    st_ = AlertState()
    step(st_, at(0), obs(12, clear_below=None), 0)
    assert step(st_, at(10), obs(9.5, clear_below=None), 0) is Transition.RESOLVED


def test_suppression_resolves_a_firing_alert_and_blocks_pending() -> None:
    st_ = AlertState()
    step(st_, at(0), obs(12), 0)
    assert step(st_, at(10), obs(12, suppressed=True), 0) is Transition.RESOLVED
    assert step(st_, at(20), obs(12, suppressed=True), 0) is None
    assert st_.phase is Phase.IDLE


def test_evaluations_out_of_order_are_ignored() -> None:
    st_ = AlertState()
    step(st_, at(100), obs(12), 60)
    assert step(st_, at(50), obs(5), 60) is None
    assert st_.phase is Phase.PENDING


def test_tracker_gives_one_id_per_episode_shared_by_firing_and_resolved() -> None:
    tr = AlertTracker("site1")
    fired = tr.observe("kiln.x", "kiln1", at(0), obs(12), 0)
    assert fired is not None
    kind, aid, started = fired
    assert kind is Transition.FIRED and started == at(0)
    assert aid == "site1:kiln1:kiln.x:20260105T000000Z" == alert_id("site1", "kiln1", "kiln.x", at(0))
    resolved = tr.observe("kiln.x", "kiln1", at(30), obs(1), 0)
    assert resolved == (Transition.RESOLVED, aid, at(0))
    again = tr.observe("kiln.x", "kiln1", at(40), obs(12), 0)
    assert again is not None and again[1] != aid


def test_restored_episode_continues_and_resolves_with_its_old_id() -> None:
    tr = AlertTracker("s")
    tr.restore("r", "a", "s:a:r:20260104T230000Z", at(-3600))
    assert tr.observe("r", "a", at(0), obs(12), 0) is None  # not fired a second time
    assert tr.observe("r", "a", at(10), obs(1), 0) == (
        Transition.RESOLVED,
        "s:a:r:20260104T230000Z",
        at(-3600),
    )
    assert tr.firing() == []


# ------------------------------------------------------------------------------------- properties
signal = st.lists(st.one_of(st.none(), st.floats(0, 20)), min_size=1, max_size=80)


def simulate(values: list[float | None], for_secs: float, every: float) -> list[tuple[float, Transition]]:
    st_ = AlertState()
    out = []
    for i, v in enumerate(values):
        tr = step(st_, at(i * every), obs(v), for_secs)
        if tr is not None:
            out.append((i * every, tr))
    return out


@settings(max_examples=300, deadline=None)
@given(values=signal, for_secs=st.sampled_from([0, 10, 60, 300]), every=st.sampled_from([1, 10, 60]))
def test_never_fires_before_the_condition_held_for_its_duration(
    values: list[float | None], for_secs: float, every: float
) -> None:
    for t, tr in simulate(values, for_secs, every):
        if tr is not Transition.FIRED:
            continue
        i = int(t // every)
        held = [values[j] for j in range(i + 1) if (t - j * every) <= for_secs]
        # every evaluation in [fire time - for, fire time] saw the condition true
        assert all(v is not None and v > 10 for v in held)
        first = i
        while first > 0 and values[first - 1] is not None and values[first - 1] > 10:  # type: ignore[operator]
            first -= 1
        assert t - first * every >= for_secs


@settings(max_examples=300, deadline=None)
@given(values=signal, for_secs=st.sampled_from([0, 60]))
def test_never_flaps_inside_the_hysteresis_band(values: list[float | None], for_secs: float) -> None:
    events = simulate(values, for_secs, 10)
    for t, tr in events:
        v = values[int(t // 10)]
        if tr is Transition.RESOLVED:
            assert v is not None and v < 9  # resolves only below the clear threshold
        else:
            assert v is not None and v > 10
    kinds = [tr for _, tr in events]
    assert all(a != b for a, b in itertools.pairwise(kinds)), "firing and resolved alternate"
