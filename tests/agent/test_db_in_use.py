"""A database held by another process at start: one line naming the file, exit 2, no traceback.

DuckDB lets one process open a file for writing and then refuses every other process (a second
connection in the same process does not conflict, so the holder here is a real subprocess). Every
command that opens the site database gets the message from ``agent.storage.connect``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli import main

_HOLDER = textwrap.dedent(
    """
    import sys
    import duckdb

    con = duckdb.connect(sys.argv[1])
    con.execute("CREATE TABLE IF NOT EXISTS held (x INTEGER)")
    print("ready", flush=True)
    sys.stdin.read()  # hold the file until the test closes stdin
    """
)


@pytest.fixture
def held_db(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A DuckDB file opened read-write by another process; yields (path, holder pid)."""
    db = tmp_path / "site.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield db, proc.pid
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


def _kilnwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


def _assert_one_line(err: str, db: Path, pid: int) -> None:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(db) in lines[0]
    assert "in use by another process" in lines[0]
    assert f"PID {pid}" in lines[0]  # DuckDB names the holder; the message keeps it


def test_run_on_a_held_database_is_one_line_exit_2(held_db: tuple[Path, int], tmp_path: Path) -> None:
    db, pid = held_db
    cfg = tmp_path / "kilnwatch.toml"
    cfg.write_text(f'[agent]\nsite = "plant1"\ndb_path = "{db}"\n')
    r = _kilnwatch("run", "--config", str(cfg))
    assert r.returncode == 2, r.stderr
    _assert_one_line(r.stderr, db, pid)


def test_export_on_a_held_database_is_one_line_exit_2(held_db: tuple[Path, int], tmp_path: Path) -> None:
    db, pid = held_db
    r = _kilnwatch("export", "--db", str(db), "--out", str(tmp_path / "lake"))
    assert r.returncode == 2, r.stderr
    _assert_one_line(r.stderr, db, pid)


def test_demo_with_a_held_database_is_one_line_exit_2(held_db: tuple[Path, int]) -> None:
    db, pid = held_db
    r = _kilnwatch("demo", "--db", str(db), "--minutes", "0.05", "--no-view")
    assert r.returncode == 2, r.stderr
    _assert_one_line(r.stderr, db, pid)


@pytest.mark.parametrize(
    "args",
    [
        ["report", "--from", "2026-03-01", "--to", "2026-03-31", "--out", "{tmp}/r.html"],
        ["export", "--out", "{tmp}/lake"],
        ["baseline", "fit", "--asset", "kiln1", "--target", "power_kw", "--drivers", "feed_tph",
         "--from", "2026-01-01", "--to", "2026-01-31"],
        ["baseline", "show"],
        ["baseline", "savings", "--id", "b1"],
        ["backfill", "--days", "1"],
    ],
    ids=["report", "export", "baseline-fit", "baseline-show", "baseline-savings", "backfill"],
)  # fmt: skip
def test_auditor_commands_on_a_held_database_are_one_line_exit_2(
    held_db: tuple[Path, int], tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    db, pid = held_db
    argv = [a.format(tmp=tmp_path) for a in args]
    n = 2 if argv[0] == "baseline" else 1
    argv[n:n] = ["--db", str(db)]
    assert main(argv) == 2
    _assert_one_line(capsys.readouterr().err, db, pid)
