"""What every connector produces, and the small exception tree protocol errors are mapped to.

A poll yields one *sample frame*: a Polars DataFrame with :data:`SAMPLE_SCHEMA`. Frames instead of
per-sample objects keep the agent's CPU per sample near the bare protocol read (issue: 10k tags
at 1 Hz in <= 10 % of a core); the pipeline concatenates them and appends them to DuckDB as is.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from common.models import StrictModel


class SourceBase(StrictModel):
    """Keys every ``[[sources]]`` entry has, whatever its protocol."""

    #: Unique name; appears in logs, metrics and the ``source_status`` table.
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    #: Poll period (Modbus, OPC UA poll mode) or requested publishing interval (OPC UA subscribe).
    poll_interval_ms: int = Field(default=1000, ge=10)
    #: One request (or connection attempt) taking longer than this is a communication error.
    timeout_ms: int = Field(default=1000, ge=10)
    #: Reconnect delays grow from min to max (jittered, common/backoff.py).
    reconnect_min_ms: int = Field(default=500, ge=10)
    #: Upper bound of the reconnect delay during a long outage.
    reconnect_max_ms: int = Field(default=30_000, ge=10)
    #: A disabled source stays in the file but is not polled.
    enabled: bool = True

    @model_validator(mode="after")
    def _reconnect_range(self) -> SourceBase:
        if self.reconnect_min_ms > self.reconnect_max_ms:
            raise ValueError(
                f"reconnect_min_ms {self.reconnect_min_ms} is above reconnect_max_ms {self.reconnect_max_ms}"
            )
        return self


class Quality(enum.StrEnum):
    """Quality flag stored with every sample (docs/auditors.md)."""

    GOOD = "good"
    STALE = "stale"
    BAD = "bad"
    COMM_ERROR = "comm_error"


QUALITY_DTYPE = pl.Enum([q.value for q in Quality])

SAMPLE_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Datetime("us", "UTC"),
    "tag": pl.String(),
    "value": pl.Float64(),
    "quality": pl.String(),
}


def now_utc() -> datetime:
    return datetime.now(UTC)


def sample_frame(
    ts: datetime | Sequence[datetime],
    tags: Sequence[str],
    values: Sequence[float | None] | np.ndarray,
    quality: Quality | Sequence[str] | np.ndarray,
) -> pl.DataFrame:
    """Build a sample frame; ``ts``/``quality`` may be one value for the whole poll.

    Non-finite values are stored as null with quality ``bad`` so that NaN/inf from a PLC
    can never poison a KPI.
    """
    n = len(tags)
    vals = np.asarray(values, dtype=np.float64) if n else np.empty(0, dtype=np.float64)
    if isinstance(quality, Quality):
        q = np.full(n, quality.value, dtype=object)
    else:
        q = np.asarray(quality, dtype=object).copy()
    finite = np.isfinite(vals)
    q[~finite & (q == Quality.GOOD.value)] = Quality.BAD.value
    vals = np.where(finite, vals, np.nan)
    if isinstance(ts, datetime):
        ts_col = pl.Series("ts", [ts], dtype=SAMPLE_SCHEMA["ts"]).extend_constant(ts, n - 1) if n else None
    else:
        ts_col = pl.Series("ts", list(ts), dtype=SAMPLE_SCHEMA["ts"])
    frame = pl.DataFrame(
        {
            "ts": ts_col if ts_col is not None else pl.Series("ts", [], dtype=SAMPLE_SCHEMA["ts"]),
            "tag": pl.Series("tag", list(tags), dtype=pl.String),
            "value": pl.Series("value", vals, dtype=pl.Float64, nan_to_null=True),
            "quality": pl.Series("quality", q.tolist(), dtype=pl.String),
        }
    )
    return frame


def empty_samples() -> pl.DataFrame:
    return pl.DataFrame(schema=SAMPLE_SCHEMA)


class ConnectorError(Exception):
    """Base of the project's own protocol errors (library exceptions are mapped at the boundary)."""


class ConnectError(ConnectorError):
    """The device could not be reached or the session could not be established."""


class ReadTimeout(ConnectorError):
    """A request got no answer within ``timeout_ms``."""


class DeviceException(ConnectorError):
    """The device answered with an exception (illegal address, bad node id, ...)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class Connector(Protocol):
    """One source (a PLC, an OPC UA server) behind a protocol library.

    ``stream()`` runs until cancelled, yielding a sample frame per poll or per batch of
    subscription notifications. It owns reconnection: when the device is unreachable it yields a
    frame with every tag ``comm_error`` (once per poll interval) and logs one line when the source
    goes down and one when it recovers. It never raises for device faults; cancelling the
    iteration closes the connection.
    """

    name: str

    def stream(self) -> AsyncIterator[pl.DataFrame]: ...

    async def read_once(self) -> pl.DataFrame:
        """Connect, read every tag once, disconnect (``kilnwatch once``)."""
        ...
