"""Command-line plumbing shared by every command group (agent, connectors' probe, simulator).

Exit codes and the one-line error type live here rather than in ``agent.cli`` so that command
groups outside ``agent`` can raise them without importing the agent (docs/architecture.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from collections.abc import Callable

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

#: A subcommand: parsed arguments in, exit code out.
Handler = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code attached."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def add_config_arg(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--config FILE``, defaulting to ``$KILNWATCH_CONFIG`` (README, "Commands")."""
    env = os.environ.get("KILNWATCH_CONFIG")
    p.add_argument(
        "--config",
        metavar="FILE",
        default=env,
        required=required and env is None,
        help="config file (TOML); may be left out when $KILNWATCH_CONFIG names it",
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
