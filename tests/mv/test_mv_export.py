"""Parquet export layout, read-back, and the read-while-the-agent-writes options in docs/auditors.md."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from mv_helpers import kpi_rows
from polars.testing import assert_frame_equal

from agent import storage
from agent.cli import main
from agent.export import export_parquet, snapshot_database

D = datetime(2026, 11, 23, tzinfo=UTC)


def _fill(con: duckdb.DuckDBPyConnection) -> None:
    rows = []
    for site in ("plant1", "plant2"):
        for day in range(3):
            for m in range(10):
                rows.append(
                    (
                        D + timedelta(days=day, hours=23, minutes=m),
                        site,
                        "kiln1",
                        "clinker_tph",
                        100.0 + m,
                        "t/h",
                        60,
                    )
                )
    storage.insert_frame(con, "kpi", kpi_rows(rows))
    con.execute(
        "INSERT INTO alerts (alert_id, site, asset, rule, severity, state, started_at) VALUES "
        "('a1', 'plant1', 'kiln1', 'r', 'warning', 'firing', ?)",
        [D + timedelta(hours=5)],
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "site.duckdb"
    con = storage.connect(path)
    _fill(con)
    con.close()
    return path


def test_export_writes_hive_layout_by_table_site_and_utc_date(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "lake"
    con = storage.connect(db)
    con.execute("SET TimeZone = 'America/Chicago'")  # dates must stay UTC days
    counts = export_parquet(con, out)
    con.close()
    assert counts["kpi"] == 60 and counts["alerts"] == 1 and counts["samples"] == 0
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet"))
    assert "table=kpi/site=plant1/date=2026-11-23/part-0.parquet" in files
    assert "table=kpi/site=plant2/date=2026-11-25/part-0.parquet" in files
    assert "table=alerts/site=plant1/date=2026-11-23/part-0.parquet" in files
    assert len([f for f in files if f.startswith("table=kpi/")]) == 6


def test_exported_parquet_reads_back_with_hive_partitioning(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "lake"
    con = storage.connect(db)
    export_parquet(con, out)
    original = con.sql("SELECT ts, site, asset, kpi, value FROM kpi ORDER BY site, ts").pl()
    con.close()
    q = duckdb.connect()
    back = q.sql(
        f"SELECT ts, site, asset, kpi, value, date, \"table\" FROM read_parquet('{out}/table=kpi/**/*.parquet', "
        "hive_partitioning = true) ORDER BY site, ts"
    ).pl()
    utc = pl.col("ts").dt.convert_time_zone("UTC")
    assert_frame_equal(
        back.select("ts", "site", "asset", "kpi", "value").with_columns(utc), original.with_columns(utc)
    )
    assert back["table"].unique().to_list() == ["kpi"]
    assert back.filter(pl.col("site") == "plant1")["date"].unique().sort().to_list() == [
        date(2026, 11, 23),
        date(2026, 11, 24),
        date(2026, 11, 25),
    ]
    # polars reads the same tree
    lazy = pl.scan_parquet(out / "table=kpi", hive_partitioning=True).filter(pl.col("site") == "plant2")
    assert lazy.collect().height == 30


def test_re_export_of_a_range_replaces_its_partitions_without_duplicates(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "lake"
    con = storage.connect(db)
    export_parquet(con, out)
    con.execute(
        "DELETE FROM kpi WHERE ts >= ? AND ts < ? AND site = 'plant1'",
        [D + timedelta(days=1), D + timedelta(days=2)],
    )
    con.execute("UPDATE kpi SET value = -1 WHERE site = 'plant1' AND ts < ?", [D + timedelta(days=1)])
    counts = export_parquet(con, out, start=D, end=D + timedelta(days=1), site="plant1", tables=["kpi"])
    con.close()
    assert counts == {"kpi": 10}
    q = duckdb.connect()
    per_day = q.execute(
        f"SELECT date, count(*), min(value) FROM read_parquet('{out}/table=kpi/site=plant1/*/*.parquet', "
        "hive_partitioning = true) GROUP BY date ORDER BY date"
    ).fetchall()
    # day 1 rewritten (10 rows, new values); days 2-3 untouched from the first export
    assert per_day == [
        (date(2026, 11, 23), 10, -1.0),
        (date(2026, 11, 24), 10, 100.0),
        (date(2026, 11, 25), 10, 100.0),
    ]


def test_export_command_prints_counts_and_rejects_unknown_tables(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "lake"
    assert (
        main(["export", "--db", str(db), "--out", str(out), "--from", "2026-11-24", "--to", "2026-11-24"])
        == 0
    )
    assert "kpi 20" in capsys.readouterr().out
    assert sorted(p.parent.name for p in (out / "table=kpi").rglob("*.parquet")) == ["date=2026-11-24"] * 2
    assert main(["export", "--db", str(db), "--out", str(out), "--tables", "kpi,nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown table(s) nope" in err and len(err.strip().splitlines()) == 1


_WRITER = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timezone
    from agent import storage
    from agent.export import snapshot_database
    con = storage.connect(sys.argv[1])
    con.execute("INSERT INTO alerts (alert_id, site, asset, rule, severity, state, started_at) "
                "VALUES ('w1', 'plant1', 'kiln1', 'r', 'info', 'firing', ?)", [datetime.now(timezone.utc)])
    print("ready", flush=True)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "snapshot":
            snapshot_database(con, arg)
        elif cmd == "insert":
            con.execute("INSERT INTO alerts (alert_id, site, asset, rule, severity, state, started_at) "
                        "VALUES (?, 'plant1', 'kiln1', 'r', 'info', 'firing', now())", [arg])
        elif cmd == "exit":
            break
        print("done", flush=True)
    """
)


@pytest.fixture
def writer(db: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the database for writing, as the agent does."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    yield proc
    if proc.poll() is None:
        assert proc.stdin is not None
        proc.stdin.write("exit\n")
        proc.stdin.flush()
        proc.wait(timeout=30)


def _ask(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "done"


def test_file_cannot_be_opened_read_only_while_another_process_writes(
    db: Path, writer: subprocess.Popen[str]
) -> None:
    """duckdb 2.0: one writer process locks the file; even a read-only open or ATTACH fails."""
    with pytest.raises(duckdb.IOException, match="lock"):
        duckdb.connect(str(db), read_only=True)
    with pytest.raises(duckdb.IOException, match="lock"):
        duckdb.connect().execute(f"ATTACH '{db}' AS site (READ_ONLY)")


def test_cli_on_a_locked_file_says_so_in_one_line(
    db: Path, writer: subprocess.Popen[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["baseline", "show", "--db", str(db)]) == 2  # EXIT_USAGE, as for run and export
    err = capsys.readouterr().err
    assert "in use by another process" in err and len(err.strip().splitlines()) == 1


def test_snapshot_made_by_the_writer_is_readable_while_it_keeps_writing(
    db: Path, tmp_path: Path, writer: subprocess.Popen[str]
) -> None:
    snap = tmp_path / "snap" / "site-snapshot.duckdb"
    _ask(writer, f"snapshot {snap}")
    ro = duckdb.connect(str(snap), read_only=True)
    assert ro.execute("SELECT count(*) FROM alerts").fetchone() == (2,)  # includes the writer's own row
    assert ro.execute("SELECT count(*) FROM kpi").fetchone() == (60,)
    _ask(writer, "insert w2")  # the agent goes on writing its own file meanwhile
    _ask(writer, f"snapshot {snap}")  # and replaces the snapshot while a reader holds the old one
    assert ro.execute("SELECT count(*) FROM alerts").fetchone() == (2,)
    ro.close()
    count = subprocess.run(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
         "print(c.execute('SELECT count(*) FROM alerts').fetchone()[0])", str(snap)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert count.stdout.strip() == "3"  # a reader opening it now sees the fresh copy
    # the snapshot is a full site database: the auditor commands work on it
    assert main(["export", "--db", str(snap), "--out", str(tmp_path / "lake"), "--tables", "alerts"]) == 0


@pytest.mark.asyncio
async def test_agent_writes_the_configured_snapshot_that_another_process_can_read(tmp_path: Path) -> None:
    """``[agent] snapshot_path``: the running daemon copies its database for auditors, periodically."""
    from agent.config import parse_config
    from agent.pipeline import Agent

    db, snap = tmp_path / "live.duckdb", tmp_path / "audit" / "snapshot.duckdb"
    with storage.connect(db) as con:
        _fill(con)
    agent_section = {
        "site": "plant1",
        "db_path": str(db),
        "evaluate_every_secs": 0.2,
        "snapshot_path": str(snap),
        "snapshot_every_secs": 60,
    }
    agent = Agent(parse_config({"agent": agent_section}), connectors=[])
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        for _ in range(100):
            if snap.is_file():
                break
            await asyncio.sleep(0.1)
        assert snap.is_file()
        reader = [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
                  "print(c.execute('SELECT count(*) FROM kpi').fetchone()[0])"]  # fmt: skip
        live_rc, _, live_err = await _run(*reader, str(db))
        copy_rc, copy_out, _ = await _run(*reader, str(snap))
        assert live_rc != 0 and "lock" in live_err  # the live file stays closed to other processes
        assert copy_rc == 0 and copy_out.strip() == "60"
        mtime = snap.stat().st_mtime_ns
        await asyncio.sleep(0.6)  # several ticks, all within snapshot_every_secs: not rewritten
        assert snap.stat().st_mtime_ns == mtime
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def _run(*argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


def test_auditor_commands_work_on_a_write_protected_snapshot(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A snapshot handed to an auditor may be read-only: report, export and show open it read-only."""
    import os

    snap = tmp_path / "handed-over.duckdb"
    with storage.connect(db) as con:
        snapshot_database(con, snap)
    snap.chmod(0o444)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == snap else real_access(p, mode))
    assert main(["baseline", "show", "--db", str(snap)]) == 0
    assert main(["export", "--db", str(snap), "--out", str(tmp_path / "lake"), "--tables", "kpi"]) == 0
    assert main(["report", "--db", str(snap), "--site", "plant1", "--from", "2026-11-23", "--to", "2026-11-25",
                 "--out", str(tmp_path / "r.html")]) == 0  # fmt: skip
    assert "kpi 60" in capsys.readouterr().out
    assert '<section id="shifts">' in (tmp_path / "r.html").read_text()
    with duckdb.connect(str(snap), read_only=True) as ro:  # nothing was written into it
        assert ro.execute("SELECT count(*) FROM baselines").fetchone() == (0,)
