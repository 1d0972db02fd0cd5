"""Config validation (docs/configuration.md) and ``kilnwatch check-config`` (README, Commands)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.config import ConfigError, load_config

VALID = textwrap.dedent(
    """
    [agent]
    site = "plant1"
    db_path = "data/kilnwatch.duckdb"

    [mqtt]
    url = "mqtts://broker.example:8883"
    username = "gateway"
    password_env = "KILNWATCH_MQTT_PASSWORD"

    [[sources]]
    name = "kiln1_plc"
    type = "modbus"
    host = "127.0.0.1"
    port = 5020

      [[sources.tags]]
      name = "kiln1.feed_tph"
      register = 0
      data_type = "float32"
      unit = "t/h"

      [[sources.tags]]
      name = "kiln1.coal_tph"
      register = 2

    [[sources]]
    name = "whr_opcua"
    type = "opcua"
    endpoint = "opc.tcp://127.0.0.1:4840/kilnwatch"

      [[sources.tags]]
      name = "whr1.generator_kw"
      node_id = "ns=2;s=WHR1.GeneratorPower"

    [[assets]]
    id = "kiln1"
    type = "kiln"
    feed_to_clinker = 1.6
    kiln_feed_tph = "kiln1.feed_tph"
    fuel_tph = ["kiln1.coal_tph"]
    fuel_ncv_mj_per_kg = 25.0

    [[assets]]
    id = "whr1"
    type = "whr"
    generator_kw = "whr1.generator_kw"
    kiln = "kiln1"
    """
)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "kilnwatch.toml"
    p.write_text(text)
    return p


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_config(_write(tmp_path, text))
    return exc.value.problems


def test_valid_config_loads_with_contract_defaults(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, VALID))
    assert cfg.agent.evaluate_every_secs == 10
    assert cfg.agent.flush_every_secs == 5
    tag = cfg.sources[0].tags[1]
    assert (tag.address, tag.table, tag.data_type, tag.word_order) == (2, "holding", "float32", "big")
    assert cfg.sources[1].mode == "subscribe"
    assert cfg.assets[0].co2_kg_per_gj == 94.6  # docs/kpis.md §4: IPCC bituminous coal default


def test_outbox_retention_is_a_positive_number_of_days(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, VALID))
    assert cfg.mqtt is not None and cfg.mqtt.outbox_retention_days == 7.0
    text = VALID.replace('url = "mqtts://broker.example:8883"', 'url = "mqtts://broker.example:8883"\noutbox_retention_days = 0')
    assert _problems(tmp_path, text) == ["mqtt.outbox_retention_days: Input should be greater than 0"]


def test_current_window_defaults_to_a_minute_and_must_fit_in_the_raw_samples_kept(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, VALID))
    assert cfg.agent.current_window_secs == 60 and cfg.rule_settings().current_window_secs == 60
    site = 'site = "plant1"'
    cfg = load_config(_write(tmp_path, VALID.replace(site, site + "\ncurrent_window_secs = 10")))
    assert cfg.rule_settings().current_window_secs == 10
    # up to window_secs (default 300), and raising window_secs makes room
    longer = site + "\ncurrent_window_secs = 900\nwindow_secs = 900"
    assert load_config(_write(tmp_path, VALID.replace(site, longer))).agent.current_window_secs == 900
    assert _problems(tmp_path, VALID.replace(site, site + "\ncurrent_window_secs = 600")) == [
        "agent.current_window_secs: 600 s is longer than the raw samples kept (agent.window_secs = 300);"
        " raise window_secs or shorten it"
    ]
    assert _problems(tmp_path, VALID.replace(site, site + "\ncurrent_window_secs = 4")) == [
        "agent.current_window_secs: Input should be greater than or equal to 5"
    ]
    too_long = site + "\ncurrent_window_secs = 7200\nwindow_secs = 7200"
    assert _problems(tmp_path, VALID.replace(site, too_long)) == [
        "agent.current_window_secs: Input should be less than or equal to 3600"
    ]


def test_bad_data_type_names_the_key_path(tmp_path: Path) -> None:
    text = VALID.replace("register = 2", 'register = 2\n  data_type = "float16"')
    assert _problems(tmp_path, text) == [
        "sources[0].tags[1].data_type: must be 'int16', 'uint16', 'int32', 'uint32', 'float32', "
        "'float64' or 'bool'"
    ]


def test_unknown_keys_are_errors_one_line_each(tmp_path: Path) -> None:
    text = VALID.replace('site = "plant1"', 'site = "plant1"\npoll_intervall_ms = 5').replace(
        'node_id = "ns=2', 'nodeid = "x"\n  node_id = "ns=2'
    )
    assert _problems(tmp_path, text) == [
        "agent.poll_intervall_ms: unknown key (typo?)",
        "sources[1].tags[0].nodeid: unknown key (typo?)",
    ]


def test_asset_role_naming_an_unknown_tag_is_reported(tmp_path: Path) -> None:
    text = VALID.replace(
        'fuel_tph = ["kiln1.coal_tph"]', 'fuel_tph = ["kiln1.coal_tph", "kiln1.petcoke_tph"]'
    )
    assert _problems(tmp_path, text) == ["assets[0].fuel_tph: unknown tag 'kiln1.petcoke_tph'"]


def test_duplicate_tag_and_bad_whr_kiln_are_reported_together(tmp_path: Path) -> None:
    text = VALID.replace('name = "whr1.generator_kw"', 'name = "kiln1.feed_tph"').replace(
        'kiln = "kiln1"', 'kiln = "kiln9"'
    )
    problems = _problems(tmp_path, text)
    assert (
        "sources[1].tags[0].name: tag 'kiln1.feed_tph' is also defined at sources[0].tags[0].name" in problems
    )
    assert "assets[1].kiln: 'kiln9' is not a kiln asset" in problems


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("port = 5020", 'port = "5020"', "sources[0].port: Input should be a valid integer"),
        ("port = 5020", "port = 5020.0", "sources[0].port: Input should be a valid integer"),
        ("port = 5020", "port = true", "sources[0].port: Input should be a valid integer"),
        ("register = 2", 'register = "2"', "sources[0].tags[1].register: Input should be a valid integer"),
        ("register = 2", 'register = 2\n  scale = "0.1"', "sources[0].tags[1].scale: Input should be a valid number"),
        ("feed_to_clinker = 1.6", 'feed_to_clinker = "1.6"', "assets[0].feed_to_clinker: Input should be a valid number"),
        (
            'site = "plant1"',
            'site = "plant1"\nnet_whr_in_comprehensive_power = 1',
            "agent.net_whr_in_comprehensive_power: Input should be a valid boolean",
        ),
        ('site = "plant1"', 'site = "plant1"\nshifts = "06:00"', "agent.shifts: Input should be a valid list"),
    ],
)
def test_every_key_is_strictly_typed_no_silent_coercion(tmp_path: Path, old: str, new: str, problem: str) -> None:
    assert _problems(tmp_path, VALID.replace(old, new, 1)) == [problem]


def test_an_integer_is_accepted_for_a_number_key(tmp_path: Path) -> None:
    text = VALID.replace('site = "plant1"', 'site = "plant1"\naltitude_m = 100').replace(
        "register = 2", "register = 2\n  scale = 2"
    )
    cfg = load_config(_write(tmp_path, text))
    assert cfg.agent.altitude_m == 100.0 and isinstance(cfg.agent.altitude_m, float)
    assert cfg.sources[0].tags[1].scale == 2.0


def test_a_role_of_the_wrong_type_is_one_line_and_list_items_are_named(tmp_path: Path) -> None:
    assert _problems(tmp_path, VALID.replace('fuel_tph = ["kiln1.coal_tph"]', "fuel_tph = 3")) == [
        "assets[0].fuel_tph: Input should be a valid string or a valid list"
    ]
    assert _problems(tmp_path, VALID.replace('fuel_tph = ["kiln1.coal_tph"]', 'fuel_tph = ["kiln1.coal_tph", 7]')) == [
        "assets[0].fuel_tph[1]: Input should be a valid string"
    ]


def test_generated_simulator_config_passes_check_config(tmp_path: Path) -> None:
    r = _cli("simulate", "--print-config")
    assert r.returncode == 0, r.stderr
    r = _cli("check-config", "--config", str(_write(tmp_path, r.stdout)))
    assert r.returncode == 0, r.stderr


def test_coil_table_requires_bool(tmp_path: Path) -> None:
    text = VALID.replace("register = 2", 'register = 2\n  table = "coil"')
    assert _problems(tmp_path, text) == [
        "sources[0].tags[1]: table 'coil' holds single bits: data_type must be 'bool'"
    ]


def test_password_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(_write(tmp_path, VALID))
    assert cfg.mqtt is not None
    monkeypatch.setenv("KILNWATCH_MQTT_PASSWORD", "s3cret")
    assert cfg.mqtt.password() == "s3cret"
    assert "s3cret" not in repr(cfg)


def test_not_toml_is_one_line(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "[agent\nsite=")
    assert len(problems) == 1 and "not valid TOML" in problems[0]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_check_config_exit_0_on_valid_file(tmp_path: Path) -> None:
    r = _cli("check-config", "--config", str(_write(tmp_path, VALID)))
    assert r.returncode == 0, r.stderr
    assert "OK (2 sources, 3 tags, 2 assets)" in r.stdout


def test_check_config_exit_2_one_line_per_problem_no_traceback(tmp_path: Path) -> None:
    text = VALID.replace("port = 5020", "port = 99999").replace("register = 2", "register = 2\n  scael = 2")
    r = _cli("check-config", "--config", str(_write(tmp_path, text)))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert lines == [
        "sources[0].port: Input should be less than or equal to 65535",
        "sources[0].tags[1].scael: unknown key (typo?)",
    ]
    assert "Traceback" not in r.stderr


def test_config_path_from_environment_variable(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "KILNWATCH_CONFIG": str(_write(tmp_path, VALID))}
    r = _cli("check-config", env=env)
    assert r.returncode == 0, r.stderr


def test_missing_file_is_one_line_exit_2(tmp_path: Path) -> None:
    r = _cli("check-config", "--config", str(tmp_path / "nope.toml"))
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "cannot read" in r.stderr


def test_sample_config_for_the_simulator_is_valid() -> None:
    sample = Path(__file__).parents[2] / "deploy" / "kilnwatch-sim.toml"
    cfg = load_config(sample)
    assert {a.type for a in cfg.assets} >= {"kiln", "raw_mill", "cement_mill", "whr", "plant"}


# ---------------------------------------------------------------- agent.snapshot_path vs agent.db_path
# The snapshot is written beside its target and renamed over it: pointed at the live database (or its
# WAL) it would replace the file the agent writes, which then holds only the rows up to that snapshot.


def _agent_paths(db_path: str, snapshot_path: str) -> str:
    return VALID.replace(
        'db_path = "data/kilnwatch.duckdb"', f'db_path = "{db_path}"\nsnapshot_path = "{snapshot_path}"'
    )


def _snapshot_problems(tmp_path: Path, db_path: str, snapshot_path: str) -> list[str]:
    return _problems(tmp_path, _agent_paths(db_path, snapshot_path))


def test_snapshot_path_equal_to_db_path_is_rejected(tmp_path: Path) -> None:
    db = str(tmp_path / "data" / "k.duckdb")
    problems = _snapshot_problems(tmp_path, db, db)
    assert len(problems) == 1 and problems[0].startswith("agent.snapshot_path: ")
    assert "agent.db_path" in problems[0] and db in problems[0]


def test_snapshot_path_equal_to_db_path_through_relative_paths_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths are relative to the directory the agent runs in
    for existing in (False, True):  # the data directory need not exist yet
        if existing:
            (tmp_path / "data").mkdir()
        problems = _snapshot_problems(tmp_path, "data/k.duckdb", "./data/../data/k.duckdb")
        assert len(problems) == 1 and problems[0].startswith("agent.snapshot_path: ")
        assert "working directory" in problems[0]


def test_snapshot_path_that_is_a_symlink_to_the_database_is_rejected(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db = data / "k.duckdb"
    db.write_bytes(b"")
    link = tmp_path / "snapshot.duckdb"
    os.symlink(db, link)
    problems = _snapshot_problems(tmp_path, str(db), str(link))
    assert len(problems) == 1 and problems[0].startswith("agent.snapshot_path: ")
    # a symlinked directory: the snapshot file does not exist yet, its parent resolves to data/
    alias = tmp_path / "alias"
    os.symlink(data, alias)
    problems = _snapshot_problems(tmp_path, str(db), str(alias / "k.duckdb"))
    assert len(problems) == 1 and problems[0].startswith("agent.snapshot_path: ")
    # and a symlinked db_path is resolved too
    problems = _snapshot_problems(tmp_path, str(alias / "k.duckdb"), str(db))
    assert len(problems) == 1 and problems[0].startswith("agent.snapshot_path: ")


def test_snapshot_path_on_the_database_wal_is_rejected(tmp_path: Path) -> None:
    db = tmp_path / "k.duckdb"
    problems = _snapshot_problems(tmp_path, str(db), str(db) + ".wal")
    assert len(problems) == 1 and problems[0].startswith("agent.snapshot_path: ")
    assert "k.duckdb.wal" in problems[0]


def test_snapshot_path_beside_the_database_is_accepted(tmp_path: Path) -> None:
    db = tmp_path / "k.duckdb"
    for name in ("k-snapshot.duckdb", "k.duckdb.snapshot", "audit/k.duckdb"):
        snap = tmp_path / name
        cfg = load_config(_write(tmp_path, _agent_paths(str(db), str(snap))))
        assert cfg.agent.snapshot_path == str(snap)


def test_check_config_rejects_snapshot_path_on_the_database_in_one_line(tmp_path: Path) -> None:
    db = str(tmp_path / "k.duckdb")
    r = _cli("check-config", "--config", str(_write(tmp_path, _agent_paths(db, db))))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("agent.snapshot_path: ")
