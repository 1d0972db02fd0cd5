"""The shared connector runtime: drift-free ticks, jittered backoff, one log line per transition."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from connectors import ConnectorStats, PollTicker, SourceHealth, apply_scaling


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ticks_stay_on_the_grid_whatever_each_poll_takes() -> None:
    clock = FakeClock()
    ticker = PollTicker(1.0, clock=clock)
    due = [ticker.next_tick()]
    for work in (0.3, 0.9, 0.05, 0.99):
        clock.now = due[-1] + work  # the poll took `work` seconds
        due.append(ticker.next_tick())
    assert due == [1000.0, 1001.0, 1002.0, 1003.0, 1004.0]  # no drift from the work times
    assert ticker.skipped == 0


def test_late_poll_skips_missed_ticks_instead_of_bunching() -> None:
    clock = FakeClock()
    ticker = PollTicker(1.0, clock=clock)
    ticker.next_tick()
    clock.now = 1002.5  # the poll at t=1000 took 2.5 s
    assert ticker.next_tick() == 1003.0  # not 1001 and 1002 back to back
    assert ticker.skipped == 2
    clock.now = 1003.1
    assert ticker.next_tick() == 1004.0


def test_a_tick_exactly_on_time_is_not_skipped() -> None:
    clock = FakeClock()
    ticker = PollTicker(0.5, clock=clock)
    ticker.next_tick()
    clock.now = 1000.5
    assert ticker.next_tick() == 1000.5 and ticker.skipped == 0


def test_health_logs_one_line_down_and_one_line_up(caplog: pytest.LogCaptureFixture) -> None:
    stats = ConnectorStats()
    health = SourceHealth("plc", logging.getLogger("test.health"), stats)
    with caplog.at_level(logging.INFO, logger="test.health"):
        health.up("first")
        for _ in range(5):
            health.down("refused")
        assert not stats.connected
        for _ in range(3):
            health.up()
        health.down("again")
    levels = [(r.levelno, r.getMessage().split(":")[0]) for r in caplog.records]
    assert levels == [
        (logging.INFO, "source plc connected"),
        (logging.WARNING, "source plc down"),
        (logging.INFO, "source plc up again after 0.0 s (5 poll(s) without data)"),
        (logging.WARNING, "source plc down"),
    ]
    assert stats.reconnects == 1


def test_scaling_and_range_check() -> None:
    raw = np.array([10.0, 20.0, np.nan, 1e9])
    inf = np.full(4, np.inf)
    value, bad = apply_scaling(
        raw, np.full(4, 0.5), np.full(4, 1.0), -inf, np.array([np.inf, 10.0, np.inf, np.inf])
    )
    assert value[:2].tolist() == [6.0, 11.0]
    assert bad.tolist() == [False, True, True, False]
