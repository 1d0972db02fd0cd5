"""Synthetic raw samples for the storage-tier tests (agent/tiering.py): several UTC days of a few
tags, every 7th sample ``bad``, and the checks that every row sits in exactly one tier."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

#: The tests' "now": 2026-11-29 14:00 UTC, so retention 3 days keeps 2026-11-26 onwards live.
NOW = datetime(2026, 11, 29, 14, 0, tzinfo=UTC)
FIRST = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
DAYS = 10
EVERY_SECS = 60
TAGS = 5
#: rows per day: 1440 minutes x 5 tags
ROWS_PER_DAY = 1440 * TAGS
ROWS = DAYS * ROWS_PER_DAY


def seed(con: duckdb.DuckDBPyConnection, site: str = "plant1") -> int:
    """Insert :data:`ROWS` samples from :data:`FIRST` on; returns the count."""
    n_steps = DAYS * 86400 // EVERY_SECS
    con.execute(
        f"""INSERT INTO samples
        SELECT $first + to_seconds((i // {TAGS}) * {EVERY_SECS}), $site, 'tag' || (i % {TAGS}),
            (i % 97) * 1.5, CASE WHEN i % 7 = 0 THEN 'bad' ELSE 'good' END
        FROM range(0, {n_steps * TAGS}) t(i)""",
        {"first": FIRST, "site": site},
    )
    return n_steps * TAGS


def save_original(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    con.execute(f"COPY samples TO '{path}' (FORMAT parquet)")


def archive_rows(con: duckdb.DuckDBPyConnection, archive: Path) -> int:
    files = list(archive.glob("date=*/*.parquet"))
    if not files:
        return 0
    return int(
        con.execute(f"SELECT count(*) FROM read_parquet('{archive}/date=*/*.parquet')").fetchall()[0][0]
    )


def assert_each_row_in_one_tier(con: duckdb.DuckDBPyConnection, archive: Path, original: Path) -> None:
    """live ∪ archive equals the original rows as a multiset: nothing lost, nothing twice."""
    live = int(con.execute("SELECT count(*) FROM samples").fetchall()[0][0])
    arch = archive_rows(con, archive)
    n_orig = int(con.execute(f"SELECT count(*) FROM read_parquet('{original}')").fetchall()[0][0])
    assert live + arch == n_orig, (live, arch, n_orig)
    union = (
        "SELECT ts, site, tag, value, quality FROM (SELECT * FROM samples UNION ALL BY NAME "
        f"SELECT * FROM read_parquet('{archive}/date=*/*.parquet', allow_empty = true, hive_partitioning = false))"
    )
    orig = f"SELECT * FROM read_parquet('{original}')"
    for a, b in ((union, orig), (orig, union)):
        extra = con.execute(f"SELECT count(*) FROM ({a} EXCEPT ALL {b})").fetchall()[0][0]
        assert extra == 0
