"""Terminal views of a running agent: a rich live dashboard, or plain periodic log lines.

The dashboard (:class:`Dashboard`) lays itself out for the terminal it is drawn on, by priority:
the header, source health and open alerts always fit; the GB 16780 line and the KPI table come
next; recently resolved alerts and the latest signals take what is left, saying how many were cut
("+N more"). Signals of the assets with open alerts come first, the roles behind the alert before
the rest. The whole frame never exceeds the terminal height: a frame taller than the screen leaves
its top behind in the scrollback on every refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl
from rich import box
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.live import Live
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from agent.numbers import fmt_number

if TYPE_CHECKING:
    from agent.pipeline import Agent, AgentView
    from rules.alerts import AlertEvent

#: KPIs shown first per asset type; the rest follow alphabetically.
_HEADLINE = (
    "clinker_tph",
    "specific_heat_kcal_per_kg_clinker",
    "clinker_energy_kgce_per_t",
    "thermal_substitution_pct",
    "co2_gross_kg_per_t_clinker",
    "co2_net_kg_per_t_clinker",
    "excess_fuel_cost_per_h",
    "loss_exit_gas_temp_kcal_per_kg",
    "loss_excess_air_kcal_per_kg",
    "loss_co_kcal_per_kg",
    "loss_clinker_temp_kcal_per_kg",
    "loss_unattributed_kcal_per_kg",
    "co2_kg_per_t_clinker",
    "preheater_false_air_pct",
    "specific_power_kwh_per_t",
    "whr_kwh_per_t_clinker",
    "whr_net_kw",
)

_SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}

#: Recently resolved alerts shown under the open ones when there is room.
_RESOLVED_SHOWN = 3
#: Lines kept for the signals (title + 2) when the KPIs would take the rest of the screen.
_SIGNALS_MIN_LINES = 3


def _fmt(v: float | None, unit: str | None = None) -> str:
    return fmt_number(v, unit)


def _unit_of(name: str, tag: str = "", tag_units: Mapping[str, str] | None = None) -> str:
    from rules.catalogue import unit_of

    if tag_units and tag_units.get(tag):
        return tag_units[tag]
    return unit_of(name)


def _latest_signals(view: AgentView) -> list[tuple[str, float | None, str]]:
    """Latest (tag, value, quality) of every tag, sorted by tag."""
    frames = [f for f in view.last_frames.values() if f.height]
    if not frames:
        return []
    last = pl.concat(frames, how="vertical").unique("tag", keep="last", maintain_order=True).sort("tag")
    return list(last.select("tag", "value", "quality").iter_rows())


def explaining_tags(agent: Agent) -> list[str]:
    """Tags to show first: per open alert, the tags of the roles its rule (or its KPIs) reads, then
    the asset's other role tags. E.g. a false-air alert puts the preheater exit O2 and kiln inlet O2
    first, then the preheater exit temperature and the rest of that kiln's roles."""
    from rules.catalogue import KPIS

    needs = {k.name: k.needs for k in KPIS}
    rules = {r.id: r for r in (agent.engine.rules if agent.engine is not None else [])}
    assets = {a.id: a for a in agent.cfg.assets}
    out: list[str] = []
    for ev in agent.view.open_alerts.values():
        asset = assets.get(ev.asset)
        if asset is None:
            continue
        roles = asset.roles()
        rule = rules.get(ev.rule)
        wanted: list[str] = []
        for name in sorted(rule.names) if rule is not None else []:
            wanted += [*needs.get(name, ()), name]
        for role in [r for r in wanted if r in roles] + list(roles):
            out += roles[role]
        out += asset.all_tags()
    return list(dict.fromkeys(out))


@dataclass
class Dashboard:
    """One frame of the live view, laid out for the console it is rendered on (see module doc)."""

    view: AgentView
    site: str
    sources: Sequence[str] = ()
    tag_units: Mapping[str, str] = field(default_factory=dict)
    first_tags: Sequence[str] = ()
    simulated_min: float | None = None

    # ------------------------------------------------------------ sections
    def _header(self) -> Text:
        v = self.view
        head = Text.assemble(
            ("kilnwatch ", "bold"),
            f"site {self.site} · up {time.monotonic() - v.started:,.0f} s · "
            f"{v.samples_written:,} samples · {v.kpi_rows_written:,} KPI rows",
        )
        if self.simulated_min is not None:
            head.append(f" · simulated {self.simulated_min:,.1f} min")
        return head

    def _health(self) -> Text:
        names = list(dict.fromkeys([*self.sources, *self.view.source_up]))
        up = sum(1 for n in names if self.view.source_up.get(n))
        t = Text.assemble(("sources ", "bold"), f"{up}/{len(names)} up: ")
        for i, n in enumerate(names):
            state = self.view.source_up.get(n)
            if i:
                t.append(" · ")
            label, style = (
                ("up", "green") if state else (("DOWN", "bold red") if state is False else ("waiting", "dim"))
            )
            t.append(f"{n} ")
            t.append(label, style)
        return t

    @staticmethod
    def _alert_line(ev: AlertEvent) -> Text:
        """One alert: state, severity, asset, rule, then exactly ``AlertEvent.message`` (wrapped, never cut)."""
        t = Text()
        t.append(f"{ev.state.upper()} ", "bold" if ev.state == "firing" else "dim")
        t.append(ev.severity, _SEVERITY_STYLE.get(ev.severity, ""))
        t.append(f" {ev.asset} {ev.rule}: ", "bold")
        t.append(ev.message)
        return t

    def _grades(self) -> Text | None:
        from rules.catalogue import unit_of

        if not self.view.grades:
            return None
        t = Text("GB 16780 ", "bold")
        for i, (asset, g) in enumerate(sorted(self.view.grades.items())):
            indicator = getattr(g, "indicator", None)
            if i:
                t.append(" · ")
            if indicator is None:
                t.append(f"{asset}: {g}")
                continue
            unit = unit_of(indicator)
            label = getattr(g, "label", "")
            name = indicator.removesuffix("_kgce_per_t").replace("_", " ")
            t.append(f"{asset} {name} {_fmt(g.value, unit)} {unit}, ")
            t.append(label, "green" if getattr(g, "grade", None) is not None else "bold red")
        return t

    def _kpi_rows(self) -> list[tuple[str, str, str, str]]:
        rows: list[tuple[str, str, str, str]] = []
        for asset in sorted(self.view.latest_kpis):
            kpis = self.view.latest_kpis[asset]
            names = [k for k in _HEADLINE if k in kpis] + sorted(k for k in kpis if k not in _HEADLINE)
            for i, name in enumerate(names):
                value, unit = kpis[name]
                rows.append((asset if i == 0 else "", name, _fmt(value, unit), unit))
        return rows

    @staticmethod
    def _kpi_table(rows: Sequence[tuple[str, str, str, str]]) -> Table:
        t = Table(box=box.SIMPLE_HEAD, expand=True, show_edge=False, pad_edge=False, padding=(0, 1))
        t.add_column("asset", no_wrap=True)
        t.add_column("KPI (current 1-min window)", overflow="fold")
        t.add_column("value", justify="right", no_wrap=True)
        t.add_column("unit", no_wrap=True)
        for row in rows:
            t.add_row(*row)
        return t

    def _signal_lines(self, width: int) -> tuple[list[Text], int]:
        """Signals packed into lines (one asset per line group, priority order); and their count."""
        latest = {tag: (value, quality) for tag, value, quality in _latest_signals(self.view)}
        first = [t for t in self.first_tags if t in latest]
        order = list(dict.fromkeys([*first, *latest]))
        assets = list(dict.fromkeys(t.partition(".")[0] for t in order))
        lines: list[Text] = []
        for asset in assets:
            line = Text(f"{asset} ", "bold")
            empty = True
            for tag in [t for t in order if t.partition(".")[0] == asset]:
                value, quality = latest[tag]
                signal = tag.partition(".")[2] or tag
                unit = _unit_of(signal, tag, self.tag_units)
                item = Text()
                item.append(f"{signal}=", "dim")
                item.append(
                    _fmt(value, unit) + (f" {unit}" if unit and value is not None else ""),
                    "" if quality == "good" else "red",
                )
                if not empty and line.cell_len + 2 + item.cell_len > width:
                    lines.append(line)
                    line = Text("  ")
                elif not empty:
                    line.append("  ")
                line.append_text(item)
                empty = False
            lines.append(line)
        return lines, len(order)

    # ------------------------------------------------------------ layout
    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        height = options.height or options.size.height
        flat = options.update(height=None, width=width)

        def lines_of(r: RenderableType) -> list[list[Segment]]:
            return console.render_lines(r, flat, pad=False)

        out: list[list[Segment]] = []

        def room() -> int:
            return height - len(out)

        def put(r: RenderableType, limit: int | None = None) -> bool:
            """Add r if it fits in ``limit`` (default: what is left); return whether it did."""
            ls = lines_of(r)
            if len(ls) > (room() if limit is None else min(limit, room())):
                return False
            out.extend(ls)
            return True

        def put_cut(r: RenderableType) -> None:
            """Add r, cutting it to what is left (only for must-show lines)."""
            out.extend(lines_of(r)[: max(0, room())])

        # 1. must fit: header, source health, open alerts ("+N more" when even they do not fit)
        put_cut(self._header())
        put_cut(self._health())
        opened = sorted(self.view.open_alerts.values(), key=lambda e: (e.severity != "critical", e.ts))
        put_cut(Text(f"alerts: {len(opened)} open" if opened else "alerts: none open", "bold"))
        for i, ev in enumerate(opened):
            rest = len(opened) - i - 1
            if not put(self._alert_line(ev), room() - (1 if rest else 0)):
                put_cut(Text(f"  +{len(opened) - i} more open alerts", "bold red"))
                break
        # 2. GB 16780 and KPIs
        grades = self._grades()
        if grades is not None:
            put(grades)
        rows = self._kpi_rows()
        shown = 0
        keep = _SIGNALS_MIN_LINES if self.view.last_frames else 0
        if rows and room() - keep >= 3:
            lo, hi = 0, len(rows)
            while lo < hi:  # most rows whose table (plus a "+N more" line) fits
                mid = (lo + hi + 1) // 2
                need = len(lines_of(self._kpi_table(rows[:mid]))) + (1 if mid < len(rows) else 0)
                lo, hi = (mid, hi) if need <= room() - keep else (lo, mid - 1)
            shown = lo
            if shown:
                put(self._kpi_table(rows[:shown]))
        if len(rows) > shown:
            put(Text(f"  +{len(rows) - shown} more KPIs", "dim"))
        # 3. recently resolved alerts
        resolved = [e for e in self.view.recent_events if e.state != "firing"][:_RESOLVED_SHOWN]
        for ev in resolved:
            if not put(self._alert_line(ev), room() - keep):
                break
        # 4. signals, with how many are left out
        sig_lines, n_signals = self._signal_lines(width)
        if n_signals and room() >= 1:
            budget = room() - 1
            body = sig_lines[:budget]
            fit = sum(len(lines_of(line)) for line in body)
            while body and fit > budget:
                fit -= len(lines_of(body.pop()))
            n_shown = sum(line.plain.count("=") for line in body)
            title = Text(f"signals {n_shown} of {n_signals}", "bold")
            if n_shown < n_signals:
                title.append(f"  +{n_signals - n_shown} more", "bold yellow")
            put(title)
            for line in body:
                put(line)
        new_line = Segment.line()
        for segments in out[:height]:
            yield from segments
            yield new_line


def render(agent: Agent, sim: Any | None = None) -> Dashboard:
    """The dashboard of a running agent (laid out when the console draws it)."""
    return Dashboard(
        view=agent.view,
        site=agent.site,
        sources=[s.name for s in agent.cfg.sources if s.enabled],
        tag_units=agent.cfg.tag_units(),
        first_tags=explaining_tags(agent),
        simulated_min=None if sim is None else getattr(sim.plant, "t", 0.0) / 60,
    )


@contextlib.contextmanager
def _logging_through_live(before: Sequence[Any]) -> Iterator[None]:
    """Point the stream handlers that write to the real stdout/stderr at Live's proxies.

    ``logging.basicConfig`` keeps the ``sys.stderr`` of its time; a log line written there while the
    live view is up moves the cursor under Live's feet, and every refresh then leaves a stale copy
    of the frame's top behind (the alert log lines made the header panels pile up).
    """
    proxies = {
        id(old): new for old, new in zip(before, (sys.stdout, sys.stderr), strict=True) if new is not old
    }
    moved: list[tuple[logging.StreamHandler[Any], Any]] = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and id(handler.stream) in proxies:
            moved.append((handler, handler.setStream(proxies[id(handler.stream)])))
    try:
        yield
    finally:
        for handler, old in moved:
            handler.setStream(old)


async def live_view(agent: Agent, sim: Any, stop: asyncio.Event, console: Console | None = None) -> None:
    before = (sys.stdout, sys.stderr)
    with (
        Live(
            render(agent, sim), console=console, refresh_per_second=2, screen=False, vertical_overflow="crop"
        ) as live,
        _logging_through_live(before),
    ):
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
        tsr = kiln.get("thermal_substitution_pct", (None, ""))[0]
        net = kiln.get("co2_net_kg_per_t_clinker", (None, ""))[0]
        # the largest cause of the deviation from target right now (docs/kpis.md §10)
        losses = {k: x for k, (x, _u) in kiln.items() if k.startswith("loss_") and x is not None}
        top = max(losses, key=lambda k: abs(losses[k]), default=None)
        name = top.removeprefix("loss_").removesuffix("_kcal_per_kg") if top is not None else ""
        cause = f" top_loss={name}:{losses[top]:+.1f}kcal/kg" if top is not None else ""
        print(
            f"samples={v.samples_written} kpi_rows={v.kpi_rows_written} open_alerts={len(v.open_alerts)} "
            f"kiln_specific_heat_kcal_per_kg={_fmt(shc, 'kcal/kg')} tsr_pct={_fmt(tsr, '%')} "
            f"co2_net_kg_per_t={_fmt(net, 'kg/t')}{cause}",
            flush=True,
        )
