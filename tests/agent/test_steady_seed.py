"""The agent hands ``steady_state_flag``'s tracker the stored unsteady minutes at start
(agent/pipeline.py, rules/steady.py): a restart 30 min after a kiln stop still denies the flag
until 2 h after the stop."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from agent import storage
from agent.config import parse_config
from agent.pipeline import Agent
from simulator.config_gen import agent_config_toml


def flag_row(start: datetime) -> pl.DataFrame:
    return pl.DataFrame(
        {"ts": [start], "site": "plant1", "asset": "kiln1", "kpi": "steady_state_flag", "value": [1.0],
         "unit": "flag", "window_secs": [60], "good_fraction": [1.0], "reason": [None]},
        schema_overrides={"ts": pl.Datetime("us", "UTC"), "reason": pl.String},
    )  # fmt: skip


def test_a_restart_after_a_stop_keeps_the_2_hours(tmp_path: Path) -> None:
    db = tmp_path / "kw.duckdb"
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    stop = now - timedelta(minutes=30)
    cfg = parse_config(tomllib.loads(agent_config_toml(modbus_port=5020, opcua_port=4840, db_path=str(db))))
    con = storage.connect(db)
    con.execute(
        "INSERT INTO kpi VALUES (?, 'plant1', 'kiln1', 'steady_state_flag', 0, 'flag', 60, 1, NULL)", [stop]
    )
    try:
        agent = Agent(cfg, con=con, connectors=[])
        agent._start_engine()
        assert agent.engine is not None
        steady = agent.engine.steady
        # the stop minute ended at stop + 1 min: windows starting before stop + 2 h 1 min are denied
        assert steady.apply(flag_row(now)).get_column("value").to_list() == [0.0]
        later = stop + timedelta(hours=2, minutes=1)
        assert steady.apply(flag_row(later)).get_column("value").to_list() == [1.0]
    finally:
        con.close()
