"""``kilnwatch simulate``: printed config and map, one-line errors, clean stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from sim_support import read_all_modbus

from agent.cli import main
from agent.config import parse_config
from connectors.modbus_config import ModbusSource
from connectors.opcua_config import OpcuaSource
from simulator.config_gen import agent_config_toml

DEPLOY_SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "kilnwatch-sim.toml"


def test_print_config_matches_the_deploy_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--print-config"]) == 0
    assert capsys.readouterr().out == DEPLOY_SAMPLE.read_text(encoding="utf-8")


def test_print_config_uses_given_ports_and_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["simulate", "--print-config", "--modbus-port", "1502", "--opcua-port", "4841", "--lines", "2"])
        == 0
    )
    cfg = parse_config(tomllib.loads(capsys.readouterr().out))
    assert next(s for s in cfg.sources if isinstance(s, ModbusSource)).port == 1502
    assert next(s for s in cfg.sources if isinstance(s, OpcuaSource)).endpoint.endswith(":4841/kilnwatch")
    assert {a.id for a in cfg.assets} >= {"kiln1", "kiln2", "whr2"}


def test_config_flag_takes_the_ports_from_an_agent_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg_file = tmp_path / "agent.toml"
    cfg_file.write_text(agent_config_toml(modbus_port=1600, opcua_port=4900), encoding="utf-8")
    assert main(["simulate", "--config", str(cfg_file), "--print-config"]) == 0
    assert capsys.readouterr().out == agent_config_toml(modbus_port=1600, opcua_port=4900)


def test_list_scenarios_and_print_map(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--list-scenarios"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("false_air_leak", "plc_dropout", "kiln_stop", "sensor_freeze"))
    assert main(["simulate", "--print-map"]) == 0
    table = capsys.readouterr().out
    assert table.startswith("| tag | unit |")
    assert "`ns=2;s=WHR1.GeneratorPower`" in table


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--scenario", "meltdown"], "unknown scenario 'meltdown'"),
        (["--scenario", "kiln_stop@later"], "bad time 'later'"),
        (["--extra-tags", "99999"], "do not fit"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and "\n" not in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("flag", "other", "protocol"),
    [("--modbus-port", "--opcua-port", "Modbus TCP"), ("--opcua-port", "--modbus-port", "OPC UA")],
)
def test_busy_port_gives_one_line_naming_the_port_exit_2(flag: str, other: str, protocol: str) -> None:
    # a subprocess: the whole of stderr, library log handlers included, as a user sees it
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-c", _MAIN, "simulate", flag, str(port), other, "0", "--duration", "0.1"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 2
    assert r.stderr == (
        f"kilnwatch simulate: cannot listen on 127.0.0.1:{port} ({protocol}): address already in use\n"
    )
    assert r.stdout == ""


_MAIN = "import sys; from agent.cli import main; sys.exit(main())"


def _start(*args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _MAIN, "simulate", "--modbus-port", "0", "--opcua-port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    banner = ""
    while "Ctrl-C" not in banner:
        line = proc.stdout.readline()
        assert line or proc.poll() is None, (
            f"simulator exited early: {proc.stderr.read() if proc.stderr else ''}"
        )
        banner += line
        assert time.monotonic() < deadline, banner
    m = re.search(r"Modbus TCP\s+127\.0\.0\.1:(\d+)", banner)
    assert m, banner
    assert re.search(r"OPC UA\s+opc\.tcp://127\.0\.0\.1:\d+/kilnwatch", banner), banner
    return proc, int(m.group(1))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_simulate_serves_and_stops_cleanly_on_signal(sig: signal.Signals) -> None:
    proc, port = _start("--speed", "10", "--scenario", "false_air_leak@1m")
    try:
        from simulator.tagmap import build_tagmap

        values = asyncio.run(read_all_modbus(port, build_tagmap()))
        assert 250 <= values["kiln1.feed_tph"] <= 350
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "simulator stopped" in out
    assert "Traceback" not in err
