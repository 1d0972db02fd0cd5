"""``kilnwatch simulate``: the simulated plant alone, standing in for real PLCs (README, "Simulator").

The simulator never imports the agent: ``kilnwatch`` hands in its config loader when it registers
the command, so ``--config`` is read and reported exactly as every other command does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from common.cli import EXIT_OK, EXIT_USAGE, CliError, add_config_arg, stop_on_signals
from common.durations import format_duration
from connectors.modbus_config import ModbusSource
from connectors.opcua_config import OpcuaSource
from simulator.config_gen import DEFAULT_MODBUS_PORT, DEFAULT_OPCUA_PORT, agent_config_toml
from simulator.listen import ListenError
from simulator.scenarios import CATALOGUE, ScenarioError, describe, parse_scenarios
from simulator.tagmap import NAMESPACE_INDEX, NAMESPACE_URI, build_tagmap, markdown_table

if TYPE_CHECKING:
    from simulator.runner import SimulatedPlant


class _HasSources(Protocol):
    """What ``simulate --config`` needs of a loaded config: its sources (for the ports)."""

    @property
    def sources(self) -> Sequence[ModbusSource | OpcuaSource]: ...


#: Loads ``--config`` (one line per problem and exit 2 when it is invalid).
ConfigLoader = Callable[[argparse.Namespace], _HasSources]


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("a port is 0..65535 (0 = any free port)")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], *, load_config: ConfigLoader) -> None:
    """Add ``kilnwatch simulate`` to the command line."""
    p = sub.add_parser(
        "simulate",
        help="run the simulated cement plant (Modbus TCP + OPC UA servers)",
        description=(
            "Serve a simulated 5,000 t/d precalciner line (kiln, raw/coal/cement mills, WHR, site incomer) "
            "on Modbus TCP and OPC UA, standing in for real PLCs. Scenarios: "
            + ", ".join(CATALOGUE)
            + ". Schedule with NAME@START[+DURATION], e.g. false_air_leak@10m,plc_dropout@30m+1m."
        ),
    )
    add_config_arg(p, required=False)
    p.add_argument("--modbus-port", type=_port, metavar="P", help=f"default {DEFAULT_MODBUS_PORT}")
    p.add_argument("--opcua-port", type=_port, metavar="P", help=f"default {DEFAULT_OPCUA_PORT}")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--scenario", default="normal", metavar="NAME", help="comma-separated NAME[@START][+DURATION]"
    )
    p.add_argument(
        "--speed", type=_non_negative, default=1.0, metavar="X", help="simulated time runs X times faster"
    )
    p.add_argument("--seed", type=int, default=1, metavar="N", help="random seed (same seed, same plant)")
    p.add_argument(
        "--lines", type=_positive_int, default=1, metavar="N", help="number of kiln lines (kiln2, ...)"
    )
    p.add_argument("--extra-tags", type=int, default=0, metavar="N", help="filler tags for load tests")
    p.add_argument("--tick-secs", type=float, default=1.0, metavar="S", help="PLC scan period (default 1 s)")
    p.add_argument(
        "--opcua-security", action="store_true", help="also offer Basic256Sha256 Sign/SignAndEncrypt"
    )
    p.add_argument(
        "--opcua-trust",
        action="append",
        default=[],
        type=Path,
        metavar="CERT",
        help="with --opcua-security: also trust this client certificate (DER or PEM; repeatable); "
        "others than the generated agent certificate are refused",
    )
    p.add_argument("--duration", type=_non_negative, metavar="SECS", help="stop after SECS of wall time")
    p.add_argument(
        "--print-config", action="store_true", help="print the agent config for these ports and exit"
    )
    p.add_argument("--print-map", action="store_true", help="print the register/node map (Markdown) and exit")
    p.add_argument(
        "--list-scenarios", action="store_true", help="list scenarios with expected effects and exit"
    )
    p.set_defaults(func=_cmd_simulate, load_config=load_config)


def _ports(args: argparse.Namespace) -> tuple[int, int, bool]:
    """Modbus port, OPC UA port, and OPC UA security from flags, then ``--config``, then defaults."""
    modbus, opcua, security = DEFAULT_MODBUS_PORT, DEFAULT_OPCUA_PORT, False
    if args.config:
        cfg = args.load_config(args)
        for src in cfg.sources:
            if isinstance(src, ModbusSource):
                modbus = src.port
            elif isinstance(src, OpcuaSource):
                opcua = urlsplit(src.endpoint).port or DEFAULT_OPCUA_PORT
                security = security or src.security != "None"
    if args.modbus_port is not None:
        modbus = args.modbus_port
    if args.opcua_port is not None:
        opcua = args.opcua_port
    return modbus, opcua, security or args.opcua_security


def _cmd_simulate(args: argparse.Namespace) -> int:
    if getattr(args, "verbose", 0) < 2:
        # asyncua logs every publish request at INFO; keep -v readable (state changes only)
        logging.getLogger("asyncua").setLevel(logging.WARNING)
    try:
        scenarios = parse_scenarios(args.scenario)
        build_tagmap(lines=args.lines, extra_tags=args.extra_tags)
    except (ScenarioError, ValueError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if args.tick_secs <= 0:
        raise CliError("--tick-secs must be > 0", EXIT_USAGE)
    if args.list_scenarios:
        for info in CATALOGUE.values():
            default = (
                format_duration(info.default_duration_secs) if info.default_duration_secs else "until the end"
            )
            print(
                f"{info.name}  (default duration: {default})\n  {info.summary}\n  effect: {info.expected_effect}"
            )
        return EXIT_OK
    if args.print_map:
        sys.stdout.write(markdown_table(build_tagmap(lines=args.lines, extra_tags=args.extra_tags)))
        return EXIT_OK
    modbus, opcua, security = _ports(args)
    if args.print_config:
        sys.stdout.write(
            agent_config_toml(
                modbus_port=modbus,
                opcua_port=opcua,
                host=args.host,
                lines=args.lines,
                extra_tags=args.extra_tags,
            )
        )
        return EXIT_OK
    return asyncio.run(_serve(args, modbus, opcua, security, describe(scenarios)))


async def _serve(
    args: argparse.Namespace, modbus: int, opcua: int, security: bool, scenario_text: str
) -> int:
    from simulator.runner import SimulatedPlant

    stop = asyncio.Event()
    stop_on_signals(stop)
    sim = SimulatedPlant(
        modbus_port=modbus,
        opcua_port=opcua,
        host=args.host,
        scenario=args.scenario,
        speed=args.speed,
        seed=args.seed,
        lines=args.lines,
        tick_secs=args.tick_secs,
        opcua_security=security,
        extra_tags=args.extra_tags,
        opcua_trusted_certs=args.opcua_trust,
    )
    started = False
    try:
        async with sim:
            started = True
            print(_banner(sim, args, scenario_text, security), flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=args.duration)
    except ListenError as exc:
        if started:
            raise
        # a busy or forbidden port is the user's to fix (--modbus-port / --opcua-port): exit 2
        raise CliError(str(exc), EXIT_USAGE) from None
    except (OSError, RuntimeError) as exc:
        if started:
            raise
        raise CliError(f"cannot start the simulated PLC servers on {args.host}: {exc}") from None
    print("simulator stopped", flush=True)
    return EXIT_OK


def _banner(sim: SimulatedPlant, args: argparse.Namespace, scenario_text: str, security: bool) -> str:
    """Where the simulated PLCs listen, and how to point an agent at them."""
    lines = "line" if args.lines == 1 else "lines"
    text = (
        f"kilnwatch simulated cement plant: {args.lines} {lines}, {len(sim.plant.tagmap)} tags, "
        f"scenario {scenario_text}, speed {args.speed:g}x, seed {args.seed}\n"
        f"  Modbus TCP  {args.host}:{sim.modbus_port}  unit {sim.unit_id}\n"
        f"  OPC UA      {sim.opcua_endpoint}  (ns={NAMESPACE_INDEX} {NAMESPACE_URI}, "
        f"security {'None + Basic256Sha256' if security else 'None'})\n"
        f"  agent config: kilnwatch simulate --print-config --modbus-port {sim.modbus_port} "
        f"--opcua-port {sim.opcua_port}\n"
    )
    if sim.client_cert is not None:
        text += (
            f'  client certificate for the agent (deleted on exit): cert_file = "{sim.client_cert.cert}", '
            f'key_file = "{sim.client_cert.key}"\n'
        )
    return text + "Ctrl-C to stop."
