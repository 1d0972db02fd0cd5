"""Storage tiers (agent/tiering.py, docs/storage.md): whole UTC days of raw samples move from the live
DuckDB file to a Parquet archive, ``samples_1m`` keeps the per-minute trend, ``v_samples`` spans both,
and the disk budget deletes only the oldest archive days. Real DuckDB files, real Parquet."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from tiering_data import (
    FIRST,
    NOW,
    ROWS,
    ROWS_PER_DAY,
    archive_rows,
    assert_each_row_in_one_tier,
    save_original,
    seed,
)

from agent import storage
from agent.export import export_parquet
from agent.tiering import (
    TierSettings,
    archived_days,
    create_samples_view,
    cutoff_day,
    enforce_budget,
    maintain,
    refresh_aggregates,
)


@pytest.fixture
def db(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    con = storage.connect(tmp_path / "kw.duckdb")
    yield con
    con.close()


def settings(tmp_path: Path, **kw: object) -> TierSettings:
    base: dict[str, object] = {
        "archive_dir": tmp_path / "archive",
        "samples_retention_days": 3.0,
        "db_path": tmp_path / "kw.duckdb",
    }
    base.update(kw)
    return TierSettings(**base)  # type: ignore[arg-type]


def count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(con.execute(sql).fetchall()[0][0])


def test_cutoff_is_a_whole_utc_day_and_never_later_than_today() -> None:
    # 2026-11-29 14:00 - 30 d = 2026-10-30 14:00 -> days before 2026-10-30 move
    assert cutoff_day(NOW, 30) == date(2026, 10, 30)
    # 14:00 - 0.6 d (14.4 h) = 2026-11-28 23:36 -> the 28th stays live
    assert cutoff_day(NOW, 0.6) == date(2026, 11, 28)
    # a few minutes: the current day never moves, yesterday does
    assert cutoff_day(NOW, 0.002) == date(2026, 11, 29)
    # the day's first minutes: 00:01 - 0.002 d (2.88 min) = 23:58:07 the day before
    assert cutoff_day(datetime(2026, 11, 29, 0, 1, tzinfo=UTC), 0.002) == date(2026, 11, 28)


def test_old_days_move_to_the_archive_and_every_row_stays_in_exactly_one_tier(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    assert seed(db) == ROWS
    save_original(db, tmp_path / "orig.parquet")
    s = settings(tmp_path)
    res = maintain(db, s, now=NOW)

    # retention 3 d at 2026-11-29 14:00: 2026-11-20 .. 2026-11-25 move (6 whole days)
    assert res.days_moved == [date(2026, 11, 20) + timedelta(days=i) for i in range(6)]
    assert res.rows_moved == 6 * ROWS_PER_DAY
    assert count(db, "SELECT count(*) FROM samples WHERE ts < TIMESTAMPTZ '2026-11-26 00:00+00'") == 0
    assert count(db, "SELECT count(*) FROM samples") == 4 * ROWS_PER_DAY
    assert archive_rows(db, s.archive_dir) == 6 * ROWS_PER_DAY
    assert_each_row_in_one_tier(db, s.archive_dir, tmp_path / "orig.parquet")
    assert count(db, "SELECT count(*) FROM v_samples") == ROWS

    # one zstd file per day under date=YYYY-MM-DD, no temporary file left behind
    files = sorted(p.relative_to(s.archive_dir).as_posix() for p in s.archive_dir.rglob("*") if p.is_file())
    assert files == [f"date=2026-11-{d}/part-0.parquet" for d in range(20, 26)]
    meta = db.execute(
        f"SELECT DISTINCT compression FROM parquet_metadata('{s.archive_dir}/date=*/*.parquet')"
    ).fetchall()
    assert meta == [("ZSTD",)]
    # each file holds exactly its UTC day (Polars reads the Hive tree with its date column)
    arch = pl.read_parquet(s.archive_dir / "**" / "*.parquet", hive_partitioning=True)
    assert arch.height == 6 * ROWS_PER_DAY
    assert (arch["ts"].dt.date() == arch["date"]).all()
    assert db.execute("SELECT count(*) FROM archive_days").fetchall() == [(6,)]


def test_a_second_run_changes_nothing(db: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    seed(db)
    save_original(db, tmp_path / "orig.parquet")
    s = settings(tmp_path)
    maintain(db, s, now=NOW)
    before = {p: p.stat().st_mtime_ns for p in s.archive_dir.rglob("*.parquet")}
    res = maintain(db, s, now=NOW)
    assert res.days_moved == [] and res.rows_moved == 0
    assert {p: p.stat().st_mtime_ns for p in s.archive_dir.rglob("*.parquet")} == before
    assert_each_row_in_one_tier(db, s.archive_dir, tmp_path / "orig.parquet")


def test_late_rows_for_an_archived_day_are_merged_into_its_file(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    seed(db)
    s = settings(tmp_path)
    maintain(db, s, now=NOW)
    late = datetime(2026, 11, 21, 12, 0, 30, tzinfo=UTC)
    db.execute(
        "INSERT INTO samples VALUES (?, 'plant1', 'late', 1.0, 'good'), (?, 'plant1', 'late', 2.0, 'good')",
        [late, late + timedelta(seconds=1)],
    )
    save_original(db, tmp_path / "orig_live.parquet")
    res = maintain(db, s, now=NOW)
    assert res.days_moved == [date(2026, 11, 21)] and res.rows_moved == 2
    day = s.archive_dir / "date=2026-11-21" / "part-0.parquet"
    assert count(db, f"SELECT count(*) FROM read_parquet('{day}')") == ROWS_PER_DAY + 2
    assert count(db, f"SELECT count(*) FROM read_parquet('{day}') WHERE tag = 'late'") == 2
    assert count(db, "SELECT count(*) FROM v_samples") == ROWS + 2
    assert count(db, "SELECT count(*) FROM archive_days WHERE day = DATE '2026-11-21'") == 1
    assert db.execute("SELECT rows FROM archive_days WHERE day = DATE '2026-11-21'").fetchall() == [
        (ROWS_PER_DAY + 2,)
    ]


def test_minute_aggregates_by_hand_survive_the_move(db: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    t = datetime(2026, 11, 22, 8, 15, tzinfo=UTC)
    rows = [  # one minute of one tag: good 1, bad 5, good 3, then good 2 last; plus the next minute
        (t + timedelta(seconds=1), 1.0, "good"),
        (t + timedelta(seconds=10), 5.0, "bad"),
        (t + timedelta(seconds=20), 3.0, "good"),
        (t + timedelta(seconds=59), 2.0, "good"),
        (t + timedelta(seconds=60), 9.0, "good"),
    ]
    for ts, v, q in rows:
        db.execute("INSERT INTO samples VALUES (?, 'plant1', 'kiln_o2', ?, ?)", [ts, v, q])
    sql = "SELECT min, max, mean, last, n, n_good FROM samples_1m WHERE tag = 'kiln_o2' ORDER BY ts"
    # by hand: good values 1, 3, 2 -> min 1, max 3, mean 2, last (latest good) 2; n 4, n_good 3
    expected = [(1.0, 3.0, 2.0, 2.0, 4, 3), (9.0, 9.0, 9.0, 9.0, 1, 1)]
    refresh_aggregates(db, datetime(2026, 11, 22, tzinfo=UTC))
    assert db.execute(sql).fetchall() == expected
    assert db.execute("SELECT min(ts) FROM samples_1m").fetchall() == [(t,)]
    maintain(db, settings(tmp_path), now=NOW)  # the day moves; its minutes are rebuilt from the file
    assert count(db, "SELECT count(*) FROM samples") == 0
    assert db.execute(sql).fetchall() == expected
    # an aggregate retention shorter than that day prunes it
    maintain(db, settings(tmp_path, aggregate_retention_days=5.0), now=NOW)
    assert db.execute(sql).fetchall() == []


def test_the_disk_budget_deletes_the_oldest_archive_days_only(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    seed(db)
    db.execute(
        "INSERT INTO kpi VALUES (?, 'plant1', 'kiln1', 'clinker_tph', 150, 't/h', 60, 1, NULL)", [FIRST]
    )
    db.execute(
        "INSERT INTO alerts VALUES ('a1', 'plant1', 'kiln1', 'r', 'warning', 'resolved', ?, ?, 1, 1, '', 'm')",
        [FIRST, FIRST + timedelta(hours=1)],
    )
    s = settings(tmp_path)
    maintain(db, s, now=NOW)
    days = archived_days(s.archive_dir)
    assert len(days) == 6
    db.execute("CHECKPOINT")
    db_bytes = sum(p.stat().st_size for p in (s.db_path, Path(f"{s.db_path}.wal")) if p.exists())  # type: ignore[arg-type]
    sizes = [(s.archive_dir / f"date={d}" / "part-0.parquet").stat().st_size for d in days]
    # room for the database (its WAL grows a little by the deletion records) and the two newest days
    budget_gb = (db_bytes + sum(sizes[-2:]) + min(sizes) // 2) / 1e9
    deleted = enforce_budget(db, settings(tmp_path, max_disk_gb=budget_gb), now=NOW)
    assert deleted == days[:4]  # oldest first, and no more than needed
    assert archived_days(s.archive_dir) == days[4:]
    log = db.execute("SELECT day, rows, reason FROM archive_deletions ORDER BY day").fetchall()
    assert [r[0] for r in log] == days[:4]
    assert all(r[1] == ROWS_PER_DAY and "agent.max_disk_gb" in r[2] for r in log)
    # KPIs, alerts and the live samples are never given up for space
    assert count(db, "SELECT count(*) FROM kpi") == 1
    assert count(db, "SELECT count(*) FROM alerts") == 1
    assert count(db, "SELECT count(*) FROM samples") == 4 * ROWS_PER_DAY
    assert count(db, "SELECT count(*) FROM v_samples") == 6 * ROWS_PER_DAY


def test_a_free_space_floor_beyond_the_volume_deletes_every_archive_day(
    db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    seed(db)
    s = settings(tmp_path)
    maintain(db, s, now=NOW)
    free_gb = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize / 1e9
    deleted = enforce_budget(db, settings(tmp_path, min_free_disk_gb=free_gb * 10), now=NOW)
    assert len(deleted) == 6 and archived_days(s.archive_dir) == []
    reasons = [r[0] for r in db.execute("SELECT reason FROM archive_deletions").fetchall()]
    assert len(reasons) == 6 and all("agent.min_free_disk_gb" in r for r in reasons)
    # the view stays valid on an empty archive
    assert count(db, "SELECT count(*) FROM v_samples") == 4 * ROWS_PER_DAY


def test_the_view_works_before_any_archive_file_exists(db: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    create_samples_view(db, tmp_path / "never-created")
    db.execute("INSERT INTO samples VALUES (?, 'plant1', 't', 1.0, 'good')", [NOW])
    assert db.execute("SELECT tag, value FROM v_samples").fetchall() == [("t", 1.0)]
    cols = [r[0] for r in db.execute("DESCRIBE v_samples").fetchall()]
    assert cols == ["ts", "site", "tag", "value", "quality"]


def test_the_parquet_export_spans_both_tiers(db: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    seed(db)
    maintain(db, settings(tmp_path), now=NOW)
    counts = export_parquet(db, tmp_path / "export", tables=["samples"])
    assert counts == {"samples": ROWS}
    days = sorted(p.name for p in (tmp_path / "export" / "table=samples" / "site=plant1").iterdir())
    assert days == [f"date=2026-11-{d}" for d in range(20, 30)]


def test_reopened_read_only_the_view_still_reads_the_archive(tmp_path: Path) -> None:
    path = tmp_path / "kw.duckdb"
    con = storage.connect(path)
    seed(con)
    maintain(con, settings(tmp_path), now=NOW)
    con.close()
    ro = storage.connect(path, read_only=True)
    try:
        assert count(ro, "SELECT count(*) FROM v_samples") == ROWS
        assert count(ro, "SELECT count(*) FROM v_samples WHERE ts < TIMESTAMPTZ '2026-11-26 00:00+00'") == (
            6 * ROWS_PER_DAY
        )
    finally:
        ro.close()


# ------------------------------------------------------------------------------ kilnwatch maintain
def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from agent.cli import main

    try:
        rc = main(args)
    except SystemExit as exc:
        rc = int(exc.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


def maintain_config(tmp_path: Path, retention: float = 3.0) -> Path:
    from test_config_hardening import BASE

    text = BASE.format(db=tmp_path / "kw.duckdb").replace(
        "[agent]\n",
        f'[agent]\nsamples_retention_days = {retention}\narchive_dir = "{tmp_path / "archive"}"\n',
        1,
    )
    cfg = tmp_path / "kilnwatch.toml"
    cfg.write_text(text)
    return cfg


def test_the_maintain_command_moves_old_days_and_says_what_it_did(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    con = storage.connect(tmp_path / "kw.duckdb")
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    con.execute(  # 100 samples on each of the 5 days before today, none today
        "INSERT INTO samples SELECT $t - to_days(1 + i // 100) + to_seconds(i % 100), 'plant1', 'x', i, 'good' "
        "FROM range(0, 500) r(i)",
        {"t": today},
    )
    con.close()
    rc, out, err = run_cli(["maintain", "--config", str(maintain_config(tmp_path))], capsys)
    assert rc == 0, err
    # retention 3 d: now - 3 d falls on today - 3, so the days before it move: today - 4 and today - 5
    moved = len(list((tmp_path / "archive").glob("date=*/part-0.parquet")))
    assert moved == 2
    assert f"moved {moved * 100} samples of {moved} day(s) to the archive" in out
    con = storage.connect(tmp_path / "kw.duckdb", read_only=True)
    try:
        assert count(con, "SELECT count(*) FROM v_samples") == 500
        assert count(con, "SELECT count(*) FROM samples") == 500 - moved * 100
    finally:
        con.close()


def test_the_maintain_command_refuses_a_database_in_use_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys

    cfg = maintain_config(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(tmp_path / 'kw.duckdb')!r}); "
         "print('open', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        rc, _out, err = run_cli(["maintain", "--config", str(cfg)], capsys)
    finally:
        holder.kill()
        holder.wait()
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "in use by another process" in lines[0] and "Traceback" not in err
