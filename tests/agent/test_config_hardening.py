"""Hostile and broken configurations: one line per problem naming the key path, exit 2, never a
traceback; what ``check-config`` accepts, the daemon can build (docs/configuration.md; docs/reliability.md)."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.cli import main
from agent.config import ConfigError, load_config, parse_config
from agent.preflight import local_problems, warnings

BASE = textwrap.dedent(
    """
    [agent]
    site = "plant1"
    db_path = "{db}"

    [[sources]]
    name = "plc"
    type = "modbus"
    host = "127.0.0.1"
    port = 5020

      [[sources.tags]]
      name = "kiln1.feed_tph"
      register = 0

      [[sources.tags]]
      name = "kiln1.coal_tph"
      register = 2

    [[sources]]
    name = "whr"
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
    """
)


def base(tmp_path: Path) -> dict[str, Any]:
    return tomllib.loads(BASE.format(db=tmp_path / "kw.duckdb"))


def problems_of(doc: dict[str, Any]) -> list[str]:
    try:
        parse_config(doc)
    except ConfigError as exc:
        return exc.problems
    return []


def check(tmp_path: Path, text: str | bytes, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    path = tmp_path / "c.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    try:
        rc = main(["check-config", "--config", str(path)])
    except SystemExit as exc:
        rc = int(exc.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


# ------------------------------------------------------------------------------ unreadable files
def test_non_utf8_and_deeply_nested_files_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = check(tmp_path, BASE.format(db="x.duckdb").encode() + b"\n# \xff\xfe caf\xe9\n", capsys)
    assert rc == 2 and err.count("\n") == 1 and "not UTF-8 text" in err
    deep = "a = " + "[" * 5000 + "]" * 5000 + "\n"
    rc, _, err = check(tmp_path, deep, capsys)
    assert rc == 2 and err.count("\n") == 1 and "nested too deeply" in err
    assert "Traceback" not in err


# ------------------------------------------------------------------------------ key-path errors
@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d.update(mqtt={"url": "mqtt://"}), "mqtt.url: 'mqtt://' names no host"),
        (lambda d: d.update(mqtt={"url": "mqtt://h:99999"}), "mqtt.url: 'mqtt://h:99999' is not a valid URL"),
        (lambda d: d.update(mqtt={"url": "mqtt://h:abc"}), "mqtt.url: 'mqtt://h:abc' is not a valid URL"),
        (lambda d: d.update(mqtt={"url": "mqtt://[::1"}), "mqtt.url: 'mqtt://[::1' is not a valid URL"),
        (
            lambda d: d.update(mqtt={"url": "mqtt://h", "password_env": "A", "password_file": "/x"}),
            "mqtt: give password_env or password_file, not both",
        ),
        (
            lambda d: d.update(mqtt={"url": "mqtt://h", "reconnect_min_secs": 9, "reconnect_max_secs": 2}),
            "mqtt: reconnect_min_secs 9 is above reconnect_max_secs 2",
        ),
        (lambda d: d["agent"].update(db_path=""), "agent.db_path: the agent stores everything in this file"),
        (
            lambda d: d["agent"].update(db_path=":memory:"),
            "agent.db_path: the agent stores everything in this file",
        ),
        (lambda d: d["agent"].update(evaluate_every_secs=float("inf")), "agent.evaluate_every_secs: "),
        (lambda d: d["agent"].update(evaluate_every_secs=1e-9), "agent.evaluate_every_secs: "),
        (lambda d: d["agent"].update(stale_after_secs=float("inf")), "agent.stale_after_secs: "),
        (
            lambda d: d["agent"].update(shifts=["06:00", "6:00"]),
            "agent.shifts: the same shift start is listed twice",
        ),
        (
            lambda d: d["agent"].update(metrics_host="no host!"),
            "agent.metrics_host: 'no host!' is not a host name",
        ),
        (
            lambda d: d["sources"][0]["tags"][0].update(min=10.0, max=1.0),
            "sources[0].tags[0]: min 10 is above max 1",
        ),
        (lambda d: d["sources"][0]["tags"][0].update(min=float("nan")), "sources[0].tags[0].min: "),
        (lambda d: d["sources"][0]["tags"][0].update(scale=float("inf")), "sources[0].tags[0].scale: "),
        (lambda d: d["sources"][0]["tags"][0].update(offset=float("nan")), "sources[0].tags[0].offset: "),
        (
            lambda d: d["sources"][0].update(host="127.0.0.1:502"),
            "sources[0].host: '127.0.0.1:502' is not a host",
        ),
        (
            lambda d: d["sources"][0].update(reconnect_min_ms=9000, reconnect_max_ms=100),
            "sources[0]: reconnect_min_ms 9000 is above reconnect_max_ms 100",
        ),
        (
            lambda d: d["sources"][1].update(endpoint="opc.tcp://"),
            "sources[1].endpoint: 'opc.tcp://' names no host",
        ),
        (
            lambda d: d["sources"][1]["tags"][0].update(node_id="ns=abc;s=X"),
            "sources[1].tags[0].node_id: node id must",
        ),
        (
            lambda d: d["sources"][1]["tags"][0].update(node_id="i=notnum"),
            "sources[1].tags[0].node_id: node id must",
        ),
        (
            lambda d: d["sources"][1].update(username="u", password_env="PW"),
            'sources[1]: username with security = "None" sends the password in clear',
        ),
        (
            lambda d: d["sources"][1].update(
                username="u", password_env="PW", password_file="/x", allow_plaintext_password=True
            ),
            "sources[1]: give password_env or password_file, not both",
        ),
        (
            lambda d: d["assets"][0].update(fuel_tph=["kiln1.coal_tph", "kiln1.coal_tph"]),
            "assets[0].fuel_tph: tag 'kiln1.coal_tph' listed twice (it would count twice)",
        ),
    ],
)
def test_accepted_but_wrong_values_are_key_path_errors(tmp_path: Path, edit: Any, expected: str) -> None:
    doc = base(tmp_path)
    edit(doc)
    got = problems_of(doc)
    assert len(got) == 1 and got[0].startswith(expected), got


def test_plaintext_password_when_allowed_is_a_warning(tmp_path: Path) -> None:
    doc = base(tmp_path)
    doc["sources"][1].update(username="u", password_env="PW", allow_plaintext_password=True)
    cfg = parse_config(doc)
    assert warnings(cfg) == ["sources[1].allow_plaintext_password: the OPC UA password is sent in clear"]


def test_overlapping_registers_are_a_warning_not_an_error(tmp_path: Path) -> None:
    doc = base(tmp_path)
    doc["sources"][0]["tags"][1]["register"] = 1  # float32 at 0 spans 0-1
    cfg = parse_config(doc)
    assert warnings(cfg) == [
        "sources[0].tags: 'kiln1.feed_tph' and 'kiln1.coal_tph' overlap in the holding table at register 1 "
        "(fine if the same registers are read as two types)"
    ]


# ------------------------------------------------------------------------------ local files
def test_files_the_config_names_are_checked_without_connecting(tmp_path: Path) -> None:
    doc = base(tmp_path)
    doc["mqtt"] = {
        "url": "mqtts://broker:8883",
        "ca_file": str(tmp_path / "ca.pem"),
        "password_file": str(tmp_path),
    }
    doc["agent"]["rule_files"] = [str(tmp_path / "site.toml")]
    cfg = parse_config(doc)
    assert local_problems(cfg) == [
        f"mqtt.ca_file: '{tmp_path / 'ca.pem'}' does not exist",
        f"mqtt.password_file: '{tmp_path}' is not a regular file",
        f"agent.rule_files[0]: '{tmp_path / 'site.toml'}' does not exist",
    ]


@pytest.mark.parametrize(
    ("db_path", "says"),
    [("{tmp}", "is a directory"), ("/dev/null", "is under /dev"), ("/proc/kw.duckdb", "is under /proc")],
)
def test_unusable_database_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db_path: str, says: str
) -> None:
    text = BASE.format(db=db_path.format(tmp=tmp_path))
    rc, _, err = check(tmp_path, text, capsys)
    assert rc == 2 and err.startswith("agent.db_path: ") and says in err and err.count("\n") == 1


def test_run_refuses_what_check_config_refuses_and_a_busy_metrics_port(tmp_path: Path) -> None:
    """``run`` at start: the same local-file check, and a port already taken is one line, exit 2."""
    bad = tmp_path / "bad.toml"
    bad.write_text(BASE.format(db=tmp_path), encoding="utf-8")
    r = subprocess.run(
        [sys.executable, "-m", "agent", "run", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and r.stderr.startswith("agent.db_path: ") and "Traceback" not in r.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        busy = tmp_path / "busy.toml"
        busy.write_text(
            BASE.format(db=tmp_path / "kw.duckdb").replace(
                'site = "plant1"', f'site = "plant1"\nmetrics_port = {port}'
            ),
            encoding="utf-8",
        )
        r = subprocess.run(
            [sys.executable, "-m", "agent", "run", "--config", str(busy)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "address already in use" in r.stderr.lower()


# ------------------------------------------------------------------------------ rule packs
@pytest.mark.parametrize(
    ("pack", "says"),
    [
        (b'[[rule]]\nid = "x"\nwhen = "feed_tph > 1"\n# \xff\n', "not UTF-8 text"),
        (
            ('[[rule]]\nid = "x"\nwhen = "' + "(" * 150 + "feed_tph > 1" + ")" * 150 + '"\n').encode(),
            "nested deeper than 20 levels",
        ),
        (
            ('[[rule]]\nid = "x"\nwhen = "' + " + ".join(["feed_tph"] * 500) + ' > 1"\n').encode(),
            "longer than 2000 characters",
        ),
        (b'[[rule]]\nid = "x"\nwhen = "feed_tph > 1"\nfor = "8d"\n', "for: longer than 7 days"),
        (b'[[rule]]\nid = "x"\nwhen = "feed_tph > 1"\nwindow = "30d"\n', "window: longer than 7 days"),
        (
            b'[[rule]]\nid = "x"\nwhen = "feed_tph > 1"\nmessage = "{value:99999999}"\n',
            "width or precision above 100",
        ),
    ],
)
def test_hostile_rule_packs_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pack: bytes, says: str
) -> None:
    (tmp_path / "site.toml").write_bytes(pack)
    text = BASE.format(db=tmp_path / "kw.duckdb").replace(
        'site = "plant1"', f'site = "plant1"\nrule_files = ["{tmp_path / "site.toml"}"]'
    )
    rc, _, err = check(tmp_path, text, capsys)
    assert rc == 2 and says in err and "Traceback" not in err, err


# ------------------------------------------------------------------------------ secrets
def test_passwords_are_masked_in_every_log_record(caplog: pytest.LogCaptureFixture) -> None:
    """asyncua's -vv output shows the identity token with the password; the filter masks it."""
    from common.redact import SECRETS, install

    handler = logging.StreamHandler()
    logging.getLogger().addHandler(handler)
    try:
        install("s3cret-pa55")
        assert SECRETS in handler.filters
        record = logging.LogRecord(
            "asyncua.client.ua_client",
            logging.DEBUG,
            __file__,
            1,
            "activate_session %s",
            (("UserNameIdentityToken(UserName='u', Password=b's3cret-pa55')"),),
            None,
        )
        assert SECRETS.filter(record)
        assert "s3cret-pa55" not in record.getMessage() and "***" in record.getMessage()
        hexed = logging.LogRecord("x", logging.DEBUG, __file__, 1, "raw %s", (b"s3cret-pa55".hex(),), None)
        SECRETS.filter(hexed)
        assert b"s3cret-pa55".hex() not in hexed.getMessage()
    finally:
        logging.getLogger().removeHandler(handler)


# ------------------------------------------------------------------------------ property
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.lists(st.text(max_size=10), max_size=3),
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append((*prefix, k))
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_mutated_configs_never_give_a_traceback(tmp_path: Path, data: st.DataObject) -> None:
    """Any key replaced by any TOML-ish value or removed: check-config exits 0 or 2 with no traceback,
    and a config it accepts builds everything the daemon builds at start (rule settings, asset model,
    rule packs, local files)."""
    from rules.asset_model import AssetModel
    from rules.packs import load_rules

    doc = base(tmp_path)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = data.draw(st.sampled_from(paths))
        parent: Any = doc
        for k in path[:-1]:
            parent = parent[k]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = data.draw(_VALUES)
    try:
        cfg = parse_config(doc)
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and ":" in p for p in exc.problems)
        return
    settings_ = cfg.rule_settings()
    AssetModel.build(settings_)
    load_rules(settings_)
    assert isinstance(local_problems(cfg), list)


def test_load_config_reports_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "missing.toml")
    assert err.value.problems == [f"{tmp_path / 'missing.toml'}: cannot read (No such file or directory)"]
