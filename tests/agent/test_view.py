"""The live view as an operator's terminal shows it: priorities, fitting the screen, one alert text."""

from __future__ import annotations

import io
import logging
import sys
from collections import deque
from datetime import UTC, datetime

import polars as pl
import pytest
from rich.console import Console
from rich.live import Live

from agent.pipeline import AgentView
from agent.view import Dashboard, _logging_through_live
from connectors.base import SAMPLE_SCHEMA
from rules.alerts import AlertEvent
from rules.grades import Grade
from simulator.config_gen import agent_config_toml

DEMO_SUFFIX = "[demo, durations /10]"
TS = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def _tags() -> list[str]:
    import tomllib

    data = tomllib.loads(agent_config_toml(modbus_port=5020, opcua_port=4840))
    return [t["name"] for s in data["sources"] for t in s.get("tags", [])]


def _alert(asset: str, rule: str, severity: str, message: str, state: str = "firing") -> AlertEvent:
    return AlertEvent(
        alert_id=f"{asset}/{rule}",
        site="p",
        asset=asset,
        rule=rule,
        severity=severity,  # type: ignore[arg-type]
        state=state,  # type: ignore[arg-type]
        value=12.3,
        threshold=10.0,
        unit="%",
        started_at=TS,
        ts=TS,
        message=message,
    )


def _view(n_alerts: int = 2) -> AgentView:
    v = AgentView()
    tags = _tags()
    frame = pl.DataFrame(
        {
            "ts": [TS] * len(tags),
            "tag": tags,
            "value": [float(i) * 10.5 for i in range(len(tags))],
            "quality": ["good"] * len(tags),
        },
        schema=SAMPLE_SCHEMA,
    )
    v.last_frames = {"plant_plc": frame}
    v.source_up = {"plant_plc": True, "whr_opcua": False}
    kiln = {
        "clinker_tph": (208.34, "t/h"),
        "specific_heat_kcal_per_kg_clinker": (742.6, "kcal/kg"),
        "clinker_energy_kgce_per_t": (104.27, "kgce/t"),
        "co2_kg_per_t_clinker": (812.2, "kg/t"),
        "preheater_false_air_pct": (12.34, "%"),
        "specific_power_kwh_per_t": (21.77, "kWh/t"),
        "heat_input_gj_per_h": (647.1, "GJ/h"),
        "specific_heat_mj_per_t_clinker": (3109.2, "MJ/t"),
        "clinker_power_kwh_per_t": (-0.0004, "kWh/t"),
    }
    v.latest_kpis = {
        "kiln1": kiln,
        "rawmill1": {"specific_power_kwh_per_t": (17.04, "kWh/t"), "feed_tph": (350.0, "t/h")},
    }
    v.grades = {"kiln1": Grade("clinker_energy_kgce_per_t", 104.27, 2, (100.0, 105.0, 117.0))}
    events = [
        _alert(
            "kiln1",
            "kiln.false_air.high",
            "warning",
            f"Preheater false air on kiln1 is 12.3 % of inlet gas, above 10 %: check the preheater "
            f"and kiln inlet seals {DEMO_SUFFIX}",
        ),
        _alert(
            "rawmill1",
            "mill.specific_power.high",
            "critical",
            f"Raw mill rawmill1 specific power 21.8 kWh/t above typical {DEMO_SUFFIX}",
        ),
    ][:n_alerts]
    for i in range(max(0, n_alerts - 2)):
        events.append(_alert(f"cementmill{i}", "mill.idle", "info", f"Mill idle running {i} {DEMO_SUFFIX}"))
    v.open_alerts = {e.alert_id: e for e in events}
    v.recent_events = deque(events, maxlen=20)
    v.recent_events.append(
        _alert("kiln1", "kiln.co.high", "warning", "Resolved: kiln.co.high on kiln1", "resolved")
    )
    return v


def _dashboard(view: AgentView) -> Dashboard:
    return Dashboard(
        view=view,
        site="plant-a",
        sources=["plant_plc", "whr_opcua"],
        first_tags=["kiln1.ph_exit_o2_pct", "kiln1.kiln_inlet_o2_pct", "kiln1.ph_exit_temp_c"],
    )


def _export(renderable: object, width: int, height: int) -> list[str]:
    console = Console(record=True, width=width, height=height, file=io.StringIO())
    console.print(renderable)
    return console.export_text().rstrip("\n").split("\n")


def _joined(lines: list[str]) -> str:
    return " ".join(" ".join(line.split()) for line in lines)


@pytest.mark.parametrize(("width", "height"), [(80, 24), (120, 40), (200, 60)])
def test_alerts_and_source_health_come_first_and_everything_fits(width: int, height: int) -> None:
    view = _view()
    lines = _export(_dashboard(view), width, height)
    text = "\n".join(lines)
    assert len(lines) <= height, text
    assert "..." not in text and "…" not in text
    assert "plant_plc up" in text and "whr_opcua DOWN" in text
    joined = _joined(lines)
    for ev in view.open_alerts.values():
        assert ev.message in joined, text  # exactly AlertEvent.message, demo suffix included
    assert "kiln1 clinker energy 104.3 kgce/t, grade 2" in joined  # units on the GB line
    # the roles explaining the false-air alert are among the first signals shown
    assert "ph_exit_o2_pct=" in text and "kiln_inlet_o2_pct=" in text and "ph_exit_temp_c=" in text
    sig_title = next(line for line in lines if line.startswith("signals "))
    n_tags = len(_tags())
    if f"of {n_tags}" in sig_title and f"{n_tags} of {n_tags}" not in sig_title:
        assert "more" in sig_title
    if height <= 40:
        assert "more" in sig_title, text  # 71 tags never fit in 24 or 40 lines


def test_kpis_come_before_signals_and_are_cut_with_a_count() -> None:
    lines = _export(_dashboard(_view()), 80, 24)
    text = "\n".join(lines)
    assert "specific_heat_kcal_per_kg_clinker" in text
    assert text.index("clinker_tph") < text.index("signals ")
    assert "743" in text and "208.3" in text  # kcal/kg 0 decimals, t/h 1


def test_many_open_alerts_still_fit_with_a_count_of_the_rest() -> None:
    lines = _export(_dashboard(_view(n_alerts=40)), 80, 24)
    text = "\n".join(lines)
    assert len(lines) <= 24
    assert "whr_opcua DOWN" in text and "more open alerts" in text
    assert "kiln.false_air.high" in text or "mill.specific_power.high" in text


def test_frame_height_stays_within_the_screen_across_refreshes() -> None:
    """Rendering again with more alerts never draws more lines than the screen has:
    a taller frame leaves its top behind in the scrollback, the stale panels that piled up."""
    for n in (0, 2, 30):
        assert len(_export(_dashboard(_view(n_alerts=n)), 160, 60)) <= 60


def test_log_lines_during_the_live_view_go_above_it_not_through_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A StreamHandler made before the view (logging.basicConfig) kept the real stderr: alert log
    lines wrote under Live's cursor and the frame's top piled up. They now go through Live's proxy."""
    handler = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    root.addHandler(handler)
    out = io.StringIO()
    console = Console(file=out, width=100, height=30, force_terminal=True, color_system=None)
    try:
        before = (sys.stdout, sys.stderr)
        with (
            Live(Dashboard(view=AgentView(), site="p"), console=console, auto_refresh=False),
            _logging_through_live(before),
        ):
            logging.getLogger("agent.pipeline").warning("alert firing kiln1 kiln.false_air.high: x")
        assert handler.stream is before[1]  # restored afterwards
    finally:
        root.removeHandler(handler)
    assert "alert firing kiln1" in out.getvalue()
    assert "alert firing kiln1" not in capsys.readouterr().err
