"""The ``kilnwatch`` command line (README, "Commands").

Every command answers ``--help``; bad arguments or files give one line and a non-zero exit, never a
traceback. Subcommands live next to the code they drive: each module offers ``register(sub)``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib import metadata

from agent.config import Config, ConfigError, load_config
from common.cli import EXIT_OK, EXIT_USAGE, CliError, Handler, add_config_arg


def config_from_args(args: argparse.Namespace) -> Config:
    """Load the config, printing one line per problem and exiting 2 when it is invalid."""
    if not getattr(args, "config", None):
        raise CliError("--config FILE (or KILNWATCH_CONFIG) is required", EXIT_USAGE)
    try:
        return load_config(args.config)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def _cmd_check_config(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    from agent.preflight import local_problems, warnings
    from rules.packs import RulePackError, load_rules

    problems = local_problems(cfg)
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        return EXIT_USAGE
    try:
        load_rules(cfg.rule_settings())
    except RulePackError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return EXIT_USAGE
    n_tags = len(cfg.all_tags())
    print(f"{args.config}: OK ({len(cfg.sources)} sources, {n_tags} tags, {len(cfg.assets)} assets)")
    for line in warnings(cfg):
        print(f"warning: {line}")
    # values the plant did not give, so an auditor sees which numbers are defaults (docs/kpis.md §9.1)
    for i, a in enumerate(cfg.assets):
        for j, f in enumerate(a.fuels or ()):
            for d in f.defaults_used():
                print(f"note: assets[{i}].fuels[{j}] ({a.id} {f.name}): default {d}")
    return EXIT_OK


def _version() -> str:
    """The installed distribution's version (pyproject.toml), or ``unknown`` in a bare checkout."""
    try:
        return metadata.version("kilnwatch")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kilnwatch",
        description="Energy-efficiency monitoring agent for cement plants.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-v: INFO, -vv: DEBUG)"
    )
    parser.add_argument("--version", action="version", version=f"kilnwatch {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("check-config", help="validate a config file without any I/O")
    add_config_arg(p)
    p.set_defaults(func=_cmd_check_config)

    # Command groups live next to the code they drive; each offers ``register(sub)``. The agent
    # imports them (never the reverse): the simulator gets the config loader handed in.
    from agent import audit_cli, commands
    from connectors import probe
    from simulator import cli as simulator_cli

    commands.register(sub)
    simulator_cli.register(sub, load_config=config_from_args)
    probe.register(sub)
    audit_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # WARNING (things an operator must act on) unless a command asks for more: ``run`` logs its life
    # cycle at INFO for the journal. Each -v lowers the level one step, down to DEBUG.
    base: int = getattr(args, "log_level", logging.WARNING)
    level = max(logging.DEBUG, base - 10 * args.verbose)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level > logging.DEBUG:
        # asyncua narrates every request at INFO: protocol chatter, shown with DEBUG only
        logging.getLogger("asyncua").setLevel(logging.WARNING)
    func: Handler = args.func
    try:
        return func(args)
    except CliError as exc:
        print(f"kilnwatch {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
