"""Finite numbers and UTC timestamps (common/values.py)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from common.values import finite, finite_json, iso_utc, to_utc


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.5, 1.5), (3, 3.0), (np.float32(2.5), 2.5), (math.nan, None), (math.inf, None), (None, None), (True, None)],
)
def test_finite_keeps_numbers_and_drops_nan_inf_and_bools(value: object, expected: float | None) -> None:
    assert finite(value) == expected


def test_finite_json_replaces_non_finite_floats_at_any_depth() -> None:
    assert finite_json({"a": [1.0, math.nan, {"b": -math.inf}], "c": "x"}) == {"a": [1.0, None, {"b": None}], "c": "x"}


def test_to_utc_converts_aware_times_and_takes_naive_times_as_utc() -> None:
    cst = timezone(timedelta(hours=8))
    assert to_utc(datetime(2026, 1, 5, 8, 0, tzinfo=cst)) == datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
    assert to_utc(datetime(2026, 1, 5, 8, 0, tzinfo=cst)).utcoffset() == timedelta(0)
    assert to_utc(datetime(2026, 1, 5, 8, 0)) == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def test_iso_utc_ends_in_z() -> None:
    cst = timezone(timedelta(hours=8))
    assert iso_utc(datetime(2026, 1, 5, 8, 0, 1, tzinfo=cst)) == "2026-01-05T00:00:01Z"
