"""Storage tier keys of ``[agent]`` (docs/configuration.md): raw-sample retention, the Parquet archive
directory, aggregate retention, the disk budget and the daily maintenance time.

The archive is written at night, long after start, so whatever would make it fail then must be
refused by ``check-config`` (and ``run`` at start) now: one line per problem naming
``agent.archive_dir``, exit 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_config_hardening import BASE, base, check, problems_of

from agent.config import parse_config


def _with_agent_keys(tmp_path: Path, **keys: str) -> str:
    """BASE (database in tmp_path) with extra ``[agent]`` keys, each given as its TOML value text."""
    extra = "".join(f"\n{k} = {v}" for k, v in keys.items())
    return BASE.format(db=tmp_path / "kw.duckdb").replace('site = "plant1"', 'site = "plant1"' + extra)


def _agent_problems(tmp_path: Path, **agent: Any) -> list[str]:
    doc = base(tmp_path)
    doc["agent"].update(agent)
    return problems_of(doc)


# ------------------------------------------------------------------------------ defaults and ranges
def test_defaults_keep_a_month_of_raw_samples_and_archive_beside_the_database(tmp_path: Path) -> None:
    agent = parse_config(base(tmp_path)).agent
    assert agent.samples_retention_days == 30
    assert agent.archive_dir is None
    assert agent.archive_path() == tmp_path / "archive"
    assert agent.aggregate_retention_days == 730
    assert agent.max_disk_gb is None
    assert agent.min_free_disk_gb is None
    assert agent.maintain_at == "02:30"


def test_archive_path_stays_relative_like_db_path(tmp_path: Path) -> None:
    """Not resolved at load: the agent and check-config, run from one directory, agree on it."""
    agent = parse_config({**base(tmp_path), "agent": {"site": "plant1", "db_path": "data/kw.duckdb"}}).agent
    assert agent.archive_path() == Path("data/archive")
    agent = parse_config({**base(tmp_path), "agent": {"site": "plant1", "archive_dir": "cold/kw"}}).agent
    assert agent.archive_path() == Path("cold/kw")


def test_fractional_retention_and_an_explicit_budget_are_accepted(tmp_path: Path) -> None:
    doc = base(tmp_path)
    doc["agent"].update(
        samples_retention_days=0.002, max_disk_gb=0.5, min_free_disk_gb=0, maintain_at="23:59"
    )
    agent = parse_config(doc).agent
    assert agent.samples_retention_days == 0.002
    assert (agent.max_disk_gb, agent.min_free_disk_gb, agent.maintain_at) == (0.5, 0, "23:59")


@pytest.mark.parametrize("days", [0, -1, -0.5, float("nan"), float("inf"), 36501])
def test_unusable_samples_retention_is_one_line(tmp_path: Path, days: float) -> None:
    got = _agent_problems(tmp_path, samples_retention_days=days)
    assert len(got) == 1 and got[0].startswith("agent.samples_retention_days: "), got


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("aggregate_retention_days", 0),
        ("aggregate_retention_days", float("nan")),
        ("max_disk_gb", 0),
        ("max_disk_gb", -1.0),
        ("min_free_disk_gb", -1.0),
        ("archive_dir", ""),
    ],
)
def test_unusable_tier_values_are_one_line(tmp_path: Path, key: str, value: Any) -> None:
    got = _agent_problems(tmp_path, **{key: value})
    assert len(got) == 1 and got[0].startswith(f"agent.{key}: "), got


@pytest.mark.parametrize("when", ["25:00", "abc", "02:60", "24:00", "", "2:30:00", "-1:30", "٠٢:٣٠"])
def test_maintain_at_must_be_hh_mm(tmp_path: Path, when: str) -> None:
    got = _agent_problems(tmp_path, maintain_at=when)
    assert got == [f"agent.maintain_at: maintenance time {when.strip()!r} is not HH:MM (UTC)"], got


def test_shift_starts_still_use_the_same_hh_mm_rule(tmp_path: Path) -> None:
    """The HH:MM check is shared with agent.shifts: one rule, so both keys accept the same times."""
    assert _agent_problems(tmp_path, shifts=["25:00"]) == ["agent.shifts: shift start '25:00' is not HH:MM"]
    doc = base(tmp_path)
    doc["agent"].update(shifts=["22:00", "6:00"])
    assert parse_config(doc).agent.shifts == ["22:00", "6:00"]


# ------------------------------------------------------------------------------ archive vs the agent's files
def test_archive_dir_on_the_database_file_is_rejected(tmp_path: Path) -> None:
    db = str(tmp_path / "kw.duckdb")
    got = _agent_problems(tmp_path, archive_dir=db)
    assert len(got) == 1 and got[0].startswith("agent.archive_dir: "), got
    assert "database file itself" in got[0] and db in got[0]


def test_archive_dir_on_the_database_wal_is_rejected(tmp_path: Path) -> None:
    got = _agent_problems(tmp_path, archive_dir=str(tmp_path / "kw.duckdb") + ".wal")
    assert len(got) == 1 and got[0].startswith("agent.archive_dir: "), got
    assert "write-ahead log" in got[0] and "kw.duckdb.wal" in got[0]


def test_archive_dir_on_the_snapshot_is_rejected(tmp_path: Path) -> None:
    snap = str(tmp_path / "audit" / "kw-snapshot.duckdb")
    got = _agent_problems(tmp_path, snapshot_path=snap, archive_dir=snap)
    assert len(got) == 1 and got[0].startswith("agent.archive_dir: "), got
    assert "agent.snapshot_path" in got[0] and snap in got[0]


def test_archive_dir_through_a_symlink_to_the_database_is_rejected(tmp_path: Path) -> None:
    db = tmp_path / "kw.duckdb"
    db.write_bytes(b"")
    link = tmp_path / "cold"
    os.symlink(db, link)
    got = _agent_problems(tmp_path, archive_dir=str(link))
    assert len(got) == 1 and got[0].startswith("agent.archive_dir: "), got
    assert "database file itself" in got[0] and str(db) in got[0]


def test_relative_archive_dir_on_the_database_names_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    got = _agent_problems(tmp_path, db_path="data/kw.duckdb", archive_dir="./data/../data/kw.duckdb")
    assert len(got) == 1 and got[0].startswith("agent.archive_dir: "), got
    assert "working directory" in got[0]


def test_a_database_named_archive_collides_with_the_default_archive(tmp_path: Path) -> None:
    """Unset archive_dir = ``archive`` beside the database, which here is the database itself."""
    got = _agent_problems(tmp_path, db_path=str(tmp_path / "archive"))
    assert len(got) == 1 and got[0].startswith("agent.archive_dir: the default "), got
    assert "beside the database" in got[0]


def test_archive_beside_the_database_files_is_accepted(tmp_path: Path) -> None:
    db = tmp_path / "kw.duckdb"
    db.write_bytes(b"")
    for name in ("kw.duckdb.archive", "archive", "audit/archive"):
        doc = base(tmp_path)
        doc["agent"].update(
            snapshot_path=str(tmp_path / "audit" / "kw.duckdb"), archive_dir=str(tmp_path / name)
        )
        assert parse_config(doc).agent.archive_path() == tmp_path / name


# ------------------------------------------------------------------------------ check-config: local files
def test_check_config_refuses_an_archive_dir_that_is_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "archive.parquet"
    archive.write_bytes(b"PAR1")
    rc, _, err = check(tmp_path, _with_agent_keys(tmp_path, archive_dir=f'"{archive}"'), capsys)
    assert rc == 2 and err.startswith("agent.archive_dir: ") and err.count("\n") == 1, err
    assert "is not a directory" in err and str(archive) in err


def test_check_config_names_the_default_archive_when_it_is_unusable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "archive").write_bytes(b"")  # a file where the default archive directory would go
    rc, _, err = check(tmp_path, BASE.format(db=tmp_path / "kw.duckdb"), capsys)
    assert rc == 2 and err.count("\n") == 1, err
    assert err.startswith(f"agent.archive_dir: the default '{tmp_path / 'archive'}' beside the database ")


def test_check_config_refuses_an_archive_under_proc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = check(tmp_path, _with_agent_keys(tmp_path, archive_dir='"/proc/kilnwatch-archive"'), capsys)
    assert rc == 2 and err.startswith("agent.archive_dir: ") and "is under /proc" in err, err


def test_an_unusable_database_is_one_line_not_two(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default archive follows db_path: its own line would only repeat the database's problem."""
    rc, _, err = check(tmp_path, BASE.format(db="/proc/kw.duckdb"), capsys)
    assert rc == 2 and err.startswith("agent.db_path: ") and "agent.archive_dir" not in err, err


@pytest.mark.skipif(os.geteuid() == 0, reason="root bypasses file permissions")
@pytest.mark.parametrize(
    ("archive", "says"),
    [("ro/archive", "cannot create it"), ("ro", "is not writable by this user")],
)
def test_check_config_refuses_an_archive_it_cannot_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], archive: str, says: str
) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        text = _with_agent_keys(tmp_path, archive_dir=f'"{tmp_path / archive}"')
        rc, _, err = check(tmp_path, text, capsys)
    finally:
        ro.chmod(0o700)  # let pytest clean up
    assert rc == 2 and err.startswith("agent.archive_dir: ") and err.count("\n") == 1, err
    assert says in err


def test_check_config_accepts_an_archive_dir_it_will_create(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "cold" / "kilnwatch" / "archive"
    rc, out, err = check(tmp_path, _with_agent_keys(tmp_path, archive_dir=f'"{archive}"'), capsys)
    assert rc == 0 and ": OK (" in out and err == "", err
    assert not archive.exists() and not (tmp_path / "cold").exists()  # checking creates nothing


def test_run_refuses_an_unusable_archive_at_start(tmp_path: Path) -> None:
    """``run`` applies the same local check before it connects to anything."""
    archive = tmp_path / "archive.parquet"
    archive.write_bytes(b"PAR1")
    cfg = tmp_path / "c.toml"
    cfg.write_text(_with_agent_keys(tmp_path, archive_dir=f'"{archive}"'), encoding="utf-8")
    r = subprocess.run(
        [sys.executable, "-m", "agent", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and r.stderr.startswith("agent.archive_dir: "), r.stderr
    assert "Traceback" not in r.stderr


# ------------------------------------------------------------------------------ slow polling
@pytest.mark.parametrize(
    ("poll_ms", "aggregate_days", "warned"),
    [(60_000, 730, True), (15_000, 730, True), (5_000, 730, False), (60_000, 30, False)],
)
def test_check_config_warns_when_minute_aggregates_would_outgrow_the_raw_samples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], poll_ms: int, aggregate_days: int, warned: bool
) -> None:
    # a samples_1m row is ~31 B, a raw sample ~9 B (BENCHMARKS.md): at one sample a minute the
    # aggregate is larger than what it summarises, and it is kept 730 days by default
    text = _with_agent_keys(tmp_path, aggregate_retention_days=str(aggregate_days))
    assert text.count("[[sources]]\n") == 2
    text = text.replace("[[sources]]\n", f"[[sources]]\npoll_interval_ms = {poll_ms}\n")  # every source
    rc, out, err = check(tmp_path, text, capsys)
    assert rc == 0, err
    lines = [ln for ln in out.splitlines() if ln.startswith("warning: agent.aggregate_retention_days:")]
    assert len(lines) == (1 if warned else 0), out
    if warned:
        assert f"every {poll_ms / 1000:g} s or slower" in lines[0]
