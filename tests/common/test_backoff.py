"""One reconnect backoff for PLC sources and the MQTT broker (common/backoff.py)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from common.backoff import Backoff


@given(
    lo=st.floats(0.05, 10),
    factor=st.floats(1, 100),
    seed=st.integers(0, 2**32),
    n=st.integers(1, 40),
)
def test_backoff_stays_within_min_and_max(lo: float, factor: float, seed: int, n: int) -> None:
    b = Backoff(lo, lo * factor, rng=random.Random(seed))
    delays = [b.next_delay() for _ in range(n)]
    assert all(lo <= d <= lo * factor + 1e-9 for d in delays)
    assert lo <= b.slow() <= lo * factor + 1e-9


def test_backoff_grows_then_caps_and_resets() -> None:
    b = Backoff(1, 60, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(12)]
    assert delays[0] == 1.0 and 8 <= delays[4] <= 16  # 2**4 = 16, equal jitter in [8, 16]
    assert all(30 <= d <= 60 for d in delays[7:])
    assert b.attempt == 12
    b.reset()
    assert b.attempt == 0 and b.next_delay() == 1.0


def test_backoff_is_jittered() -> None:
    b1, b2 = Backoff(1, 60, rng=random.Random(1)), Backoff(1, 60, rng=random.Random(2))
    assert [b1.next_delay() for _ in range(6)] != [b2.next_delay() for _ in range(6)]


def test_slow_delay_after_a_permanent_refusal_is_near_the_cap() -> None:
    b = Backoff(0.5, 30.0, rng=random.Random(3))
    assert all(15.0 <= b.slow() <= 30.0 for _ in range(50))
