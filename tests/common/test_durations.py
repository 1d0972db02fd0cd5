"""One duration grammar for rule packs and simulator scenarios (common/durations.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "secs"),
    [
        ("90", 90),
        ("90s", 90),
        ("10m", 600),
        ("2.5m", 150),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1.5d", 129600),
        ("2d", 172800),
        ("1d12h", 129600),
        (" 1H 30M ", 5400),
        (90, 90),
        (0.5, 0.5),
    ],
)
def test_durations_accept_units_compounds_and_bare_seconds(text: object, secs: float) -> None:
    assert parse_duration(text) == secs


@pytest.mark.parametrize("bad", ["m", "10 x", "10 minutes", "1h30", "", -1, float("inf"), True, None])
def test_anything_else_is_a_duration_error(bad: object) -> None:
    with pytest.raises(DurationError):
        parse_duration(bad)


def test_duration_error_is_a_value_error_with_a_hint() -> None:
    with pytest.raises(ValueError, match=r"'10 minutes' is not a duration like '90s', '15m', '1h30m' or '2d'"):
        parse_duration("10 minutes")


@given(st.integers(min_value=1, max_value=10**7))
def test_format_duration_round_trips(secs: int) -> None:
    assert parse_duration(format_duration(float(secs))) == secs
