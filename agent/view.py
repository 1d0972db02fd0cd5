"""Terminal views of a running agent: a rich live dashboard, or plain periodic log lines."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import polars as pl
from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from agent.pipeline import Agent

#: KPIs shown first per asset type; the rest follow alphabetically.
_HEADLINE = (
    "clinker_tph",
    "specific_heat_kcal_per_kg_clinker",
    "clinker_energy_kgce_per_t",
    "co2_kg_per_t_clinker",
    "preheater_false_air_pct",
    "specific_power_kwh_per_t",
    "whr_kwh_per_t_clinker",
    "whr_net_kw",
)

_SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def _fmt(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:,.1f}" if abs(v) >= 10 else f"{v:,.3f}"


def _latest_signals(agent: Agent) -> dict[str, list[tuple[str, float | None, str]]]:
    """Latest value of every tag, grouped by asset (asset = text before the first dot)."""
    frames = [f for f in agent.view.last_frames.values() if f.height]
    out: dict[str, list[tuple[str, float | None, str]]] = {}
    if not frames:
        return out
    last = pl.concat(frames, how="vertical").unique("tag", keep="last", maintain_order=True).sort("tag")
    for tag, value, quality in last.select("tag", "value", "quality").iter_rows():
        asset, _, signal = tag.partition(".")
        out.setdefault(asset, []).append((signal, value, quality))
    return out


def render(agent: Agent, sim: Any | None = None) -> Group:
    """One frame of the dashboard."""
    v = agent.view
    up = sum(1 for s in v.source_up.values() if s)
    uptime = time.monotonic() - v.started
    head = Text.assemble(
        ("kilnwatch ", "bold"),
        f"site {agent.site} · up {uptime:,.0f} s · sources {up}/{len(agent.connectors)} up · ",
        f"{v.samples_written:,} samples · {v.kpi_rows_written:,} KPI rows stored",
    )
    if sim is not None:
        head.append(f" · simulated {getattr(sim.plant, 't', 0.0) / 60:,.1f} min")
    kpi_table = Table(title="energy KPIs (current 1-min window)", expand=True, title_justify="left")
    kpi_table.add_column("asset")
    kpi_table.add_column("KPI")
    kpi_table.add_column("value", justify="right")
    kpi_table.add_column("unit")
    for asset in sorted(v.latest_kpis):
        kpis = v.latest_kpis[asset]
        names = [k for k in _HEADLINE if k in kpis] + sorted(k for k in kpis if k not in _HEADLINE)
        for i, name in enumerate(names[:8]):
            value, unit = kpis[name]
            kpi_table.add_row(asset if i == 0 else "", name, _fmt(value), unit)
    grade_line = Text()
    for asset, g in sorted(v.grades.items()):
        grade_line.append(f"{asset}: GB 16780 {g}  ")
    sig_table = Table(title="signals (latest)", expand=True, title_justify="left", show_lines=False)
    sig_table.add_column("asset")
    sig_table.add_column("signals")
    for asset, signals in sorted(_latest_signals(agent).items()):
        parts = Text()
        for signal, value, quality in signals[:10]:
            style = "" if quality == "good" else "red"
            parts.append(f"{signal}=", "dim")
            parts.append(f"{_fmt(value)} ", style)
        sig_table.add_row(asset, parts)
    alerts = Table(title="alerts", expand=True, title_justify="left")
    alerts.add_column("state")
    alerts.add_column("severity")
    alerts.add_column("asset")
    alerts.add_column("rule")
    alerts.add_column("message")
    for ev in list(v.recent_events)[:8]:
        alerts.add_row(
            ev.state, Text(ev.severity, _SEVERITY_STYLE.get(ev.severity, "")), ev.asset, ev.rule, ev.message
        )
    if not v.recent_events:
        alerts.add_row("—", "", "", "", "no alerts")
    return Group(Panel(head), kpi_table, grade_line, alerts, sig_table)


async def live_view(agent: Agent, sim: Any, stop: asyncio.Event) -> None:
    with Live(render(agent, sim), refresh_per_second=2, screen=False) as live:
        while not stop.is_set():
            live.update(render(agent, sim))
            try:
                async with asyncio.timeout(1.0):
                    await stop.wait()
            except TimeoutError:
                pass


async def log_view(agent: Agent, stop: asyncio.Event, every_secs: float = 15.0) -> None:
    """Plain lines for a non-terminal stdout (CI logs, ``--no-view``)."""
    while not stop.is_set():
        try:
            async with asyncio.timeout(every_secs):
                await stop.wait()
        except TimeoutError:
            pass
        v = agent.view
        kiln = next(iter(v.latest_kpis.get(a.id, {}) for a in agent.cfg.assets if a.type == "kiln"), {})
        shc = kiln.get("specific_heat_kcal_per_kg_clinker", (None, ""))[0]
        print(
            f"samples={v.samples_written} kpi_rows={v.kpi_rows_written} open_alerts={len(v.open_alerts)} "
            f"kiln_specific_heat_kcal_per_kg={_fmt(shc)}",
            flush=True,
        )
