"""DuckDB storage: the auditor's interface (docs/auditors.md).

One file per site. Samples arrive as Polars frames and are inserted with one
``INSERT ... SELECT`` per flush from the registered frame (docs/libraries.md: ~1.2 ms per 1k rows;
``executemany`` is ~700x slower and never used for ingest). All timestamps are UTC.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from common.cli import EXIT_USAGE, CliError

if TYPE_CHECKING:
    from rules.assets import Asset

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

DDL: tuple[str, ...] = (
    "SET TimeZone = 'UTC'",
    """CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS samples (
        ts TIMESTAMPTZ NOT NULL,
        site VARCHAR NOT NULL,
        tag VARCHAR NOT NULL,
        value DOUBLE,
        quality VARCHAR NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS kpi (
        ts TIMESTAMPTZ NOT NULL,
        site VARCHAR NOT NULL,
        asset VARCHAR NOT NULL,
        kpi VARCHAR NOT NULL,
        value DOUBLE,
        unit VARCHAR,
        window_secs INTEGER NOT NULL,
        good_fraction DOUBLE,
        reason VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS alerts (
        alert_id VARCHAR PRIMARY KEY,
        site VARCHAR NOT NULL,
        asset VARCHAR NOT NULL,
        rule VARCHAR NOT NULL,
        severity VARCHAR NOT NULL,
        state VARCHAR NOT NULL,
        started_at TIMESTAMPTZ NOT NULL,
        resolved_at TIMESTAMPTZ,
        value DOUBLE,
        threshold DOUBLE,
        unit VARCHAR,
        message VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS baselines (
        baseline_id VARCHAR PRIMARY KEY,
        site VARCHAR NOT NULL,
        asset VARCHAR NOT NULL,
        target VARCHAR NOT NULL,
        drivers VARCHAR[] NOT NULL,
        granularity VARCHAR NOT NULL,
        period_from TIMESTAMPTZ NOT NULL,
        period_to TIMESTAMPTZ NOT NULL,
        n INTEGER,
        intercept DOUBLE,
        coefficients DOUBLE[],
        std_errors DOUBLE[],
        p_values DOUBLE[],
        r2 DOUBLE,
        adj_r2 DOUBLE,
        cv_rmse DOUBLE,
        nmbe DOUBLE,
        valid BOOLEAN,
        warnings VARCHAR[],
        unit VARCHAR,
        fitted_at TIMESTAMPTZ NOT NULL,
        f_pvalue DOUBLE,
        target_mean DOUBLE,
        target_kind VARCHAR,
        driver_kinds VARCHAR[],
        driver_units VARCHAR[],
        driver_min DOUBLE[],
        driver_max DOUBLE[],
        driver_mean DOUBLE[],
        driver_sd DOUBLE[]
    )""",
    """CREATE TABLE IF NOT EXISTS mv_savings (
        ts TIMESTAMPTZ NOT NULL,
        site VARCHAR NOT NULL,
        asset VARCHAR NOT NULL,
        baseline_id VARCHAR,
        expected DOUBLE,
        actual DOUBLE,
        avoided DOUBLE,
        cumulative_avoided DOUBLE,
        unit VARCHAR,
        fraction DOUBLE,
        avoided_cost DOUBLE,
        avoided_co2_kg DOUBLE,
        currency VARCHAR
    )""",
    # files written before the money columns (docs/kpis.md §11) existed
    "ALTER TABLE mv_savings ADD COLUMN IF NOT EXISTS avoided_cost DOUBLE",
    "ALTER TABLE mv_savings ADD COLUMN IF NOT EXISTS avoided_co2_kg DOUBLE",
    "ALTER TABLE mv_savings ADD COLUMN IF NOT EXISTS currency VARCHAR",
    """CREATE TABLE IF NOT EXISTS sites (
        site VARCHAR PRIMARY KEY,
        currency VARCHAR,
        grid_co2_kg_per_kwh DOUBLE,
        electricity_price_per_kwh DOUBLE,
        updated_at TIMESTAMPTZ
    )""",
    """CREATE TABLE IF NOT EXISTS assets (
        site VARCHAR NOT NULL,
        asset VARCHAR NOT NULL,
        type VARCHAR NOT NULL,
        roles JSON,
        updated_at TIMESTAMPTZ,
        PRIMARY KEY (site, asset)
    )""",
    """CREATE TABLE IF NOT EXISTS source_status (
        ts TIMESTAMPTZ NOT NULL,
        site VARCHAR NOT NULL,
        source VARCHAR NOT NULL,
        state VARCHAR NOT NULL,
        detail VARCHAR
    )""",
    # storage tiers (agent/tiering.py, docs/storage.md): per-tag minute aggregates that outlive the
    # raw samples, the archive's days, moves interrupted after their commit, days deleted for space
    """CREATE TABLE IF NOT EXISTS samples_1m (
        ts TIMESTAMPTZ NOT NULL,
        site VARCHAR NOT NULL,
        tag VARCHAR NOT NULL,
        min DOUBLE,
        max DOUBLE,
        mean DOUBLE,
        last DOUBLE,
        n BIGINT NOT NULL,
        n_good BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS archive_days (
        day DATE PRIMARY KEY,
        rows BIGINT NOT NULL,
        bytes BIGINT NOT NULL,
        moved_at TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS archive_pending (
        day DATE PRIMARY KEY,
        tmp_path VARCHAR NOT NULL,
        final_path VARCHAR NOT NULL
    )""",
    # wall-clock steps the agent detected (agent/clock.py)
    """CREATE TABLE IF NOT EXISTS clock_events (
        ts TIMESTAMPTZ NOT NULL,
        site VARCHAR NOT NULL,
        step_secs DOUBLE NOT NULL,
        wall_before TIMESTAMPTZ NOT NULL,
        note VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS archive_deletions (
        day DATE NOT NULL,
        rows BIGINT,
        bytes BIGINT NOT NULL,
        deleted_at TIMESTAMPTZ NOT NULL,
        reason VARCHAR NOT NULL
    )""",
)


class DatabaseInUseError(CliError):
    """The database file is locked by another process (the agent?): one line, exit code 2."""


_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.*?) \(PID (?P<pid>\d+)\)")


def in_use_message(path: str | Path, duckdb_message: str) -> str:
    """One line naming the file and, when DuckDB says so, the process holding it."""
    m = _LOCK_HOLDER.search(duckdb_message)
    holder = f" (PID {m['pid']}: {m['exe']})" if m else ""
    return (
        f"{path}: in use by another process{holder}; is the agent running? Only one process at a time "
        "can open a DuckDB file: see docs/auditors.md for reading it while the agent runs"
    )


class DatabaseDamagedError(CliError):
    """The database file is damaged (not a DuckDB file, truncated, bad checksums): one line, exit 2."""


#: DuckDB's words for a file that is not (or no longer) a readable database: a torn or foreign
#: header, a truncated file, a block whose checksum no longer matches, a catalog that cannot be read.
_DAMAGE = re.compile(
    r"not a valid duckdb database|could not read enough bytes|corrupt|checksum|failed to deserializ"
    r"|serializ|invalid block|block id",
    re.IGNORECASE,
)
#: rows read at each end of every table by the start-up check (one row group or two: bounded)
CHECK_ROWS = 2048


def _is_lock_error(exc: duckdb.Error) -> bool:
    return "could not set lock" in str(exc).lower()  # not "lock" alone: "block" is in other errors


def _is_damage(exc: duckdb.Error) -> bool:
    return not _is_lock_error(exc) and (
        isinstance(exc, (duckdb.InternalException, duckdb.SerializationException))
        or bool(_DAMAGE.search(str(exc)))
    )


def damaged_message(path: str | Path, exc: BaseException) -> str:
    """One line naming the file and DuckDB's first line about it."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return (
        f"{path}: cannot open as a DuckDB database, the file is damaged ({first}); nothing was changed: "
        'see docs/auditors.md, "A damaged database", for recovering what still reads'
    )


def check_integrity(con: duckdb.DuckDBPyConnection) -> None:
    """Bounded-cost start-up check: read the catalog, count each table, read its first and last rows.

    Reading a block makes DuckDB verify its checksum, so a torn header, a truncated file or bytes
    overwritten near the end (where the agent appends) raise here. The cost does not grow with the
    file: ``count(*)`` comes from row-group metadata and ``rowid >=`` skips to the last row group.
    Damage in the middle of a large table is only found when a query reads that block.
    """
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() "
        "WHERE database_name = current_database() AND NOT temporary ORDER BY schema_name, table_name"
    ).fetchall()
    for schema, table in tables:
        name = f'"{schema.replace(chr(34), chr(34) * 2)}"."{table.replace(chr(34), chr(34) * 2)}"'
        n = con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
        con.execute(f"SELECT * FROM {name} LIMIT {CHECK_ROWS}").fetchall()
        con.execute(f"SELECT * FROM {name} WHERE rowid >= ?", [max(int(n) - CHECK_ROWS, 0)]).fetchall()


def _open_checked(path: str | Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open and check; a locked file raises :class:`DatabaseInUseError`, damage ``duckdb.Error``.

    An existing file is checked through a read-only connection first, so a damaged file is never
    opened for writing (no WAL replay or checkpoint into it): it keeps its bytes.
    """
    if not read_only and str(path) != ":memory:" and Path(path).exists():
        _open_checked(path, True).close()
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as exc:
        if _is_lock_error(exc):
            raise DatabaseInUseError(in_use_message(path, str(exc)), EXIT_USAGE) from None
        raise
    if str(path) == ":memory:":
        return con
    try:
        check_integrity(con)
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.close()
        raise
    return con


def damaged_name(path: Path, now: datetime | None = None) -> Path:
    """``site.duckdb.damaged-20261129T103000Z`` (UTC), with ``-2``, ``-3`` ... if that is taken."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = path.with_name(f"{path.name}.damaged-{stamp}")
    candidate, i = base, 1
    while candidate.exists() or Path(f"{candidate}.wal").exists():
        i += 1
        candidate = base.with_name(f"{base.name}-{i}")
    return candidate


def move_aside(path: str | Path) -> Path:
    """Rename a damaged database (and its ``.wal``, kept next to it so DuckDB still finds it)."""
    src = Path(path)
    dst = damaged_name(src)
    src.rename(dst)
    wal = Path(f"{src}.wal")
    if wal.exists():
        wal.rename(f"{dst}.wal")
    return dst


def connect(path: str | Path, *, read_only: bool = False, recover: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (and create, unless read-only) the site database with the schema in place.

    A file locked by another process raises :class:`DatabaseInUseError` (a one-line ``CliError``,
    exit 2): the one place every command - ``run``, ``demo``, the auditor commands - gets it from.

    Every open runs :func:`check_integrity` (bounded cost). A damaged file raises
    :class:`DatabaseDamagedError` (one line, exit 2) and is left exactly as it was - the auditor
    commands never move evidence. Only the daemon passes ``recover=True``: the damaged file and its
    ``.wal`` are renamed ``<name>.damaged-<UTC stamp>``, one WARNING names both paths, and a new
    database is started so ingest goes on.
    """
    if str(path) != ":memory:" and not read_only:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        con = _open_checked(path, read_only)
    except DatabaseInUseError:
        raise
    except duckdb.Error as exc:
        if not _is_damage(exc):
            raise
        if not recover or read_only or str(path) == ":memory:":
            raise DatabaseDamagedError(damaged_message(path, exc), EXIT_USAGE) from None
        moved = move_aside(path)
        log.warning(
            "damaged database %s (%s) moved to %s; started a new database at %s "
            '(docs/auditors.md, "A damaged database", to recover rows)',
            path,
            (str(exc).strip().splitlines() or [type(exc).__name__])[0],
            moved,
            path,
        )
        con = _open_checked(path, read_only)
    con.execute("SET TimeZone = 'UTC'")
    if not read_only:
        ensure_schema(con)
    return con


def samples_source(con: duckdb.DuckDBPyConnection) -> str:
    """``v_samples`` (live ∪ Parquet archive, agent/tiering.py) where the database has it, else ``samples``.

    Everything that reads raw history (reports, baselines) goes through this, so moving old days
    to the archive changes no figure.
    """
    rows = con.execute("SELECT 1 FROM duckdb_views() WHERE view_name = 'v_samples'").fetchall()
    return "v_samples" if rows else "samples"


def first_row(result: duckdb.DuckDBPyConnection) -> tuple[Any, ...] | None:
    """The first row of an executed query, consuming the whole result.

    duckdb 2.0 keeps a partly fetched result open (``fetchone``), and then refuses some later calls
    on the connection (``register``) with "unfinished result"; fetching everything avoids that.
    """
    rows = result.fetchall()
    return tuple(rows[0]) if rows else None


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """``BEGIN`` ... ``COMMIT``; ``ROLLBACK`` and re-raise on any exception, cancellation included.

    The one way kilnwatch groups statements that must land together (an alert and its outbox row,
    a baseline's savings rows, a consistent export), so a crash or a full disk never leaves half.
    """
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    for stmt in DDL:
        con.execute(stmt)
    con.execute(
        "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [str(SCHEMA_VERSION)],
    )


def insert_samples(con: duckdb.DuckDBPyConnection, site: str, frame: pl.DataFrame) -> int:
    """Append a sample frame (connectors.base.SAMPLE_SCHEMA) in one statement; returns rows written."""
    if frame.height == 0:
        return 0
    con.register("_kw_samples", frame)
    try:
        con.execute(
            "INSERT INTO samples SELECT ts, ?, tag, value, quality FROM _kw_samples",
            [site],
        )
    finally:
        con.unregister("_kw_samples")
    return frame.height


def upsert_assets(con: duckdb.DuckDBPyConnection, site: str, assets: Sequence[Asset]) -> None:
    """Record the configured assets and their roles (auditors join KPIs to them); re-runs update."""
    now = datetime.now(UTC)
    for a in assets:
        con.execute(
            "INSERT INTO assets VALUES (?, ?, ?, ?, ?) ON CONFLICT (site, asset) DO UPDATE SET "
            "type = excluded.type, roles = excluded.roles, updated_at = excluded.updated_at",
            [site, a.id, a.type, json.dumps(a.model_dump(mode="json", exclude_none=True)), now],
        )


def upsert_site(
    con: duckdb.DuckDBPyConnection,
    site: str,
    *,
    currency: str,
    grid_co2_kg_per_kwh: float | None,
    electricity_price_per_kwh: float | None,
) -> None:
    """Record the site's money and grid-CO2 settings (docs/kpis.md §11): ``mv_savings`` rows are
    priced with the values in force when they are written, and auditors see which ones."""
    con.execute(
        "INSERT INTO sites VALUES (?, ?, ?, ?, ?) ON CONFLICT (site) DO UPDATE SET "
        "currency = excluded.currency, grid_co2_kg_per_kwh = excluded.grid_co2_kg_per_kwh, "
        "electricity_price_per_kwh = excluded.electricity_price_per_kwh, updated_at = excluded.updated_at",
        [site, currency, grid_co2_kg_per_kwh, electricity_price_per_kwh, datetime.now(UTC)],
    )


def insert_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> int:
    """Append a frame whose columns are a subset of ``table``'s, by name."""
    if frame.height == 0:
        return 0
    cols = ", ".join(f'"{c}"' for c in frame.columns)
    con.register("_kw_frame", frame)
    try:
        con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _kw_frame")
    finally:
        con.unregister("_kw_frame")
    return frame.height


def query_frame(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> pl.DataFrame:
    """Run a query and return a Polars frame."""
    # duckdb 2.0: a DB-API result has no .pl(); a relation does.
    frame: pl.DataFrame = con.sql(sql, params=params or None).pl()
    return frame
