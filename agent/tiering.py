"""Storage tiers: raw samples move from the live DuckDB file to a Parquet archive, a UTC day at a time.

A gateway polling 1,000 tags every second stores ~1 GB of samples a day; kept in the live file they
fill the disk within months and make every auditor snapshot copy all of it. So, like a process
historian (docs/storage.md):

- raw samples stay in the live ``samples`` table for ``agent.samples_retention_days``; every whole
  UTC day before ``floor_day(now - retention)`` (never the current day) is written to
  ``<archive_dir>/date=YYYY-MM-DD/part-0.parquet`` (zstd, sorted by tag and time) and then deleted
  from the live file;
- ``samples_1m`` (per tag and minute: min, max, mean, last, n, n_good) stays in the live file for
  ``agent.aggregate_retention_days``, so trends outlive the raw data;
- ``v_samples`` (a view in the live file) is live ∪ archive with the ``samples`` columns;
- an optional disk budget deletes the oldest archive days, never KPIs, alerts or the outbox.

Crash safety. A day moves in one DuckDB transaction that copies its rows (plus the day's earlier
archive file, if late rows arrived) to a hidden temporary file, fsyncs it, checks its row count,
records the pending rename in ``archive_pending`` and deletes the rows from ``samples``; only after
the commit is the file renamed over the day's file. A kill -9 before the commit leaves the rows live
and an orphan temporary file (removed by the next run); after it, the next run finishes the rename
from ``archive_pending``. Either way every sample ends up in exactly one tier (tests/agent/
test_tiering_crash.py kills the move at each step). The copy and the delete read one MVCC snapshot,
so rows that the agent appends meanwhile are neither copied nor deleted.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from agent.export import copy_to_parquet
from agent.storage import ensure_schema, first_row, transaction
from agent.storage_guard import safe_checkpoint

if TYPE_CHECKING:
    from agent.config import AgentSection

log = logging.getLogger(__name__)

#: The one file of an archive day (a later merge rewrites it whole, through a temporary name).
ARCHIVE_FILE = "part-0.parquet"
#: ``samples`` columns, in order: archive files and ``v_samples`` have exactly these.
SAMPLE_COLUMNS = "ts, site, tag, value, quality"
_US_PER_MIN = 60_000_000
_GB = 1e9


#: Test hook, called with the name of each step of a day's move ("copied", "committed", "renamed");
#: the crash tests replace it with one that kills the process there. A no-op in production.
def _no_hook(step: str) -> None:
    return None


step_hook: Callable[[str], None] = _no_hook


class TieringError(RuntimeError):
    """A day's archive file did not come out as expected; the day stays in the live file."""


@dataclass(frozen=True)
class TierSettings:
    """What the tiering needs from ``[agent]`` (docs/configuration.md)."""

    archive_dir: Path
    samples_retention_days: float = 30.0
    aggregate_retention_days: float = 730.0
    max_disk_gb: float | None = None
    min_free_disk_gb: float | None = None
    db_path: Path | None = None

    @classmethod
    def from_agent(cls, agent: AgentSection) -> TierSettings:
        return cls(
            archive_dir=agent.archive_path(),
            samples_retention_days=agent.samples_retention_days,
            aggregate_retention_days=agent.aggregate_retention_days,
            max_disk_gb=agent.max_disk_gb,
            min_free_disk_gb=agent.min_free_disk_gb,
            db_path=Path(agent.db_path),
        )


@dataclass
class MaintainResult:
    """What one run did: logged, shown by ``kilnwatch maintain`` and counted in metrics."""

    days_moved: list[date] = field(default_factory=list)
    rows_moved: int = 0
    renames_finished: int = 0
    orphans_removed: int = 0
    aggregate_rows: int = 0
    aggregate_rows_pruned: int = 0
    days_deleted: list[date] = field(default_factory=list)
    db_bytes: int = 0
    archive_bytes: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        moved = ", ".join(d.isoformat() for d in self.days_moved) or "none"
        deleted = ", ".join(d.isoformat() for d in self.days_deleted) or "none"
        return (
            f"moved {self.rows_moved} samples of {len(self.days_moved)} day(s) to the archive ({moved}); "
            f"{self.aggregate_rows} samples_1m rows written, {self.aggregate_rows_pruned} pruned; "
            f"archive days deleted for the disk budget: {deleted}; database {self.db_bytes / 1e6:.1f} MB, "
            f"archive {self.archive_bytes / 1e6:.1f} MB; {self.seconds:.1f} s"
        )


# ---------------------------------------------------------------- small helpers
def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def day_start(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def cutoff_day(now: datetime, retention_days: float) -> date:
    """First UTC day that stays live: ``floor_day(now - retention)``, never later than today."""
    now = now.astimezone(UTC)
    return min((now - timedelta(days=retention_days)).date(), now.date())


def day_dir(archive: Path, d: date) -> Path:
    return archive / f"date={d.isoformat()}"


def archive_glob(archive: Path) -> str:
    """Absolute glob of every archive file, so the view works from any working directory."""
    return str(archive.resolve() / "date=*" / "*.parquet")


def archived_days(archive: Path) -> list[date]:
    """Days that have an archive file, oldest first."""
    days: list[date] = []
    if not archive.is_dir():
        return days
    for p in archive.glob("date=*"):
        try:
            d = date.fromisoformat(p.name.removeprefix("date="))
        except ValueError:
            continue
        if (p / ARCHIVE_FILE).exists():
            days.append(d)
    return sorted(days)


def _tree_bytes(root: Path) -> int:
    total = 0
    if root.is_dir():
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                try:
                    total += (Path(dirpath) / f).stat().st_size
                except FileNotFoundError:
                    continue
    return total


def _db_bytes(db_path: Path | None) -> int:
    if db_path is None:
        return 0
    return sum(p.stat().st_size for p in (db_path, Path(f"{db_path}.wal")) if p.exists())


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (the directory entry), as SQLite and PostgreSQL do."""
    _fsync_file(path)


def _count(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | dict[str, object] | None = None
) -> int:
    row = first_row(con.execute(sql, params if params is not None else []))
    return int(row[0]) if row and row[0] is not None else 0


# ---------------------------------------------------------------- the view
def create_samples_view(con: duckdb.DuckDBPyConnection, archive: Path, *, temporary: bool = False) -> None:
    """``v_samples`` = live ``samples`` ∪ every archive day, with the ``samples`` columns.

    ``allow_empty`` plus ``UNION ALL BY NAME`` keep the view valid while the archive has no file
    yet (DuckDB then reads one placeholder column, dropped by the outer projection).
    """
    kind = "TEMP VIEW" if temporary else "VIEW"
    con.execute(
        f"CREATE OR REPLACE {kind} v_samples AS SELECT {SAMPLE_COLUMNS} FROM ("
        f"SELECT {SAMPLE_COLUMNS} FROM samples UNION ALL BY NAME "
        f"SELECT * FROM read_parquet({_sql_str(archive_glob(archive))}, allow_empty = true, "
        "hive_partitioning = false))"
    )


# ---------------------------------------------------------------- recovery
def recover(con: duckdb.DuckDBPyConnection, archive: Path) -> tuple[int, int]:
    """Finish renames a crash interrupted, remove orphan temporary files; (finished, removed).

    Cheap (a directory listing and a tiny table), so the daemon runs it at every start.
    """
    finished = 0
    rows = con.execute("SELECT day, tmp_path, final_path FROM archive_pending ORDER BY day").fetchall()
    for d, tmp_s, final_s in rows:
        tmp, final = Path(tmp_s), Path(final_s)
        if tmp.exists():
            os.replace(tmp, final)
            _fsync_dir(final.parent)
            finished += 1
            log.warning("archive day %s: finished a move that was interrupted after its commit", d)
        elif not final.exists():
            log.error("archive day %s: neither %s nor %s exists; its moved rows are lost", d, tmp, final)
        con.execute("DELETE FROM archive_pending WHERE day = ?", [d])
    pending = {Path(r[1]) for r in rows}
    removed = 0
    if archive.is_dir():
        for tmp in archive.glob("date=*/.*.tmp"):
            if tmp not in pending:
                tmp.unlink(missing_ok=True)
                removed += 1
    if removed:
        log.info("removed %d unfinished archive file(s) (their rows are still in the live file)", removed)
    return finished, removed


# ---------------------------------------------------------------- aggregates
def _aggregate_select(source: str) -> str:
    """Per tag and minute; min/max/mean/last over good samples only (a bad value never enters a trend)."""
    good = "quality = 'good' AND value IS NOT NULL"
    return f"""
SELECT to_timestamp((epoch_us(ts) // {_US_PER_MIN}) * 60) AS ts, site, tag,
    min(value) FILTER (WHERE {good}) AS min,
    max(value) FILTER (WHERE {good}) AS max,
    avg(value) FILTER (WHERE {good}) AS mean,
    arg_max(value, ts) FILTER (WHERE {good}) AS last,
    count(*) AS n,
    count(*) FILTER (WHERE quality = 'good') AS n_good
FROM {source}
GROUP BY ALL"""


def refresh_aggregates(con: duckdb.DuckDBPyConnection, since: datetime) -> int:
    """Rebuild ``samples_1m`` from live samples at and after ``since`` (a day start); rows written."""
    with transaction(con):
        con.execute("DELETE FROM samples_1m WHERE ts >= ?", [since])
        src = f"(SELECT {SAMPLE_COLUMNS} FROM samples WHERE ts >= $since)"
        con.execute(f"INSERT INTO samples_1m {_aggregate_select(src)}", {"since": since})
        return _count(con, "SELECT count(*) FROM samples_1m WHERE ts >= ?", [since])


def _aggregate_since(con: duckdb.DuckDBPyConnection, now: datetime) -> datetime | None:
    """Where this run's aggregate refresh starts: a day before the last run, or the oldest live day."""
    row = first_row(con.execute("SELECT value FROM meta WHERE key = 'samples_1m_through'"))
    if row and row[0]:
        return day_start(date.fromisoformat(str(row[0])) - timedelta(days=1))
    first = first_row(con.execute("SELECT min(ts) FROM samples"))
    if not first or first[0] is None:
        return None
    return day_start(first[0].astimezone(UTC).date())


def prune_aggregates(con: duckdb.DuckDBPyConnection, now: datetime, retention_days: float) -> int:
    keep_from = day_start(cutoff_day(now, retention_days))
    n = _count(con, "SELECT count(*) FROM samples_1m WHERE ts < ?", [keep_from])
    if n:
        con.execute("DELETE FROM samples_1m WHERE ts < ?", [keep_from])
    return n


# ---------------------------------------------------------------- moving a day
def days_to_move(con: duckdb.DuckDBPyConnection, before: date) -> Iterator[date]:
    """Live days before ``before`` that still hold samples, oldest first."""
    limit = day_start(before)
    d: date | None = None
    while True:
        lower = day_start(d + timedelta(days=1)) if d is not None else None
        sql = "SELECT min(ts) FROM samples WHERE ts < $limit" + (" AND ts >= $lower" if lower else "")
        params: dict[str, object] = {"limit": limit}
        if lower is not None:
            params["lower"] = lower
        row = first_row(con.execute(sql, params))
        if not row or row[0] is None:
            return
        d = row[0].astimezone(UTC).date()
        yield d


def move_day(con: duckdb.DuckDBPyConnection, archive: Path, d: date, *, now: datetime | None = None) -> int:
    """Move one UTC day of live samples into its archive file (merged with it); rows moved."""
    start, end = day_start(d), day_start(d + timedelta(days=1))
    folder = day_dir(archive, d)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / ARCHIVE_FILE
    tmp = folder / f".{ARCHIVE_FILE}.{uuid.uuid4().hex[:12]}.tmp"
    day: dict[str, object] = {"a": start, "b": end}
    live = f"SELECT {SAMPLE_COLUMNS} FROM samples WHERE ts >= $a AND ts < $b"
    try:
        with transaction(con):
            n_live = _count(con, f"SELECT count(*) FROM ({live})", day)
            if n_live == 0:
                return 0
            src = live
            n_old = 0
            if final.exists():
                n_old = _count(con, f"SELECT count(*) FROM read_parquet({_sql_str(str(final))})")
                src += f" UNION ALL SELECT {SAMPLE_COLUMNS} FROM read_parquet({_sql_str(str(final))})"
            copy_to_parquet(con, f"{src} ORDER BY tag, ts", day, tmp)
            _fsync_file(tmp)
            n_file = _count(con, f"SELECT count(*) FROM read_parquet({_sql_str(str(tmp))})")
            if n_file != n_live + n_old:
                raise TieringError(
                    f"archive day {d}: wrote {n_file} rows, expected {n_live} live + {n_old} archived"
                )
            step_hook("copied")
            con.execute("INSERT INTO archive_pending VALUES (?, ?, ?)", [d, str(tmp), str(final)])
            con.execute("DELETE FROM samples WHERE ts >= $a AND ts < $b", day)
            con.execute("DELETE FROM samples_1m WHERE ts >= $a AND ts < $b", day)
            con.execute(f"INSERT INTO samples_1m {_aggregate_select(f'read_parquet({_sql_str(str(tmp))})')}")
            con.execute(
                "INSERT INTO archive_days VALUES (?, ?, ?, ?) ON CONFLICT (day) DO UPDATE SET "
                "rows = excluded.rows, bytes = excluded.bytes, moved_at = excluded.moved_at",
                [d, n_file, tmp.stat().st_size, now or datetime.now(UTC)],
            )
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    step_hook("committed")
    os.replace(tmp, final)
    _fsync_dir(folder)
    step_hook("renamed")
    con.execute("DELETE FROM archive_pending WHERE day = ?", [d])
    return n_live


# ---------------------------------------------------------------- disk budget
#: archives whose budget cannot be met by deleting archive days (warned once, until it can again)
_short_of_space: set[str] = set()


def enforce_budget(
    con: duckdb.DuckDBPyConnection, s: TierSettings, *, now: datetime | None = None, warn: bool = True
) -> list[date]:
    """Delete the oldest archive days while over ``max_disk_gb`` or under ``min_free_disk_gb``.

    Only archive days go: the live file holds KPIs, alerts, baselines and the MQTT outbox, which
    are never given up for space. Each deletion is logged and recorded in ``archive_deletions``.
    """
    if s.max_disk_gb is None and s.min_free_disk_gb is None:
        return []
    pending = {r[0] for r in con.execute("SELECT day FROM archive_pending").fetchall()}
    days = [d for d in archived_days(s.archive_dir) if d not in pending]
    deleted: list[date] = []
    probe = s.db_path.parent if s.db_path is not None else s.archive_dir
    over = low = False
    used = free = 0
    while True:
        used = _db_bytes(s.db_path) + _tree_bytes(s.archive_dir)
        over = s.max_disk_gb is not None and used > s.max_disk_gb * _GB
        free = shutil.disk_usage(probe if probe.exists() else Path(".")).free
        low = s.min_free_disk_gb is not None and free < s.min_free_disk_gb * _GB
        if not (over or low) or not days:
            break
        d = days.pop(0)
        folder = day_dir(s.archive_dir, d)
        size = _tree_bytes(folder)
        row = first_row(con.execute("SELECT rows FROM archive_days WHERE day = ?", [d]))
        reason = (
            f"database + archive {used / _GB:.3f} GB > agent.max_disk_gb {s.max_disk_gb:g}"
            if over
            else f"free space {free / _GB:.3f} GB < agent.min_free_disk_gb {s.min_free_disk_gb:g}"
        )
        # recorded before the files go: a crash in between repeats the deletion, never hides it
        with transaction(con):
            con.execute(
                "INSERT INTO archive_deletions VALUES (?, ?, ?, ?, ?)",
                [d, row[0] if row else None, size, now or datetime.now(UTC), reason],
            )
            con.execute("DELETE FROM archive_days WHERE day = ?", [d])
        shutil.rmtree(folder, ignore_errors=True)
        log.warning("deleted archive day %s (%d bytes, %s rows): %s", d, size, row[0] if row else "?", reason)
        deleted.append(d)
    key = str(s.archive_dir)
    if over or low:
        if warn and key not in _short_of_space:
            _short_of_space.add(key)
            log.warning(
                "no archive day left to delete and still %s: the live database alone needs the room; "
                "lower agent.samples_retention_days or give the volume more space",
                f"{used / _GB:.3f} GB used" if over else f"{free / _GB:.3f} GB free",
            )
    else:
        _short_of_space.discard(key)
    return deleted


# ---------------------------------------------------------------- one run
def maintain(
    con: duckdb.DuckDBPyConnection, s: TierSettings, *, now: datetime | None = None
) -> MaintainResult:
    """Tier, aggregate, prune, checkpoint and keep the budget: what ``kilnwatch maintain`` and the
    daemon's daily run do. Safe to repeat and to kill at any point (module docstring)."""
    t0 = time.perf_counter()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    res = MaintainResult()
    ensure_schema(con)  # a file written before the tiers existed
    s.archive_dir.mkdir(parents=True, exist_ok=True)
    res.renames_finished, res.orphans_removed = recover(con, s.archive_dir)
    # room for the day files first, when short (no warning yet: moving days may be enough)
    res.days_deleted = enforce_budget(con, s, now=now, warn=False)
    since = _aggregate_since(con, now)
    if since is not None:
        res.aggregate_rows += refresh_aggregates(con, since)
    con.execute(
        "INSERT INTO meta VALUES ('samples_1m_through', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [now.date().isoformat()],
    )
    for d in list(days_to_move(con, cutoff_day(now, s.samples_retention_days))):
        n = move_day(con, s.archive_dir, d, now=now)
        if n:
            res.days_moved.append(d)
            res.rows_moved += n
            log.info("moved %d samples of %s to %s", n, d, day_dir(s.archive_dir, d))
    res.aggregate_rows_pruned = prune_aggregates(con, now, s.aggregate_retention_days)
    create_samples_view(con, s.archive_dir)
    if s.db_path is not None:  # freed blocks are reused by later inserts: the file follows retention
        safe_checkpoint(con, s.db_path)
    res.days_deleted += enforce_budget(con, s, now=now)
    con.execute(
        "INSERT INTO meta VALUES ('last_maintain', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [now.isoformat()],
    )
    res.db_bytes = _db_bytes(s.db_path)
    res.archive_bytes = _tree_bytes(s.archive_dir)
    res.seconds = time.perf_counter() - t0
    return res


def storage_figures(s: TierSettings) -> dict[str, int]:
    """Bytes and days of each tier, for metrics and the MQTT ``status``."""
    return {
        "database_bytes": _db_bytes(s.db_path),
        "archive_bytes": _tree_bytes(s.archive_dir),
        "archive_days": len(archived_days(s.archive_dir)),
    }


def last_maintain(con: duckdb.DuckDBPyConnection) -> datetime | None:
    row = first_row(con.execute("SELECT value FROM meta WHERE key = 'last_maintain'"))
    if not row or not row[0]:
        return None
    try:
        return datetime.fromisoformat(str(row[0]))
    except ValueError:
        return None
