"""Keep the daemon running when DuckDB cannot write: full disk, I/O errors, a WAL that grows unchecked.

A gateway disk fills up (logs, a forgotten copy, the WAL itself). A failed commit must not end the
agent: polling and rule evaluation go on, unwritten rows wait in memory in a bounded buffer (oldest
samples dropped first, counted; alert events never dropped), the write is retried with a growing
delay, the condition is logged once, exported as a metric and shown in the MQTT ``status``, and
everything resumes by itself when space returns (docs/reliability.md).

DuckDB behaviour this relies on (measured with DuckDB 2.0 on a full tmpfs): a commit that cannot
write the WAL fails with a ``TransactionException`` and the connection stays usable; a *checkpoint*
that cannot write the database file is a ``FatalException`` that invalidates the database until it
is reopened. So the daemon turns DuckDB's size-triggered automatic checkpoint off and checkpoints
itself (:meth:`StorageGuard.maybe_checkpoint`) only while the volume has room for it.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Protocol

import duckdb

from common.backoff import Backoff

log = logging.getLogger(__name__)

#: Checkpoint (fold the WAL into the database file) at least this often ...
CHECKPOINT_EVERY_SECS = 300.0
#: ... or as soon as the WAL is this large.
CHECKPOINT_WAL_BYTES = 4 * 1024 * 1024
#: A checkpoint needs about the WAL's size again in the database file; keep this much extra free.
CHECKPOINT_FREE_MARGIN_BYTES = 8 * 1024 * 1024
#: The automatic checkpoint is pushed this far out: the guard's own policy takes its place.
AUTOCHECKPOINT_OFF = "100GB"
#: Retry delays of a failing write grow from ... to ... seconds (jittered, common/backoff.py).
RETRY_MIN_SECS = 1.0
RETRY_MAX_SECS = 60.0


class StorageLostError(RuntimeError):
    """DuckDB invalidated the database (a fatal write error): the daemon must restart to reopen it."""


class _Condition(Protocol):
    def set_condition(self, reason: str | None) -> None: ...


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def is_fatal(exc: BaseException) -> bool:
    """A DuckDB error after which the connection is unusable (the database was invalidated)."""
    return isinstance(exc, duckdb.FatalException) or "invalidated" in str(exc)


class StorageGuard:
    """Fault state of the database writes of one agent, and its checkpoint policy."""

    def __init__(self, db_path: str, *, on_condition: _Condition | None = None) -> None:
        self.db_path = db_path
        self.fault: str | None = None
        self.failures = 0
        self._retry_at = 0.0
        self._backoff = Backoff(RETRY_MIN_SECS, RETRY_MAX_SECS)
        self._last_checkpoint = time.monotonic()
        self.on_condition = on_condition
        self.checkpoints = 0
        self.checkpoints_deferred = 0

    # ------------------------------------------------------------------ writes
    def may_write(self) -> bool:
        """False while a failing write waits for its next retry."""
        return self.fault is None or time.monotonic() >= self._retry_at

    def failed(self, exc: duckdb.Error, *, what: str) -> None:
        """A write failed; raises :class:`StorageLostError` when the database is gone for good."""
        if is_fatal(exc):
            raise StorageLostError(
                f"database {self.db_path} invalidated by a fatal write error ({first_line(exc)}); "
                "restart the agent to reopen it"
            ) from exc
        self.failures += 1
        delay = self._backoff.next_delay()
        self._retry_at = time.monotonic() + delay
        if self.fault is None:
            self.fault = f"storage: {first_line(exc)}"
            log.warning(
                "cannot write %s to %s (%s); holding rows in memory and retrying (next in %.0f s)",
                what,
                self.db_path,
                first_line(exc),
                delay,
            )
            if self.on_condition is not None:
                self.on_condition.set_condition(self.fault)

    def succeeded(self, *, held_written: int, dropped: int) -> None:
        """A write went through; ends a fault (one line saying what was kept and what was lost)."""
        if self.fault is None:
            return
        log.warning(
            "writes to %s succeed again after %d failed attempt(s): %d held row(s) written, %d dropped",
            self.db_path,
            self.failures,
            held_written,
            dropped,
        )
        self.fault = None
        self.failures = 0
        self._backoff.reset()
        if self.on_condition is not None:
            self.on_condition.set_condition(None)

    # ------------------------------------------------------------------ checkpoints
    def wal_bytes(self) -> int:
        wal = Path(self.db_path + ".wal")
        try:
            return wal.stat().st_size
        except OSError:
            return 0

    def maybe_checkpoint(self, con: duckdb.DuckDBPyConnection) -> bool:
        """Checkpoint when due (time or WAL size) and the volume has room for it; True if it ran.

        Without room the checkpoint is deferred (counted) rather than risked: a checkpoint that runs
        out of space invalidates the database, a deferred one only lets the WAL grow.
        """
        if self.db_path == ":memory:" or self.fault is not None:
            return False
        wal = self.wal_bytes()
        due = wal >= CHECKPOINT_WAL_BYTES or (
            wal > 0 and time.monotonic() - self._last_checkpoint >= CHECKPOINT_EVERY_SECS
        )
        if not due:
            return False
        free = free_bytes(self.db_path)
        if free is None:
            return False
        if not room_for_checkpoint(free, wal):
            self.checkpoints_deferred += 1
            if self.checkpoints_deferred == 1:
                log.warning(
                    "checkpoint of %s deferred: %.1f MB free for a %.1f MB WAL",
                    self.db_path,
                    free / 1e6,
                    wal / 1e6,
                )
            return False
        try:
            con.execute("CHECKPOINT")
        except duckdb.Error as exc:
            self.failed(exc, what="a checkpoint")
            return False
        self._last_checkpoint = time.monotonic()
        self.checkpoints += 1
        return True


def free_bytes(db_path: str | Path) -> int | None:
    """Free bytes on the database's volume, or None when it cannot be told."""
    try:
        return shutil.disk_usage(Path(db_path).resolve().parent).free
    except OSError:
        return None


def room_for_checkpoint(free: int, wal: int) -> bool:
    """A checkpoint needs about the WAL's size again in the database file, plus a margin."""
    return free >= 2 * wal + CHECKPOINT_FREE_MARGIN_BYTES


def safe_checkpoint(con: duckdb.DuckDBPyConnection, db_path: str | Path) -> bool:
    """Checkpoint only when the volume has room for it (a checkpoint that runs out of space
    invalidates the database); True if it ran."""
    wal = Path(f"{db_path}.wal")
    free = free_bytes(db_path)
    if free is None or not room_for_checkpoint(free, wal.stat().st_size if wal.exists() else 0):
        return False
    con.execute("CHECKPOINT")
    return True


def disable_autocheckpoint(con: duckdb.DuckDBPyConnection) -> None:
    """Leave checkpoints to :meth:`StorageGuard.maybe_checkpoint` (see the module docstring)."""
    con.execute(f"SET wal_autocheckpoint = '{AUTOCHECKPOINT_OFF}'")
