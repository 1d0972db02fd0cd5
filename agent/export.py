"""Parquet export for fleet analytics, and consistent database snapshots for auditors.

``export_parquet`` writes ``DIR/table=<t>/site=<s>/date=<YYYY-MM-DD>/part-0.parquet`` with DuckDB's
``COPY ... PARTITION_BY`` (dates are UTC days of the table's time column). Re-exporting a day
replaces that day's files, so a nightly ``kilnwatch export --from yesterday`` is idempotent. Any
engine that understands Hive partitioning reads the tree (docs/auditors.md: DuckDB, Spark, Trino).

``snapshot_database`` is for the process that holds the database open for writing (the agent):
DuckDB lets only one process open a file for writing and then no other process may open it, even
read-only, so auditors read a snapshot or the Parquet tree instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

import duckdb

from agent.storage import first_row, samples_source, transaction

log = logging.getLogger(__name__)

#: Exported tables and the time column that gives their ``date`` partition.
EXPORT_TABLES: dict[str, str] = {
    "samples": "ts",
    "kpi": "ts",
    "alerts": "started_at",
    "mv_savings": "ts",
    "source_status": "ts",
    "baselines": "fitted_at",
    "assets": "updated_at",
}
#: Tables whose rows are filtered by ``--from``/``--to`` (the others are small and exported whole).
TIME_SERIES_TABLES = frozenset({"samples", "kpi", "alerts", "mv_savings", "source_status"})


@contextlib.contextmanager
def no_progress_bar(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """No DuckDB progress bar on stdout (the agent's log, a cron mail) during a long copy."""
    row = first_row(con.execute("SELECT current_setting('enable_progress_bar')"))
    was = bool(row[0]) if row else False
    con.execute("SET enable_progress_bar = false")
    try:
        yield
    finally:
        if was:
            con.execute("SET enable_progress_bar = true")


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def export_parquet(
    con: duckdb.DuckDBPyConnection,
    out_dir: str | os.PathLike[str],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    site: str | None = None,
    tables: Sequence[str] | None = None,
) -> dict[str, int]:
    """Export tables as Hive-partitioned Parquet; returns rows written per table.

    All tables are read in one transaction, so the export is a consistent snapshot. Partitions
    (site, date) being written are removed first: re-exporting a range never duplicates rows.
    """
    out = Path(out_dir)
    names = list(tables) if tables is not None else list(EXPORT_TABLES)
    for t in names:
        if t not in EXPORT_TABLES:
            raise ValueError(f"unknown table {t!r}")
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with no_progress_bar(con), transaction(con):
        for table in names:
            counts[table] = _export_table(con, out, table, start=start, end=end, site=site)
    log.info("exported %s to %s", ", ".join(f"{t}={n}" for t, n in counts.items()), out)
    return counts


def _export_table(
    con: duckdb.DuckDBPyConnection,
    out: Path,
    table: str,
    *,
    start: datetime | None,
    end: datetime | None,
    site: str | None,
) -> int:
    tcol = EXPORT_TABLES[table]
    where: list[str] = []
    params: list[object] = []
    if site is not None:
        where.append("site = ?")
        params.append(site)
    if table in TIME_SERIES_TABLES:
        if start is not None:
            where.append(f"{tcol} >= ?")
            params.append(start)
        if end is not None:
            where.append(f"{tcol} < ?")
            params.append(end)
    cond = f"WHERE {' AND '.join(where)}" if where else ""
    # The date of a row is its UTC day, whatever the session time zone; tables without a time for
    # a row (assets never updated) go to the export day.
    date_expr = f"CAST(timezone('UTC', coalesce({tcol}, current_timestamp)) AS DATE)"
    # samples span both storage tiers (agent/tiering.py): the export reads them through v_samples
    source = samples_source(con) if table == "samples" else table
    select = f"SELECT *, {date_expr} AS date FROM {source} {cond}"
    parts = con.execute(f"SELECT DISTINCT site, date FROM ({select})", params).fetchall()
    if not parts:
        return 0
    base = out / f"table={table}"
    for s, d in parts:
        part = base / f"site={s}" / f"date={d.isoformat()}"
        if part.exists():
            shutil.rmtree(part)
    n_row = first_row(con.execute(f"SELECT count(*) FROM ({select})", params))
    base.mkdir(parents=True, exist_ok=True)
    copy_to_parquet(con, select, params, base, partition_by=("site", "date"))
    return int(n_row[0]) if n_row else 0


def copy_to_parquet(
    con: duckdb.DuckDBPyConnection,
    select: str,
    params: Sequence[object] | dict[str, object],
    dest: Path,
    *,
    partition_by: Sequence[str] = (),
) -> None:
    """The one Parquet writer: zstd, DuckDB's ``COPY``; the export's Hive tree and the storage tier's
    archive days (agent/tiering.py) both come out of it, so their files read the same everywhere.

    With ``partition_by`` ``dest`` is a directory (``part-0.parquet`` per partition), else a file.
    """
    options = "FORMAT parquet, COMPRESSION zstd"
    if partition_by:
        options += f", PARTITION_BY ({', '.join(partition_by)}), FILENAME_PATTERN 'part-{{i}}', OVERWRITE_OR_IGNORE"
    con.execute(f"COPY ({select}) TO {_sql_str(str(dest))} ({options})", params)


def snapshot_database(con: duckdb.DuckDBPyConnection, dest: str | os.PathLike[str]) -> Path:
    """Write a consistent copy of the open database to ``dest`` (atomically replaced).

    Run it in the process that holds the database (DuckDB allows one writer process and then no
    reader process); other processes can then open ``dest`` read-only at any time.
    """
    target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    for p in (tmp, Path(str(tmp) + ".wal")):
        p.unlink(missing_ok=True)
    row = first_row(con.execute("SELECT current_database()"))
    src = str(row[0]) if row else "main"
    with no_progress_bar(con):
        con.execute(f"ATTACH {_sql_str(str(tmp))} AS kw_snapshot")
        try:
            con.execute(f'COPY FROM DATABASE "{src}" TO kw_snapshot')
        finally:
            con.execute("DETACH kw_snapshot")
    os.replace(tmp, target)
    log.info("database snapshot written to %s", target)
    return target
