"""A damaged database at start: the daemon moves it aside and starts anew; auditors get one line.

``storage.connect(path, recover=True)`` (``run``, ``demo``) renames a damaged file to
``<name>.damaged-<UTC stamp>``, logs one WARNING naming both paths and returns a fresh database;
``storage.connect(path)`` (every auditor command) raises ``DatabaseDamagedError`` (one line, exit 2)
and leaves the file byte for byte as it was.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from agent import storage
from agent.cli import main


def _valid_db(path: Path) -> None:
    con = storage.connect(path)
    con.execute(
        "INSERT INTO samples SELECT TIMESTAMPTZ '2026-01-01' + i * INTERVAL 1 SECOND, 'plant1', "
        "'kiln1.power_kw', i, 'good' FROM range(100000) r(i)"
    )
    con.execute("INSERT INTO source_status VALUES (TIMESTAMPTZ '2026-01-01', 'plant1', 'plc', 'ok', NULL)")
    con.close()


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _truncated(path: Path) -> None:
    _valid_db(path)
    os.truncate(path, path.stat().st_size // 2)


def _random_header(path: Path) -> None:
    _valid_db(path)
    with path.open("r+b") as f:
        f.write(os.urandom(4096))


def _text(path: Path) -> None:
    path.write_text("ts,tag,value\n2026-01-01T00:00:00Z,kiln1.power_kw,1.0\n" * 20)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "empty": _empty,
    "truncated": _truncated,
    "random-header": _random_header,
    "text": _text,
}


@pytest.fixture(params=list(DAMAGE))
def damaged(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, bytes]:
    """A damaged ``site.duckdb``; yields (path, its bytes)."""
    db = tmp_path / "site.duckdb"
    DAMAGE[request.param](db)
    return db, db.read_bytes()


def test_recover_moves_the_damaged_file_aside_and_starts_a_new_database(
    damaged: tuple[Path, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    db, original = damaged
    with caplog.at_level(logging.WARNING):
        con = storage.connect(db, recover=True)
    try:
        assert con.execute("SELECT count(*) FROM samples").fetchall() == [(0,)]
        con.execute("INSERT INTO source_status VALUES (now(), 'plant1', 'plc', 'ok', NULL)")
        assert con.execute("SELECT count(*) FROM source_status").fetchall() == [(1,)]
    finally:
        con.close()
    moved = [p for p in db.parent.iterdir() if p.name.startswith("site.duckdb.damaged-")]
    assert len(moved) == 1, moved
    assert re.fullmatch(r"site\.duckdb\.damaged-\d{8}T\d{6}Z", moved[0].name)
    assert moved[0].read_bytes() == original
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    line = warnings[0].getMessage()
    assert "\n" not in line
    assert str(db) in line and str(moved[0]) in line
    # the new database is a healthy one: opening it again (no recover) works and moves nothing
    storage.connect(db).close()
    assert len([p for p in db.parent.iterdir() if ".damaged-" in p.name]) == 1


def test_without_recover_a_damaged_file_is_one_line_and_left_untouched(damaged: tuple[Path, bytes]) -> None:
    db, original = damaged
    with pytest.raises(storage.DatabaseDamagedError) as info:
        storage.connect(db)
    assert info.value.code == 2
    assert "\n" not in str(info.value)
    assert str(db) in str(info.value)
    assert db.read_bytes() == original
    assert [p.name for p in db.parent.iterdir()] == ["site.duckdb"]
    with pytest.raises(storage.DatabaseDamagedError):
        storage.connect(db, read_only=True)
    assert db.read_bytes() == original


def test_recover_also_moves_the_wal(tmp_path: Path) -> None:
    db = tmp_path / "site.duckdb"
    _random_header(db)
    wal = Path(f"{db}.wal")
    wal.write_bytes(b"not really a wal")
    storage.connect(db, recover=True).close()
    (moved,) = [p for p in tmp_path.iterdir() if re.fullmatch(r"site\.duckdb\.damaged-\d{8}T\d{6}Z", p.name)]
    assert Path(f"{moved}.wal").read_bytes() == b"not really a wal"


def test_a_healthy_database_is_not_moved(tmp_path: Path) -> None:
    db = tmp_path / "site.duckdb"
    _valid_db(db)
    con = storage.connect(db, recover=True)
    assert con.execute("SELECT count(*) FROM samples").fetchall() == [(100000,)]
    con.close()
    assert [p.name for p in tmp_path.iterdir()] == ["site.duckdb"]


def test_export_on_a_damaged_database_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "site.duckdb"
    _truncated(db)
    original = db.read_bytes()
    assert main(["export", "--db", str(db), "--out", str(tmp_path / "lake")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(db) in lines[0] and "damaged" in lines[0]
    assert db.read_bytes() == original
    assert not any(".damaged-" in p.name for p in tmp_path.iterdir())
