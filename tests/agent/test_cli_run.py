"""The daemon and the dry run as users start them: real processes, real loopback PLCs."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from waiting import wait_until

from agent import storage
from simulator.runner import SimulatedPlant


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[SimulatedPlant]:
    async with SimulatedPlant(modbus_port=0, opcua_port=0, seed=3) as plant:
        yield plant


def _write_config(sim: SimulatedPlant, tmp_path: Path, flush_every_secs: float) -> tuple[Path, Path]:
    db = tmp_path / "site.duckdb"
    text = sim.config_toml(db_path=str(db))
    text = text.replace("flush_every_secs = 5", f"flush_every_secs = {flush_every_secs}")
    assert tomllib.loads(text)["agent"]["flush_every_secs"] == flush_every_secs
    cfg = tmp_path / "kilnwatch.toml"
    cfg.write_text(text)
    return cfg, db


async def _cli(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.mark.asyncio
async def test_sigterm_flushes_every_sample_before_exit(sim: SimulatedPlant, tmp_path: Path) -> None:
    from agent.config import parse_config
    from connectors import make_connector

    # flush interval far longer than the run: every stored row is written by the shutdown flush
    cfg, db = _write_config(sim, tmp_path, flush_every_secs=600)
    plc = next(s for s in parse_config(tomllib.loads(cfg.read_text())).sources if s.type == "modbus")
    per_poll = len(make_connector(plc).plan)  # type: ignore[attr-defined]
    proc = await _cli("run", "--config", str(cfg))
    try:
        # the agent asks for a second poll only once the first poll's frame is queued for the writer
        await wait_until(
            lambda: proc.returncode is not None or sum(sim.function_codes.values()) > per_poll,
            within=60,
            what="the agent's second Modbus poll",
        )
        # Not a wait for state: half the 1 s poll interval puts SIGTERM between two polls, as a
        # systemd stop mostly lands, rather than always inside the decoding of the poll just
        # answered (a signal there has been seen to hang the process inside polars).
        await asyncio.sleep(0.5)
        assert proc.returncode is None
        proc.send_signal(signal.SIGTERM)
        killed_at = time.time()
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    con = storage.connect(db, read_only=True)
    n, last = con.execute("SELECT count(*), epoch(max(ts)) FROM samples").fetchone() or (0, 0)
    con.close()
    assert n > 0
    assert killed_at - last < 3.0  # the last poll before SIGTERM is in the file
    # without -v the daemon's journal has its life cycle at INFO; WARNING is for operator action
    log = err.decode()
    assert " INFO agent.commands: kilnwatch agent for site plant1: 2 source(s)" in log
    assert " INFO agent.commands: kilnwatch agent for site plant1 stopped" in log
    assert "source plant_plc connected" in log
    assert " WARNING agent.commands:" not in log
    assert " INFO asyncua" not in log  # protocol chatter only with -vv


@pytest.mark.asyncio
async def test_once_prints_signals_and_kpis(sim: SimulatedPlant, tmp_path: Path) -> None:
    cfg, _ = _write_config(sim, tmp_path, flush_every_secs=5)
    proc = await _cli("once", "--config", str(cfg))
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "kiln1.feed_tph" in text and "whr1.generator_kw" in text
    assert "specific_heat_kcal_per_kg_clinker" in text


@pytest.mark.asyncio
async def test_run_with_bad_config_exits_2_without_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[agent]\nsite = "p"\nflush_every_secs = -1\n')
    proc = await _cli("run", "--config", str(cfg))
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert err.decode().strip() == "agent.flush_every_secs: Input should be greater than 0"


@pytest.mark.asyncio
async def test_demo_runs_by_itself_and_keeps_its_database(tmp_path: Path) -> None:
    db = tmp_path / "demo.duckdb"
    proc = await _cli("demo", "--minutes", "0.25", "--db", str(db), "--no-view")
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert "mosquitto_sub" in out.decode()
    con = storage.connect(db, read_only=True)
    n_samples = con.execute("SELECT count(*) FROM samples").fetchone()
    con.close()
    assert n_samples is not None and n_samples[0] > 100


@pytest.mark.parametrize("args", [["--help"], ["demo", "--help"], ["run", "--help"], ["once", "--help"]])
def test_help_works(args: list[str]) -> None:
    import subprocess

    r = subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "usage: kilnwatch" in r.stdout


def test_demo_speed_divides_every_built_in_rule_duration(tmp_path: Path) -> None:
    """`demo --speed X`: rules run on wall time, so the demo pack shortens `for`/`window` by X."""
    from agent.commands import write_sped_up_pack
    from agent.config import parse_config
    from rules.packs import load_rules
    from simulator.config_gen import agent_config_toml

    data = tomllib.loads(agent_config_toml(modbus_port=5020, opcua_port=4840))
    builtin = {r.id: r for r in load_rules(parse_config(data).rule_settings())}
    data["agent"]["rule_files"] = [str(write_sped_up_pack(tmp_path, 10))]
    sped = {r.id: r for r in load_rules(parse_config(data).rule_settings())}
    assert sped.keys() == builtin.keys() and len(sped) >= 10
    for rid, rule in sped.items():
        assert rule.for_secs == max(1, round(builtin[rid].for_secs / 10)), rid
        assert rule.when.text == builtin[rid].when.text
    assert sped["kiln.specific_heat.high"].window_secs == 360  # 60 min / 10


@pytest.mark.asyncio
async def test_once_piped_to_a_file_keeps_full_names_units_and_one_number_format(
    sim: SimulatedPlant, tmp_path: Path
) -> None:
    """Not a TTY (and no COLUMNS): rich used to assume 80 columns and cut KPI names with "…"."""
    cfg, _ = _write_config(sim, tmp_path, flush_every_secs=5)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent", "once", "--config", str(cfg),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "…" not in text
    kpi_line = next(line for line in text.splitlines() if "specific_heat_kcal_per_kg_clinker" in line)
    assert "kcal/kg" in kpi_line
    assert "." not in kpi_line.split("│")[3]  # kcal/kg: 0 decimals
    signal_header = next(line for line in text.splitlines() if "tag" in line and "quality" in line)
    assert "unit" in signal_header
    ph_exit = next(line for line in text.splitlines() if "kiln1.ph_exit_temp_c" in line)
    assert "°C" in ph_exit
    assert "-0.0" not in text and "-0 " not in text
