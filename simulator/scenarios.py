"""Fault scenarios of the simulated plant and the ``--scenario`` syntax.

A scenario string is a comma-separated list of ``NAME[@START][+DURATION]``: ``false_air_leak@10m``
starts a false-air leak after 10 simulated minutes and keeps it; ``plc_dropout@30s+2m`` takes the
PLCs off the network after 30 s for 2 min. ``normal`` (or an empty string) is the plant without
faults. Times are simulated time (``--speed`` compresses them) and accept ``s``, ``m``, ``h``, ``d``
suffixes or bare seconds. Parsing is pure and raises :class:`ScenarioError` with one clear line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.durations import DurationError, format_duration, parse_duration


class ScenarioError(ValueError):
    """A scenario string that cannot be used (unknown name, bad time)."""


@dataclass(frozen=True, slots=True)
class ScenarioInfo:
    """What a scenario does, for ``--list-scenarios`` and docs/simulator.md."""

    name: str
    #: Simulated seconds the fault lasts when no ``+DURATION`` is given; None = until the end.
    default_duration_secs: float | None
    summary: str
    expected_effect: str


CATALOGUE: dict[str, ScenarioInfo] = {
    s.name: s
    for s in (
        ScenarioInfo(
            "normal",
            None,
            "Steady 5,000 t/d operation with noise, slow drift and operator setpoint steps; coal, "
            "RDF and sawdust co-fired.",
            "SHC 700-780 kcal/kg (~735), thermal substitution ~21 % (RDF ~6.5 t/h, sawdust ~2.5 t/h; "
            "hourly 19-23 %), false air < 5 %, CO < 0.1 %, PH exit 300-340 °C and O2 ~2.9 %, clinker "
            "~115 °C, clinker ~75 % of the cement mill feed, raw VRM 14-18, coal mill 18-25, cement ball "
            "mill with high-efficiency separator 29-33 kWh/t, WHR 30-45 kWh/t clinker.",
        ),
        ScenarioInfo(
            "false_air_leak",
            None,
            "A preheater leak (cyclone door, flap valve) lets in cold air; onset over ~10 min.",
            "PH exit O2 ~2.9 -> ~5.4 %, two-point false air ~3.5 -> ~20 % (> 15 % after ~10 min), "
            "PH exit T only +~8 °C, SHC +25-35 kcal/kg (docs/kpis.md §8: ~2 kcal/kg per % false air; "
            "~3/4 of it the excess-air loss of docs/kpis.md §10), PH gas flow +20 %, ID fan kW +30 %, "
            "WHR generation +10 % (more hot gas); coal alone covers the extra heat.",
        ),
        ScenarioInfo(
            "burner_inefficiency",
            None,
            "Worn main-burner tip / poor coal fineness: incomplete combustion; onset over ~5 min.",
            "SHC +5.5 % (~+40 kcal/kg), kiln-inlet CO 0.03 -> ~0.48 %, PH exit CO 0.05 -> ~0.30 %, "
            "kiln-inlet O2 -0.6 %-pt, PH exit T +~38 °C (over design + 30), kiln-inlet T up, "
            "burning-zone T down: the exit-gas and CO losses of docs/kpis.md §10 carry ~3/4 of the rise.",
        ),
        ScenarioInfo(
            "cooler_air_shortfall",
            None,
            "A cooling-air fan of the cooler's recuperation zone trips: less air through the hot "
            "clinker bed; onset over ~5 min.",
            "Clinker exit T ~115 -> ~185 °C (> 150 °C after ~12 min), secondary and tertiary air "
            "-40 °C, cooler fans kW -15 %, SHC +~17 kcal/kg (mostly the clinker loss, docs/kpis.md "
            "§10), PH exit T +~5 °C, AQC inlet T +~40 °C and WHR generation +~10 % (hotter air "
            "downstream).",
        ),
        ScenarioInfo(
            "mill_running_empty",
            None,
            "Cement mill feed interrupted (clinker hopper empty) while the mill keeps turning.",
            "cement_mill feed -> ~0.5 t/h and its clinker feeder -> 0 within ~3 min, main drive "
            "stays ~75 % of rated, kWh/t -> several thousand, Blaine and outlet temperature rise.",
        ),
        ScenarioInfo(
            "whr_underperformance",
            None,
            "WHR boiler fouling and an AQC bypass damper left open; onset over ~15 min.",
            "AQC inlet T -45 °C, SP outlet T +35 °C, generation ~7.8 -> ~4.6 MW: gross ~22, "
            "net ~19 kWh/t clinker (< 30).",
        ),
        ScenarioInfo(
            "compressed_air_leak",
            None,
            "A planned production stop (all sections off) during which compressed-air leaks keep "
            "the compressors loaded.",
            "production_running -> false, kiln and mills stop; compressor kW stays ~620 kW "
            "(~78 % of on-production load) instead of dropping to ~245 kW; air flow ~100 Nm³/min.",
        ),
        ScenarioInfo(
            "sensor_freeze",
            None,
            "Three transmitters freeze: PH exit O2 and AQC inlet T (status stays Good), clinker "
            "exit T (PLC flags it: OPC UA Uncertain_LastUsableValue, Bad_SensorFailure after 30 min).",
            "The frozen values stay exactly constant on Modbus and OPC UA; everything else moves.",
        ),
        ScenarioInfo(
            "plc_dropout",
            60.0,
            "The PLCs drop off the network: Modbus and OPC UA listeners close (connection refused, "
            "open connections reset) and come back after the duration (default 60 s).",
            "Agent reads fail (comm_error) for the duration, then recover; OPC UA sessions and "
            "subscriptions must be re-created. The plant keeps running meanwhile.",
        ),
        ScenarioInfo(
            "plc_hang",
            60.0,
            "The PLCs' communication processors hang: TCP connections are accepted but no Modbus "
            "request or OPC UA message is ever answered, for the duration (default 60 s). Open "
            "connections are reset when the hang starts.",
            "Agent requests time out (comm_error after timeout_ms, not an immediate refusal), "
            "reconnects connect and hang again; afterwards reads recover on the same ports.",
        ),
        ScenarioInfo(
            "kiln_stop",
            7200.0,
            "Kiln feed and fuel stop, the kiln cools down, then heats up on the main burner and "
            "ramps feed back to nominal (default stop 2 h; restart takes ~1-3 h).",
            "Feed and all fuels -> 0 (RDF and sawdust trip at once), kiln running -> false, "
            "temperatures decay (O2 -> 20.9 %), WHR trips; after the stop: heat-up on ~35 % coal "
            "firing, then a 45 min feed ramp; RDF and sawdust return above 80 % feed.",
        ),
    )
}

_ITEM = re.compile(r"^(?P<name>[a-z_]+)(?:@(?P<start>[^+]+))?(?:\+(?P<dur>.+))?$")


@dataclass(frozen=True, slots=True)
class ScheduledScenario:
    """One fault with its simulated start time and duration (None = until the end)."""

    name: str
    start_secs: float = 0.0
    duration_secs: float | None = None

    def active(self, t: float) -> bool:
        """Whether the fault is on at simulated time ``t`` (seconds since start)."""
        if t < self.start_secs:
            return False
        return self.duration_secs is None or t < self.start_secs + self.duration_secs

    def __str__(self) -> str:
        text = self.name
        if self.start_secs:
            text += f"@{format_duration(self.start_secs)}"
        if self.duration_secs is not None:
            text += f"+{format_duration(self.duration_secs)}"
        return text


def _secs(text: str) -> float:
    """A start or duration of the ``--scenario`` grammar (common/durations.py), as a ScenarioError."""
    try:
        return parse_duration(text)
    except DurationError:
        raise ScenarioError(f"bad time {text!r}: use a duration like 90s, 10m, 1h30m or 2d") from None


def parse_scenarios(text: str) -> tuple[ScheduledScenario, ...]:
    """Parse a ``--scenario`` string; ``normal`` entries are dropped (they add no fault)."""
    out: list[ScheduledScenario] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        m = _ITEM.match(item)
        if not m:
            raise ScenarioError(
                f"bad scenario {item!r}: use NAME[@START][+DURATION], e.g. false_air_leak@10m"
            )
        name = m.group("name")
        if name not in CATALOGUE:
            raise ScenarioError(f"unknown scenario {name!r}; known: {', '.join(CATALOGUE)}")
        start = _secs(m.group("start")) if m.group("start") else 0.0
        dur_text = m.group("dur")
        duration = _secs(dur_text) if dur_text else CATALOGUE[name].default_duration_secs
        if duration is not None and duration <= 0:
            raise ScenarioError(f"scenario {item!r}: duration must be positive")
        if name == "normal":
            continue
        out.append(ScheduledScenario(name, start, duration))
    return tuple(out)


def describe(scenarios: tuple[ScheduledScenario, ...]) -> str:
    """One line for logs and the CLI banner."""
    return ", ".join(str(s) for s in scenarios) if scenarios else "normal"
