"""Every ``kilnwatch`` option explains itself in ``--help``, and ``kilnwatch --version`` answers."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from agent.cli import build_parser, main


def _parsers(
    parser: argparse.ArgumentParser, path: str = "kilnwatch"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """The parser and every subcommand's (and sub-subcommand's), depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_option_of_every_subcommand_has_help() -> None:
    missing = [
        f"{path} {'/'.join(action.option_strings)}"
        for path, parser in _parsers(build_parser())
        for action in parser._actions
        if action.option_strings
        and not isinstance(action, argparse._HelpAction)
        and action.help is not argparse.SUPPRESS
        and not (action.help or "").strip()
    ]
    assert missing == []


def test_the_walk_reaches_sub_subcommands() -> None:
    paths = {path for path, _ in _parsers(build_parser())}
    assert {"kilnwatch baseline savings", "kilnwatch probe opcua", "kilnwatch report"} <= paths


def test_config_help_says_the_environment_variable_works() -> None:
    run = dict(_parsers(build_parser()))["kilnwatch run"]
    (config,) = [a for a in run._actions if "--config" in a.option_strings]
    assert "$KILNWATCH_CONFIG" in (config.help or "")


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"kilnwatch {version('kilnwatch')}\n"


def test_version_from_the_installed_command() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "agent", "--version"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"kilnwatch {version('kilnwatch')}"


README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_lists_every_scenario_and_the_real_granularities() -> None:
    from simulator.scenarios import CATALOGUE

    text = README.read_text(encoding="utf-8")
    assert [name for name in CATALOGUE if f"`{name}`" not in text] == []
    fit = dict(_parsers(build_parser()))["kilnwatch baseline fit"]
    (granularity,) = [a for a in fit._actions if "--granularity" in a.option_strings]
    assert "|".join(granularity.choices or ()) in text.replace("\\|", "|")


def test_report_and_export_say_whether_to_is_inclusive() -> None:
    parsers = dict(_parsers(build_parser()))
    for command in ("kilnwatch report", "kilnwatch export", "kilnwatch baseline savings"):
        (to,) = [a for a in parsers[command]._actions if "--to" in a.option_strings]
        assert "inclusive" in (to.help or ""), command


def test_baseline_savings_to_default_matches_the_code_not_now() -> None:
    # agent/mv_savings.compute_savings ends with the last period holding data (docs/auditors.md)
    savings = dict(_parsers(build_parser()))["kilnwatch baseline savings"]
    (to,) = [a for a in savings._actions if "--to" in a.option_strings]
    assert "last period holding data" in (to.help or "") and "now" not in (to.help or "")
