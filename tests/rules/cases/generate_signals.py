"""Writes the ``signals.csv`` of each golden case (deterministic; run after changing a scenario).

    .venv/bin/python tests/rules/cases/generate_signals.py

Expected outputs are then refreshed with ``KILNWATCH_UPDATE_GOLDEN=1 .venv/bin/pytest
tests/rules/test_rules_golden.py`` and reviewed by hand (``git diff``) before committing.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
T0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
Row = tuple[datetime, str, float | None, str]


def every(seconds: int, until: int) -> Iterator[tuple[int, datetime]]:
    for s in range(0, until, seconds):
        yield s, T0 + timedelta(seconds=s)


def domain_example1() -> Iterator[Row]:
    values = {
        "kiln1.feed_tph": 180.0,
        "kiln1.main_burner_coal_tph": 7.0,
        "kiln1.calciner_coal_tph": 10.0,
        "kiln1.drives_kw": 6187.5,  # 55 kWh/t x 112.5 t/h
        "kiln1.ph_exit_o2_pct": 4.8,
        "kiln1.kiln_inlet_o2_pct": 2.3,
        "cm1.feed_tph": 148.0,
        "cm1.main_drive_kw": 3650.0,
        "cm1.separator_kw": 160.0,
        "cm1.fan_kw": 520.0,
        "cm1.aux_kw": 300.0,
    }
    for _, ts in every(10, 17 * 60):
        for tag, v in values.items():
            yield ts, tag, v, "good"


def quality_and_gaps() -> Iterator[Row]:
    for s, ts in every(5, 9 * 60):
        minute = s // 60
        if minute in (4, 5, 6):  # the PLC is unreachable and nothing is recorded
            continue
        feed, main, fan = 400.0 + (s % 60) / 5, 3600.0, 2450.0
        q_feed = q_main = "good"
        if minute == 1 and s % 60 >= 20:
            q_feed = "comm_error"  # 4 of 12 samples good: partial data
            feed = None  # type: ignore[assignment]
        if minute == 2:
            q_main = "stale"  # no good main-drive sample: no power, no kWh/t
        if minute == 3 and s % 60 == 30:
            q_feed, feed = "bad", 1e9  # an out-of-range reading is ignored
        if minute >= 7:
            feed, main, fan = 0.4, 300.0, 150.0  # mill idle
        yield ts, "rm1.feed_tph", feed, q_feed
        yield ts, "rm1.main_drive_kw", main, q_main
        yield ts, "rm1.fan_kw", fan, "good"


def kiln_stop() -> Iterator[Row]:
    # 735 kcal/kg x 1.05 = 771.75 kcal/kg -> coal t/h = 771.75 x 4.1868 x clinker / 25 / 1000
    clinker = 330.0 / 1.6
    coal = 771.75 * 4.1868 * clinker / 25.0 / 1000.0
    for s, ts in every(10, 50 * 60):
        share = 1.0 if s < 40 * 60 else 0.2 if s < 45 * 60 else 0.01  # running, 20 % feed, stopped
        yield ts, "kiln1.feed_tph", 330.0 * share, "good"
        yield ts, "kiln1.coal_tph", coal * share, "good"
        yield ts, "kiln1.kiln_inlet_co_pct", 0.25 if s >= 5 * 60 else 0.03, "good"


def site_override() -> Iterator[Row]:
    for s, ts in every(10, 30 * 60):
        off = s >= 10 * 60
        yield ts, "plant.incomer_kw", 1100.0 if off else 24000.0, "good"
        yield ts, "plant.compressor_kw", 600.0 if off else 800.0, "good"
        yield ts, "plant.production_running", 0.0 if off else 1.0, "good"


CASES: dict[str, Callable[[], Iterator[Row]]] = {
    "domain_example1": domain_example1,
    "quality_and_gaps": quality_and_gaps,
    "kiln_stop": kiln_stop,
    "site_override": site_override,
}


def main() -> None:
    for name, gen in CASES.items():
        with (HERE / name / "signals.csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["ts", "tag", "value", "quality"])
            for ts, tag, value, quality in gen():
                w.writerow(
                    [ts.strftime("%Y-%m-%dT%H:%M:%SZ"), tag, "" if value is None else repr(value), quality]
                )


if __name__ == "__main__":
    main()
