"""kill -9 during the move of archive days, at each step (agent/tiering.py, docs/storage.md): after
the next run every sample is in exactly one tier - none lost, none twice - and no temporary file is
left. The process really dies by SIGKILL (no cleanup runs); DuckDB then replays its WAL on reopen."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tiering_data import (
    NOW,
    ROWS,
    ROWS_PER_DAY,
    archive_rows,
    assert_each_row_in_one_tier,
    save_original,
    seed,
)

from agent import storage
from agent.tiering import TierSettings, maintain

REPO = Path(__file__).resolve().parents[2]

#: The child runs one maintenance and SIGKILLs itself at the n-th time it reaches ``step``.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import datetime
    from pathlib import Path
    from agent import storage, tiering

    db, archive, step, nth, now = sys.argv[1:6]
    seen = {"n": 0}

    def hook(name):
        if name == step:
            seen["n"] += 1
            if seen["n"] == int(nth):
                os.kill(os.getpid(), signal.SIGKILL)

    tiering.step_hook = hook
    con = storage.connect(db)
    s = tiering.TierSettings(archive_dir=Path(archive), samples_retention_days=3.0, db_path=Path(db))
    tiering.maintain(con, s, now=datetime.fromisoformat(now))
    print("finished without being killed")
    """
)


@pytest.mark.parametrize(
    ("step", "nth"),
    [
        ("copied", 1),  # day file written and synced, transaction not committed
        ("committed", 1),  # rows deleted from the live file, file still under its temporary name
        ("renamed", 1),  # file in place, pending record not yet cleared
        ("copied", 3),  # two days already moved, the third half way
        ("committed", 6),  # the last day, between commit and rename
    ],
)
def test_kill_9_at_each_step_loses_and_duplicates_nothing(tmp_path: Path, step: str, nth: int) -> None:
    db_path, archive = tmp_path / "kw.duckdb", tmp_path / "archive"
    con = storage.connect(db_path)
    seed(con)
    save_original(con, tmp_path / "orig.parquet")
    con.close()

    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(db_path), str(archive), step, str(nth), NOW.isoformat()],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert "finished" not in child.stdout

    con = storage.connect(db_path)
    try:
        # the crash left the tiers inconsistent on disk only in ways the next run repairs
        res = maintain(
            con, TierSettings(archive_dir=archive, samples_retention_days=3.0, db_path=db_path), now=NOW
        )
        assert_each_row_in_one_tier(con, archive, tmp_path / "orig.parquet")
        assert archive_rows(con, archive) == 6 * ROWS_PER_DAY
        assert con.execute("SELECT count(*) FROM v_samples").fetchall() == [(ROWS,)]
        assert con.execute("SELECT count(*) FROM archive_pending").fetchall() == [(0,)]
        assert not list(archive.rglob("*.tmp"))
        if step == "committed":  # the interrupted rename was finished from archive_pending
            assert res.renames_finished == 1
        if step == "copied":  # the unfinished file was removed, its rows were still live
            assert res.orphans_removed == 1
        # and the minute aggregates cover every moved day exactly once
        n_minutes = con.execute("SELECT sum(n) FROM samples_1m WHERE ts < TIMESTAMPTZ '2026-11-26 00:00+00'")
        assert n_minutes.fetchall() == [(6 * ROWS_PER_DAY,)]
    finally:
        con.close()
