"""Core agent commands: ``run`` (the daemon), ``once`` (dry run) and ``demo`` (everything on loopback)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
import tomllib
from pathlib import Path

import polars as pl

from agent.cli import config_from_args
from agent.config import Config, MqttSection, parse_config
from common.cli import EXIT_OK, EXIT_USAGE, CliError, add_config_arg, stop_on_signals

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the core agent commands to the ``kilnwatch`` parser."""
    p = sub.add_parser(
        "run",
        help="run the agent daemon (what systemd starts)",
        description="Poll the sources, store samples and KPIs, evaluate rules and publish alerts until "
        "SIGTERM/SIGINT. Logs at INFO by default (start, stop, sources connecting); -v adds DEBUG.",
    )
    add_config_arg(p)
    # a daemon's journal wants its life cycle (start, stop, sources connected), not only problems
    p.set_defaults(func=cmd_run, log_level=logging.INFO)

    p = sub.add_parser(
        "maintain",
        help="move old raw samples to the Parquet archive, prune, compact and keep the disk budget, once",
        description="What the daemon does every day at agent.maintain_at (docs/storage.md): whole UTC days "
        "older than agent.samples_retention_days go to agent.archive_dir, samples_1m is refreshed and "
        "pruned, the file is checkpointed and the oldest archive days go when over the disk budget. "
        "Needs the database to itself: stop the agent first, or let the agent do it.",
    )
    add_config_arg(p)
    p.set_defaults(func=cmd_maintain)

    p = sub.add_parser("once", help="poll every source once, print the signals and KPIs, exit")
    add_config_arg(p)
    p.set_defaults(func=cmd_once)

    p = sub.add_parser(
        "demo",
        help="simulated plant + agent + MQTT broker on loopback with a live terminal view",
        description="Runs the bundled simulated plant (Modbus TCP + OPC UA on loopback), the agent "
        "polling it, DuckDB storage, an embedded MQTT broker and a live view. Ctrl-C stops it.",
    )
    p.add_argument("--minutes", type=float, default=None, help="stop by itself after N minutes")
    p.add_argument("--db", default=None, help="DuckDB file to keep (default: a temporary file)")
    p.add_argument("--scenario", default="normal", help="simulator scenario(s), e.g. false_air_leak@2m")
    p.add_argument("--speed", type=float, default=1.0, help="simulated time runs X times faster")
    p.add_argument("--no-view", action="store_true", help="log lines instead of the live view")
    p.add_argument("--evaluate-every-secs", type=float, default=5.0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_demo)


# ------------------------------------------------------------------ run
def cmd_run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    _check_rules(cfg)
    _check_local_files(cfg)
    protect_secrets(cfg)
    from agent.storage_guard import StorageLostError

    try:
        asyncio.run(_run(cfg))
    except OSError as exc:  # e.g. the metrics port in use: one line, not a traceback (exit 2)
        where = f" ({exc.filename})" if exc.filename else ""
        raise CliError(f"cannot start: {exc.strerror or exc}{where}", EXIT_USAGE) from None
    except BaseExceptionGroup as group:  # a lost database: one line, systemd restarts and reopens it
        lost = group.subgroup(StorageLostError)
        if lost is None:
            raise
        raise CliError(str(lost.exceptions[0])) from None
    return EXIT_OK


def cmd_maintain(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    _check_local_files(cfg)
    import duckdb

    from agent import storage
    from agent.storage_guard import first_line
    from agent.tiering import TieringError, TierSettings, maintain

    con = storage.connect(cfg.agent.db_path)  # held by the agent: one line, exit 2
    try:
        result = maintain(con, TierSettings.from_agent(cfg.agent))
    except (duckdb.Error, OSError, TieringError) as exc:
        raise CliError(f"maintenance of {cfg.agent.db_path} failed: {first_line(exc)}") from None
    finally:
        con.close()
    print(f"{cfg.agent.db_path}: {result.summary()}")
    return EXIT_OK


def _check_local_files(cfg: Config) -> None:
    """What check-config rejects, run rejects too: files and the database path (agent/preflight.py)."""
    from agent.preflight import local_problems

    problems = local_problems(cfg)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        raise SystemExit(2)


def protect_secrets(cfg: Config) -> None:
    """Mask the configured passwords in every log line, create files without world access, and warn
    about settings that expose the gateway (docs/configuration.md, secrets)."""
    from common.redact import install
    from connectors.opcua_config import OpcuaSource

    secrets: list[str | None] = []
    for src in cfg.sources:
        if isinstance(src, OpcuaSource) and src.username:
            with contextlib.suppress(OSError):  # the connector reports an unreadable file when it connects
                secrets.append(src.password())
            if src.security == "None":
                log.warning(
                    'source %s: the OPC UA password is sent in clear (security = "None", '
                    "allow_plaintext_password = true)",
                    src.name,
                )
    if cfg.mqtt is not None:
        with contextlib.suppress(OSError):
            secrets.append(cfg.mqtt.password())
    install(*secrets)
    # database, WAL, snapshot and exports: owner read/write, group read, nothing for others (0640)
    os.umask(0o027)
    from agent.preflight import warnings

    for line in warnings(cfg):
        if "allow_plaintext_password" not in line:  # said above with the source's name
            log.warning("%s", line)


def _check_rules(cfg: Config) -> None:
    from rules.packs import RulePackError, load_rules

    try:
        load_rules(cfg.rule_settings())
    except RulePackError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        raise SystemExit(2) from None


async def _run(cfg: Config) -> None:
    from agent import storage
    from agent.pipeline import Agent

    stop = asyncio.Event()
    stop_on_signals(stop)
    # the daemon recovers from a damaged file (moved aside, one WARNING); auditor commands never do
    with contextlib.closing(storage.connect(cfg.agent.db_path, recover=True)) as con:
        agent = Agent(cfg, con=con)
        log.info(
            "kilnwatch agent for site %s: %d source(s), %d asset(s), database %s",
            cfg.agent.site,
            len(agent.connectors),
            len(cfg.assets),
            cfg.agent.db_path,
        )
        await agent.run(stop)
    log.info("kilnwatch agent for site %s stopped", cfg.agent.site)


# ------------------------------------------------------------------ once
def cmd_once(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    protect_secrets(cfg)
    frame = asyncio.run(_read_all_once(cfg))
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        # piped to a file: no wrapping or "…" in tag and KPI names (the terminal width is unknown)
        console = Console(width=max(console.width, 200))
    _print_frame(console, frame, cfg.tag_units())
    _print_kpis(console, cfg, frame)
    bad = frame.filter(pl.col("quality") != "good").height
    return EXIT_OK if bad == 0 else 1


async def _read_all_once(cfg: Config) -> pl.DataFrame:
    from connectors import make_connector
    from connectors.base import empty_samples

    frames = await asyncio.gather(*(make_connector(s).read_once() for s in cfg.sources if s.enabled))
    frame: pl.DataFrame = pl.concat([empty_samples(), *frames], how="vertical")
    return frame


def _print_frame(console: object, frame: pl.DataFrame, tag_units: dict[str, str] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    from agent.numbers import fmt_number
    from rules.catalogue import unit_of

    assert isinstance(console, Console)
    t = Table(title="signals", title_justify="left")
    for col in ("tag", "value", "unit", "quality", "ts"):
        t.add_column(col, justify="right" if col == "value" else "left")
    for tag, value, quality, ts in frame.select("tag", "value", "quality", "ts").iter_rows():
        unit = (tag_units or {}).get(tag) or unit_of(tag.partition(".")[2] or tag)
        v = "" if value is None else fmt_number(value, unit)
        style = "" if quality == "good" else "red"
        t.add_row(tag, v, unit, quality, ts.isoformat(timespec="seconds"), style=style)
    console.print(t)


def _print_kpis(console: object, cfg: Config, frame: pl.DataFrame) -> None:
    from rich.console import Console
    from rich.table import Table

    from agent.numbers import fmt_number
    from rules.kpi import compute_kpis

    assert isinstance(console, Console)
    kpis = compute_kpis(cfg.rule_settings(), frame, window_secs=60)
    t = Table(title="KPIs from this poll", title_justify="left")
    for col in ("asset", "kpi", "value", "unit", "reason"):
        t.add_column(col, justify="right" if col == "value" else "left")
    for asset, kpi, value, unit, reason in kpis.select("asset", "kpi", "value", "unit", "reason").iter_rows():
        t.add_row(asset, kpi, "" if value is None else fmt_number(value, unit), unit or "", reason or "")
    console.print(t)


# ------------------------------------------------------------------ demo
def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


def write_sped_up_pack(directory: Path, speed: float) -> Path:
    """A site pack re-declaring every built-in rule with ``for``/``window`` divided by ``speed``.

    Rules run on wall-clock time while ``demo --speed X`` runs the plant X times faster; without
    this a fault in the demo would need the rule's full ``for`` (15-30 min) of real time to alert.
    """
    from common.durations import parse_duration
    from rules.packs import builtin_pack_text

    _, text = builtin_pack_text()
    lines: list[str] = [f"# kilnwatch demo: built-in rules with durations divided by {speed:g}"]
    for rule in tomllib.loads(text).get("rule", []):
        rule = dict(rule)
        if "for" in rule:
            rule["for"] = f"{max(1, round(parse_duration(rule['for']) / speed))}s"
        if "window" in rule:
            rule["window"] = f"{max(1, round(parse_duration(rule['window']) / speed / 60))}m"
        if "message" in rule:
            rule["message"] = f"{rule['message']} [demo, durations /{speed:g}]"
        lines.append("\n[[rule]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in rule.items()]
    out = directory / "demo-rules.toml"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def cmd_demo(args: argparse.Namespace) -> int:
    if args.minutes is not None and args.minutes <= 0:
        raise CliError("--minutes must be positive", 2)
    if args.speed <= 0:
        raise CliError("--speed must be positive", 2)
    try:
        asyncio.run(_demo(args))
    except ValueError as exc:  # e.g. an unknown scenario name
        raise CliError(str(exc), 2) from None
    return EXIT_OK


async def _demo(args: argparse.Namespace) -> None:
    from agent import storage
    from agent.broker import EmbeddedBroker
    from agent.pipeline import Agent
    from simulator.runner import SimulatedPlant

    stop = asyncio.Event()
    stop_on_signals(stop)
    with contextlib.ExitStack() as stack:
        if args.db:
            db_path = Path(args.db)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="kilnwatch-demo-"))
            db_path = Path(tmp) / "kilnwatch.duckdb"
        async with (
            SimulatedPlant(scenario=args.scenario, speed=args.speed) as sim,
            EmbeddedBroker() as broker,
        ):
            data = tomllib.loads(sim.config_toml(db_path=str(db_path)))
            data["agent"]["evaluate_every_secs"] = args.evaluate_every_secs
            if args.speed > 1:
                rules_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kilnwatch-rules-")))
                data["agent"]["rule_files"] = [str(write_sped_up_pack(rules_dir, args.speed))]
            data["agent"]["flush_every_secs"] = 2
            data["mqtt"] = MqttSection(url=broker.url, protocol=broker.protocol).model_dump(exclude_none=True)
            cfg = parse_config(data)
            # as ``run``: a damaged --db file is moved aside (one WARNING) and a new one started
            con = stack.enter_context(contextlib.closing(storage.connect(cfg.agent.db_path, recover=True)))
            agent = Agent(cfg, con=con)
            print(
                f"kilnwatch demo: plant simulator on modbus 127.0.0.1:{sim.modbus_port} and "
                f"{sim.opcua_endpoint}; MQTT broker {broker.url}\n"
                f"  watch alerts: mosquitto_sub -h 127.0.0.1 -p {broker.port} -t 'kilnwatch/#' -v\n"
                f"  database: {db_path}" + ("" if args.db else " (temporary; use --db to keep it)"),
                flush=True,
            )
            if args.minutes is not None:
                asyncio.get_running_loop().call_later(args.minutes * 60 / 1.0, stop.set)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(agent.run(stop), name="agent")
                if not args.no_view and sys.stdout.isatty():
                    from agent.view import live_view

                    tg.create_task(live_view(agent, sim, stop), name="view")
                else:
                    from agent.view import log_view

                    tg.create_task(log_view(agent, stop), name="view")
    print(
        f"kilnwatch demo stopped: {agent.view.samples_written} samples, "
        f"{agent.view.kpi_rows_written} KPI rows, {len(agent.view.recent_events)} alert events"
    )
