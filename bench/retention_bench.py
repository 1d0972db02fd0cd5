"""Retention benchmark: does the live DuckDB file stay flat once raw samples move to the archive?

``agent/tiering.py`` moves raw samples older than ``samples_retention_days`` to a Parquet archive
so that the live file (the one every auditor snapshot copies) stops growing with the plant's age.
This script checks that claim by simulating the daemon's life day by day, in a fresh temporary
directory (nothing outside it is read or written):

1. **File size over simulated days.** For day 1 .. ``--days``: append one UTC day of samples (and
   that day's KPI rows) the way the flusher does, then run :func:`agent.tiering.maintain` with
   ``now`` = the next day at 02:30 UTC, as the daemon's daily run would. After each day it records
   the live file size (database + ``.wal``), the row counts of ``samples``, ``samples_1m`` and
   ``kpi``, the archive size and days, and the seconds spent inserting and in ``maintain``. The
   same days are replayed without tiering (a plain ``CHECKPOINT`` per day instead of ``maintain``)
   as the baseline: the size the file would have had, measured rather than extrapolated. By
   default both variants run one after the other, so their ratio comes from the same machine state.

   Sources of samples (``--source``):

   * ``synthetic`` (default): ``--tags`` tags every ``--every-secs`` seconds, a slow sine per tag
     plus uniform noise in full double precision (so compression is not flattering), ~1 % ``bad``
     quality; generated in SQL with ``INSERT INTO samples SELECT ... FROM range(...)`` in
     ``--inserts-per-day`` chunks, like a flusher (never one huge insert). Each chunk also appends
     its share of ``--kpi-rows-per-day`` KPI rows (1-min, 15-min and hourly windows, in the
     proportions of the plant simulator), because KPIs stay in the live file forever and are part
     of its growth.
   * ``backfill``: :func:`agent.backfill.backfill` for one day at a time (the plant model: its own
     74 tags, realistic KPIs and alerts; ``--tags`` and ``--kpi-rows-per-day`` do not apply).

   As in the daemon, DuckDB's automatic checkpoint is off and the writer checkpoints when the WAL
   passes ``agent.storage_guard.CHECKPOINT_WAL_BYTES`` (counted in the insert seconds).
   Per-table megabytes are estimated from ``pragma_storage_info`` (segment offsets within blocks),
   so the growth can be split into samples, ``samples_1m`` and KPIs.

2. **Snapshot** (``--snapshot``): at the end of each variant's run,
   :func:`agent.export.snapshot_database` (the auditors' copy) is timed ``--snapshot-reps`` times;
   the median seconds and the snapshot's size are reported for the tiered file and the untiered
   baseline, so their ratio is measured in the same run.

Run from the repository root:

    .venv/bin/python bench/retention_bench.py                 # 90 days, 1,000 tags / 60 s, both variants
    .venv/bin/python bench/retention_bench.py --quick         # 12 days, retention 4, 100 tags (smoke run)
    .venv/bin/python bench/retention_bench.py --snapshot --out bench/results/retention.md
    .venv/bin/python bench/retention_bench.py --no-tiering    # the baseline alone
    .venv/bin/python bench/retention_bench.py --source backfill --days 40 --retention-days 10
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

# bench/ holds scripts, not packages: keep it off the import path so that a script named like a
# package cannot shadow it; the repository root goes on it instead.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from agent import storage  # noqa: E402
from agent.storage_guard import CHECKPOINT_WAL_BYTES, disable_autocheckpoint, safe_checkpoint  # noqa: E402
from agent.tiering import TierSettings, maintain, storage_figures  # noqa: E402

#: First simulated UTC day (fixed, so two runs simulate the same calendar).
START = datetime(2026, 1, 1, tzinfo=UTC)
#: The daemon's daily maintenance slot (``agent.maintain_at``) on the day after the inserted one.
MAINTAIN_AT = timedelta(hours=2, minutes=30)
SITE = "plant1"
#: KPI windows the rule engine writes (seconds) - the plant simulator writes each of its KPI
#: series at all three, so rows per series and day = 1440 + 96 + 24.
KPI_WINDOWS = (60, 900, 3600)
#: Measured with ``agent.backfill.backfill(days=1, sample_every_secs=60)``: 45 series x 1,560 rows.
SIM_KPI_ROWS_PER_DAY = 70_200
MB = 1e6
TABLE_GROUPS = ("samples", "samples_1m", "kpi")


@dataclass
class DayRecord:
    """What one simulated day left behind (sizes after that day's maintenance or checkpoint)."""

    day: int
    db_bytes: int
    used_bytes: int
    samples: int
    samples_1m: int
    kpi: int
    archive_bytes: int
    archive_days: int
    insert_s: float
    maintain_s: float
    table_bytes: dict[str, int] = field(default_factory=dict)


@dataclass
class SnapshotResult:
    file_bytes: int
    snapshot_bytes: int
    seconds: list[float]


@dataclass
class VariantRun:
    name: str
    tiered: bool
    records: list[DayRecord]
    wall_s: float
    samples_written: int
    kpi_written: int
    snapshot: SnapshotResult | None = None


# ------------------------------------------------------------------------------ measuring
def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


def _file_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, Path(f"{db}.wal")) if p.exists())


def _used_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """Blocks in use (the rest of the file is free blocks that later inserts reuse)."""
    row = con.execute("SELECT used_blocks * block_size FROM pragma_database_size()").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def table_bytes(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Estimated on-disk bytes of ``samples``, ``samples_1m``, ``kpi`` and everything else.

    DuckDB reports no segment sizes, only each persistent segment's block and offset: a segment is
    taken to end where the next one in its block starts (or at the block's end), and each of its
    ``additional_block_ids`` counts as a whole block. Close enough to split the growth by table;
    "other" is every remaining used block (other tables, indexes, metadata).
    """
    tables = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() "
            "WHERE database_name = current_database() AND schema_name = 'main' AND NOT temporary"
        ).fetchall()
    ]
    row = con.execute("SELECT block_size FROM pragma_database_size()").fetchone()
    block = int(row[0]) if row else 262_144
    parts = " UNION ALL ".join(
        f"SELECT '{t}' AS t, block_id, block_offset, coalesce(len(additional_block_ids), 0) AS extra "
        f"FROM pragma_storage_info('{t}') WHERE persistent AND block_id IS NOT NULL"
        for t in tables
    )
    out = dict.fromkeys((*TABLE_GROUPS, "other"), 0)
    if not parts:
        return out
    rows = con.execute(
        f"""SELECT t, sum(size) FROM (
            SELECT t, coalesce(lead(block_offset) OVER (PARTITION BY block_id ORDER BY block_offset), {block})
                - block_offset + extra * {block} AS size
            FROM ({parts})) GROUP BY t"""
    ).fetchall()
    for t, n in rows:
        out[t if t in TABLE_GROUPS else "other"] += int(n)
    out["other"] = max(0, _used_bytes(con) - sum(out[t] for t in TABLE_GROUPS))
    return out


# ------------------------------------------------------------------------------ writing a day
class Writer:
    """Appends one simulated UTC day to the live file, as the agent's flusher would."""

    def __init__(self, con: duckdb.DuckDBPyConnection, db: Path, args: argparse.Namespace) -> None:
        self.con, self.db, self.args = con, db, args
        self.every_us = round(args.every_secs * 1e6)
        if 86_400_000_000 % self.every_us:
            raise SystemExit("--every-secs must divide a day")
        self.steps_per_day = 86_400_000_000 // self.every_us
        self.steps_per_insert = -(-self.steps_per_day // args.inserts_per_day)
        self.kpi_series = max(0, round(args.kpi_rows_per_day / sum(86_400 // w for w in KPI_WINDOWS)))
        self.samples_written = self.kpi_written = 0
        con.execute("SELECT setseed(0.42)")

    def _guard_checkpoint(self) -> None:
        """The daemon's policy (agent.storage_guard): fold the WAL into the file once it is large."""
        wal = Path(f"{self.db}.wal")
        if wal.exists() and wal.stat().st_size >= CHECKPOINT_WAL_BYTES:
            safe_checkpoint(self.con, self.db)

    def write_day(self, day0: datetime) -> None:
        if self.args.source == "backfill":
            from agent.backfill import backfill

            r = backfill(self.con, days=1, start=day0, sample_every_secs=self.args.every_secs, progress=False)
            self.samples_written += r.samples
            self.kpi_written += r.kpi_rows
            self._guard_checkpoint()
            return
        step = 0
        while step < self.steps_per_day:
            n_steps = min(self.steps_per_insert, self.steps_per_day - step)
            self._insert_samples(day0, step, n_steps)
            self._insert_kpis(day0, step * self.every_us, (step + n_steps) * self.every_us)
            self._guard_checkpoint()
            step += n_steps

    def _insert_samples(self, day0: datetime, first_step: int, n_steps: int) -> None:
        """``n_steps`` polls of every tag, time-major (one poll's tags together, as frames arrive).

        Tag k: ``100 + 10 sin(2 pi t / period_k + k) + U(0, 1)``, period 1 .. 24 h; 1 % bad quality.
        """
        tags = self.args.tags
        self.con.execute(
            """INSERT INTO samples
            SELECT $day0 + to_microseconds((($first + i // $tags) * $every_us)::BIGINT) AS ts, $site,
                'line1.a' || lpad(((i % $tags) // 25)::VARCHAR, 3, '0')
                    || '.sig' || lpad((i % $tags)::VARCHAR, 5, '0'),
                100 + 10 * sin(2 * pi() * (($first + i // $tags) * $every_us / 1e6)
                    / (3600.0 * (1 + (i % $tags) % 24)) + (i % $tags)) + random(),
                CASE WHEN random() < 0.01 THEN 'bad' ELSE 'good' END
            FROM range($n) t(i)""",
            {
                "day0": day0,
                "first": first_step,
                "tags": tags,
                "every_us": self.every_us,
                "site": SITE,
                "n": n_steps * tags,
            },
        )
        self.samples_written += n_steps * tags

    def _insert_kpis(self, day0: datetime, us0: int, us1: int) -> None:
        """KPI rows whose window starts in ``[us0, us1)`` of the day: every series at every window."""
        if not self.kpi_series:
            return
        for w in KPI_WINDOWS:
            w_us = w * 1_000_000
            first, last = -(-us0 // w_us), -(-us1 // w_us)
            if last <= first:
                continue
            self.con.execute(
                """INSERT INTO kpi
                SELECT $day0 + to_seconds((j * $w)::BIGINT), $site, 'asset' || (s // 8), 'kpi_' || s,
                    50 + 20 * sin(2 * pi() * j * $w / 86400.0 + s) + random(),
                    'kW', $w, CASE WHEN random() < 0.02 THEN 0.9 ELSE 1.0 END, NULL
                FROM range($series) a(s), range($first, $last) b(j)""",
                {"day0": day0, "w": w, "site": SITE, "series": self.kpi_series, "first": first, "last": last},
            )
            self.kpi_written += self.kpi_series * (last - first)


# ------------------------------------------------------------------------------ one variant
def run_variant(root: Path, args: argparse.Namespace, *, tiered: bool) -> VariantRun:
    """Simulate ``--days`` days into a fresh file; ``tiered`` runs ``maintain`` daily, else CHECKPOINT."""
    name = "tiered" if tiered else "untiered"
    folder = root / name
    db = folder / "site.duckdb"
    settings = TierSettings(
        archive_dir=folder / "archive", samples_retention_days=args.retention_days, db_path=db
    )
    con = storage.connect(db)
    disable_autocheckpoint(con)  # as the daemon does (agent/pipeline.py)
    writer = Writer(con, db, args)
    records: list[DayRecord] = []
    t_run = time.perf_counter()
    for i in range(args.days):
        day0 = START + timedelta(days=i)
        t0 = time.perf_counter()
        writer.write_day(day0)
        t1 = time.perf_counter()
        if tiered:
            maintain(con, settings, now=day0 + timedelta(days=1) + MAINTAIN_AT)
        else:
            con.execute("CHECKPOINT")
        t2 = time.perf_counter()
        figs = storage_figures(settings)
        day = i + 1
        rec = DayRecord(
            day=day,
            db_bytes=_file_bytes(db),
            used_bytes=_used_bytes(con),
            samples=_count(con, "samples"),
            samples_1m=_count(con, "samples_1m"),
            kpi=_count(con, "kpi"),
            archive_bytes=figs["archive_bytes"],
            archive_days=figs["archive_days"],
            insert_s=t1 - t0,
            maintain_s=t2 - t1,
        )
        if _shown(day, args):
            rec.table_bytes = table_bytes(con)
        records.append(rec)
        print(
            f"{name:8} day {day:3}: file {rec.db_bytes / MB:8.1f} MB (used {rec.used_bytes / MB:8.1f}), "
            f"samples {rec.samples:>11,}, samples_1m {rec.samples_1m:>11,}, kpi {rec.kpi:>10,}, "
            f"archive {rec.archive_bytes / MB:7.1f} MB / {rec.archive_days:2} d; "
            f"insert {rec.insert_s:5.1f} s, {'maintain' if tiered else 'checkpoint'} {rec.maintain_s:5.1f} s",
            file=sys.stderr,
            flush=True,
        )
    run = VariantRun(
        name, tiered, records, time.perf_counter() - t_run, writer.samples_written, writer.kpi_written
    )
    if args.snapshot:
        run.snapshot = time_snapshot(con, db, folder / "snapshot" / "site.duckdb", args.snapshot_reps)
        print(
            f"{name:8} snapshot: {statistics.median(run.snapshot.seconds):.2f} s median of "
            f"{len(run.snapshot.seconds)}, {run.snapshot.snapshot_bytes / MB:.1f} MB",
            file=sys.stderr,
            flush=True,
        )
    con.close()
    return run


def time_snapshot(con: duckdb.DuckDBPyConnection, db: Path, dest: Path, reps: int) -> SnapshotResult:
    """Time the auditors' snapshot copy of the live file (each repetition into a fresh target)."""
    from agent.export import snapshot_database

    seconds: list[float] = []
    size = 0
    for _ in range(reps):
        dest.unlink(missing_ok=True)
        t0 = time.perf_counter()
        snapshot_database(con, dest)
        seconds.append(time.perf_counter() - t0)
        size = _file_bytes(dest)
    dest.unlink(missing_ok=True)
    return SnapshotResult(_file_bytes(db), size, seconds)


def _shown(day: int, args: argparse.Namespace) -> bool:
    """Rows of the Markdown table: every ``--table-every`` days, the summary days and the last day."""
    return day % args.table_every == 0 or day == args.days or day in _summary_days(args)


def _summary_days(args: argparse.Namespace) -> list[int]:
    """Retention x 1, 2, 3 (days 30, 60, 90 by default), within the run."""
    r = round(args.retention_days)
    return [d for d in (r, 2 * r, 3 * r) if 0 < d <= args.days]


# ------------------------------------------------------------------------------ report
def _mb(n: int) -> str:
    return f"{n / MB:,.1f}"


def _table(run: VariantRun, args: argparse.Namespace) -> list[str]:
    step = "maintain s" if run.tiered else "checkpoint s"
    lines = [
        f"### {run.name}"
        + (" (maintain daily)" if run.tiered else " (baseline: CHECKPOINT daily, no maintain)"),
        "",
        f"| day | live file MB | used MB | samples MB | samples_1m MB | kpi MB | other MB | samples rows | "
        f"samples_1m rows | kpi rows | archive MB | archive days | insert s | {step} |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in run.records:
        if not r.table_bytes:
            continue
        tb = r.table_bytes
        lines.append(
            f"| {r.day} | {_mb(r.db_bytes)} | {_mb(r.used_bytes)} | {_mb(tb['samples'])} | "
            f"{_mb(tb['samples_1m'])} | {_mb(tb['kpi'])} | {_mb(tb['other'])} | {r.samples:,} | "
            f"{r.samples_1m:,} | {r.kpi:,} | {_mb(r.archive_bytes)} | {r.archive_days} | "
            f"{r.insert_s:.2f} | {r.maintain_s:.2f} |"
        )
    ins = [r.insert_s for r in run.records]
    mnt = [r.maintain_s for r in run.records]
    lines += [
        "",
        f"- {run.samples_written:,} samples and {run.kpi_written:,} KPI rows written in {run.wall_s / 60:.1f} min; "
        f"insert per day median {statistics.median(ins):.2f} s, {step.removesuffix(' s')} median "
        f"{statistics.median(mnt):.2f} s "
        f"(max {max(mnt):.2f} s)",
    ]
    lines += _summary(run, args)
    return lines


def _summary(run: VariantRun, args: argparse.Namespace) -> list[str]:
    by_day = {r.day: r for r in run.records}
    pts = _summary_days(args)
    lines: list[str] = []
    if pts:
        sizes = ", ".join(f"day {d}: {_mb(by_day[d].db_bytes)} MB" for d in pts)
        lines.append(f"- live file size: {sizes}")
    if len(pts) >= 2:
        a, b = by_day[pts[-2]], by_day[pts[-1]]
        days = b.day - a.day
        grow = b.db_bytes - a.db_bytes
        split = ", ".join(
            f"{t} {(b.table_bytes[t] - a.table_bytes[t]) / MB:+,.1f} MB" for t in (*TABLE_GROUPS, "other")
        )
        lines.append(
            f"- growth day {a.day} -> {b.day}: file {grow / MB:+,.1f} MB ({grow / days / MB:+,.2f} MB/day), "
            f"used blocks {(b.used_bytes - a.used_bytes) / MB:+,.1f} MB; by table (estimated): {split}"
        )
    if run.tiered and run.records[-1].archive_days:
        last = run.records[-1]
        lines.append(
            f"- archive: {_mb(last.archive_bytes)} MB for {last.archive_days} days "
            f"({last.archive_bytes / last.archive_days / MB:,.1f} MB/day of Parquet, zstd)"
        )
    return lines


def markdown(runs: list[VariantRun], args: argparse.Namespace, elapsed: float) -> str:
    src = (
        f"synthetic: {args.tags:,} tags every {args.every_secs:g} s ({args.tags * 86_400 / args.every_secs:,.0f} "
        f"samples/day, {args.inserts_per_day} inserts/day), ~{args.kpi_rows_per_day:,} KPI rows/day"
        if args.source == "synthetic"
        else f"backfill: the plant simulator's tags every {args.every_secs:g} s, its KPIs and alerts"
    )
    lines = [
        "# Retention benchmark (storage tiers)",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} cores "
        f"({platform.processor() or platform.machine()}, {platform.system()}), Python "
        f"{platform.python_version()}, DuckDB {duckdb.__version__}; shared with other jobs",
        f"- command: `.venv/bin/python bench/retention_bench.py{' ' + shlex.join(args.argv) if args.argv else ''}` "
        f"(total {elapsed / 60:.1f} min)",
        f"- {args.days} simulated UTC days from {START:%Y-%m-%d}; source {src}",
        "- tiered: `maintain(con, settings, now=<next day 02:30 UTC>)` after each day, samples_retention_days "
        f"{args.retention_days:g}, aggregate_retention_days 730 (default), no disk budget; untiered: the same "
        "inserts, `CHECKPOINT` after each day",
        "- live file = database + `.wal` after that day's maintenance; used = DuckDB's used blocks (the rest "
        "of the file is free blocks, reused by later writes); per-table MB estimated from "
        "`pragma_storage_info` (other = used blocks not attributed to samples, samples_1m or kpi)",
        "",
    ]
    for run in runs:
        lines += [*_table(run, args), ""]
    by_name = {r.name: r for r in runs}
    if "tiered" in by_name and "untiered" in by_name:
        t, u = by_name["tiered"], by_name["untiered"]
        lines += ["## Comparison", ""]
        for d in sorted({*_summary_days(args), args.days}):
            a, b = t.records[d - 1], u.records[d - 1]
            lines.append(
                f"- day {d}: tiered live file {_mb(a.db_bytes)} MB (+ archive {_mb(a.archive_bytes)} MB) vs "
                f"untiered {_mb(b.db_bytes)} MB: untiered / tiered = {b.db_bytes / a.db_bytes:.2f}"
            )
        lines.append("")
        if t.snapshot and u.snapshot:
            lines += [
                f"## Snapshot (`agent.export.snapshot_database`) at the end of the run (day {args.days})",
                "",
                "| variant | live file MB | snapshot MB | median s | runs (s) |",
                "|---|---:|---:|---:|---|",
            ]
            for run in (t, u):
                s = run.snapshot
                assert s is not None
                lines.append(
                    f"| {run.name} | {_mb(s.file_bytes)} | {_mb(s.snapshot_bytes)} | "
                    f"{statistics.median(s.seconds):.2f} | {', '.join(f'{x:.2f}' for x in s.seconds)} |"
                )
            ts, us = statistics.median(t.snapshot.seconds), statistics.median(u.snapshot.seconds)
            lines += [
                "",
                f"- untiered / tiered: snapshot time {us / ts:.2f}x, snapshot size "
                f"{u.snapshot.snapshot_bytes / t.snapshot.snapshot_bytes:.2f}x",
                "",
            ]
    elif any(r.snapshot for r in runs):
        for run in runs:
            if run.snapshot:
                s = run.snapshot
                lines += [
                    f"- snapshot of the {run.name} file ({_mb(s.file_bytes)} MB): {_mb(s.snapshot_bytes)} MB, "
                    f"median {statistics.median(s.seconds):.2f} s of {len(s.seconds)}",
                    "",
                ]
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------------------ main
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="12 days, retention 4, 100 tags (a smoke run)")
    p.add_argument("--days", type=int, default=None, help="simulated UTC days (default 90)")
    p.add_argument("--retention-days", type=float, default=None, help="samples_retention_days (default 30)")
    p.add_argument("--source", choices=["synthetic", "backfill"], default="synthetic")
    p.add_argument("--tags", type=int, default=None, help="synthetic tags (default 1000)")
    p.add_argument("--every-secs", type=float, default=60.0, help="sample interval per tag (default 60)")
    p.add_argument(
        "--kpi-rows-per-day",
        type=int,
        default=SIM_KPI_ROWS_PER_DAY,
        help=f"synthetic KPI rows per day (default {SIM_KPI_ROWS_PER_DAY:,}: the plant simulator's)",
    )
    p.add_argument(
        "--inserts-per-day", type=int, default=24, help="synthetic inserts per day (flusher batches)"
    )
    variant = p.add_mutually_exclusive_group()
    variant.add_argument("--no-tiering", action="store_true", help="run only the untiered baseline")
    variant.add_argument("--tiering-only", action="store_true", help="run only the tiered variant")
    p.add_argument("--snapshot", action="store_true", help="time snapshot_database at the end of each run")
    p.add_argument("--snapshot-reps", type=int, default=3)
    p.add_argument("--table-every", type=int, default=5, help="a table row every N days (and the last day)")
    p.add_argument("--out", help="write the Markdown here as well")
    args = p.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    args.days = args.days if args.days is not None else (12 if args.quick else 90)
    args.retention_days = (
        args.retention_days if args.retention_days is not None else (4.0 if args.quick else 30.0)
    )
    args.tags = args.tags if args.tags is not None else (100 if args.quick else 1000)
    if args.quick and args.table_every == 5:
        args.table_every = 2

    t0 = time.perf_counter()
    variants = [False] if args.no_tiering else [True] if args.tiering_only else [True, False]
    runs: list[VariantRun] = []
    with tempfile.TemporaryDirectory(prefix="kilnwatch-retention-") as tmp:
        for tiered in variants:
            runs.append(run_variant(Path(tmp), args, tiered=tiered))
    text = markdown(runs, args, time.perf_counter() - t0)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
