"""The ``kilnwatch`` command line (CONTRACT §1).

Every command answers ``--help``; bad arguments or files give one line and a non-zero exit, never a
traceback. Subcommands live next to the code they drive: each module offers ``register(sub)``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from agent.config import Config, ConfigError, load_config

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code attached."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def add_config_arg(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--config FILE``, defaulting to ``$KILNWATCH_CONFIG`` (CONTRACT §1)."""
    env = os.environ.get("KILNWATCH_CONFIG")
    p.add_argument(
        "--config",
        metavar="FILE",
        default=env,
        required=required and env is None,
        help="config file (TOML); default $KILNWATCH_CONFIG",
    )


def stop_on_signals(stop: asyncio.Event) -> None:
    """Set ``stop`` on SIGINT/SIGTERM so long-running commands shut down cleanly (flush, offline).

    ``add_signal_handler`` is missing on some platforms and outside the main thread; there the
    default handlers stay (Ctrl-C still interrupts).
    """
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


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
    from rules.engine import RulePackError, load_rules

    try:
        load_rules(cfg)
    except RulePackError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return EXIT_USAGE
    n_tags = len(cfg.all_tags())
    print(f"{args.config}: OK ({len(cfg.sources)} sources, {n_tags} tags, {len(cfg.assets)} assets)")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kilnwatch",
        description="Energy-efficiency monitoring agent for cement plants.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("check-config", help="validate a config file without any I/O")
    add_config_arg(p)
    p.set_defaults(func=_cmd_check_config)

    from agent import commands

    commands.register(sub)
    for module in _optional_command_modules():
        module.register(sub)
    return parser


def _optional_command_modules() -> list[Any]:
    """Command groups of other packages; each has ``register(sub)``."""
    import importlib

    mods: list[Any] = []
    for name in ("simulator.cli", "connectors.probe", "agent.audit_cli"):
        try:
            mods.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return mods


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    func: Handler = args.func
    try:
        return func(args)
    except CliError as exc:
        print(f"kilnwatch {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
