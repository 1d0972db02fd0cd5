"""The ``--scenario`` syntax: names, schedules, durations (pure)."""

from __future__ import annotations

import pytest

from simulator.scenarios import (
    CATALOGUE,
    ScenarioError,
    ScheduledScenario,
    describe,
    parse_scenarios,
)


def test_normal_and_empty_mean_no_fault() -> None:
    assert parse_scenarios("normal") == ()
    assert parse_scenarios("") == ()
    assert describe(()) == "normal"


def test_scheduled_scenario_starts_after_its_delay() -> None:
    (leak,) = parse_scenarios("false_air_leak@10m")
    assert leak == ScheduledScenario("false_air_leak", 600.0, None)
    assert not leak.active(599.9)
    assert leak.active(600.0)
    assert leak.active(10 * 86400.0)  # no duration: until the end


def test_duration_ends_the_fault_and_defaults_come_from_the_catalogue() -> None:
    drop, stop = parse_scenarios("plc_dropout@30s+2m, kiln_stop@1h")
    assert (drop.start_secs, drop.duration_secs) == (30.0, 120.0)
    assert drop.active(149.0) and not drop.active(150.0)
    assert stop.duration_secs == CATALOGUE["kiln_stop"].default_duration_secs == 7200.0
    assert parse_scenarios("plc_dropout")[0].duration_secs == 60.0


def test_several_scenarios_combine_and_normal_entries_are_dropped() -> None:
    names = [s.name for s in parse_scenarios("normal,burner_inefficiency,sensor_freeze@5m")]
    assert names == ["burner_inefficiency", "sensor_freeze"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("false_air", "unknown scenario 'false_air'"),
        ("kiln_stop@soon", "bad time 'soon'"),
        ("kiln_stop@1m+0s", "duration must be positive"),
        ("Kiln-Stop", "bad scenario"),
    ],
)
def test_bad_scenario_strings_give_one_clear_line(text: str, fragment: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenarios(text)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_every_scenario_is_documented_with_an_expected_effect() -> None:
    required = {
        "normal",
        "false_air_leak",
        "burner_inefficiency",
        "mill_running_empty",
        "whr_underperformance",
        "compressed_air_leak",
        "cooler_air_shortfall",
        "sensor_freeze",
        "plc_dropout",
        "plc_hang",
        "kiln_stop",
    }
    assert set(CATALOGUE) == required
    assert all(info.summary and info.expected_effect for info in CATALOGUE.values())
    assert str(parse_scenarios("plc_dropout@30s+2m")[0]) == "plc_dropout@30s+2m"
