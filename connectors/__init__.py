"""Protocol connectors: one module per protocol behind :class:`connectors.base.Connector`.

This package module holds what every connector shares and nothing protocol-specific:

* :func:`make_connector` — the factory the agent calls with a source from the config;
* :class:`ConnectorStats` — the counters the agent exports as Prometheus metrics;
* :class:`PollTicker` — drift-free poll scheduling (tick *k* is at ``start + k * interval``; a late
  poll skips the ticks it missed instead of firing them back to back);
* :data:`SourceConfig` — a ``[[sources]]`` entry of any protocol (each protocol owns its model);
* :class:`SourceHealth` — one log line when a source goes down, one when it recovers;
* :func:`apply_scaling` — ``value = raw * scale + offset`` and the plausible-range check.

Protocol libraries are imported only by ``connectors/modbus*`` (pymodbus) and ``connectors/opcua*``
(asyncua); importing this package imports neither.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Protocol

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from connectors.base import Quality
from connectors.modbus_config import ModbusSource
from connectors.opcua_config import OpcuaSource

if TYPE_CHECKING:
    from connectors.base import Connector

#: One ``[[sources]]`` entry; ``type`` picks the protocol's model.
SourceConfig = Annotated[ModbusSource | OpcuaSource, Field(discriminator="type")]

__all__ = [
    "ConnectorStats",
    "PollTicker",
    "SourceConfig",
    "SourceHealth",
    "apply_scaling",
    "make_connector",
]


def make_connector(source: ModbusSource | OpcuaSource) -> Connector:
    """The connector for one configured source (``[[sources]]`` entry, docs/configuration.md)."""
    if source.type == "modbus":
        from connectors.modbus import ModbusConnector

        return ModbusConnector(source)
    if source.type == "opcua":
        from connectors.opcua import OpcuaConnector

        return OpcuaConnector(source)
    raise ValueError(f"unknown source type {source.type!r}")  # pragma: no cover - config rejects it


@dataclass(slots=True)
class ConnectorStats:
    """Counters of one connector, read by the agent for its metrics (never reset)."""

    #: Protocol requests sent (Modbus reads, OPC UA read / create-monitored-items calls).
    requests: int = 0
    #: Requests or connection attempts that failed (timeouts, exception responses, refused).
    errors: int = 0
    #: Sample rows yielded, whatever their quality.
    samples: int = 0
    #: Wall time of the last poll (connect + reads + decoding), seconds.
    last_poll_secs: float = 0.0
    #: True while the session with the device is up.
    connected: bool = False
    #: Poll ticks skipped because a poll (or the consumer) ran late.
    skipped_polls: int = 0
    #: Successful connections after the first one.
    reconnects: int = 0
    #: Tags currently excluded from reads after a device exception (Modbus only).
    quarantined: int = 0


class PollTicker:
    """Drift-free poll schedule.

    Tick *k* is due at ``start + k * interval``. After a late poll the next tick is the first one
    still in the future, so a slow device or a stalled consumer shows up as skipped ticks (counted
    in :attr:`skipped`) rather than as a burst of back-to-back polls or a slowly drifting phase.
    The clock is injectable so the schedule is tested without sleeping.
    """

    def __init__(self, interval_secs: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if interval_secs <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval_secs
        self._clock = clock
        self.start = clock()
        self._next_k = 0
        self.skipped = 0

    def next_tick(self) -> float:
        """Claim the next tick and return its due time (the first call returns ``start``)."""
        now = self._clock()
        k = self._next_k
        due = self.start + k * self.interval
        if due < now - 1e-9 and k > 0:
            # late: jump to the first tick that is not yet past
            late_k = math.floor((now - self.start) / self.interval)
            if self.start + late_k * self.interval < now - 1e-9:
                late_k += 1
            self.skipped += late_k - k
            k = late_k
            due = self.start + k * self.interval
        self._next_k = k + 1
        return due

    async def wait(self) -> float:
        """Sleep until the next tick; returns its due time."""
        due = self.next_tick()
        await sleep_until(due, self._clock)
        return due


async def sleep_until(deadline: float, clock: Callable[[], float] = time.monotonic) -> None:
    """Sleep until ``clock() >= deadline`` (returns at once when it already is)."""
    delay = deadline - clock()
    if delay > 0:
        await asyncio.sleep(delay)


class SourceHealth:
    """Up/down state of one source; logs exactly one line per transition.

    ``down()`` may be called on every failed poll: only the first after an up (or at start) logs,
    a WARNING with the reason. ``up()`` logs one INFO line when the source recovers.
    """

    def __init__(self, name: str, log: logging.Logger, stats: ConnectorStats) -> None:
        self.name = name
        self._log = log
        self._stats = stats
        self.state: bool | None = None  # None until the first poll decides
        self._down_since = 0.0
        self._failed_polls = 0
        self._ever_up = False

    def down(self, reason: str) -> None:
        self._stats.connected = False
        if self.state is False:
            self._failed_polls += 1
            return
        self.state = False
        self._down_since = time.monotonic()
        self._failed_polls = 1
        self._log.warning("source %s down: %s", self.name, reason)

    def up(self, detail: str = "") -> None:
        self._stats.connected = True
        if self.state is True:
            return
        if self.state is False:
            self._log.info(
                "source %s up again after %.1f s (%d poll(s) without data)%s",
                self.name,
                time.monotonic() - self._down_since,
                self._failed_polls,
                f": {detail}" if detail else "",
            )
        else:
            self._log.info("source %s connected%s", self.name, f": {detail}" if detail else "")
        if self._ever_up:
            self._stats.reconnects += 1
        self._ever_up = True
        self.state = True


def apply_scaling(
    raw: NDArray[np.float64],
    scale: NDArray[np.float64],
    offset: NDArray[np.float64],
    lo: NDArray[np.float64],
    hi: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """``value = raw * scale + offset`` and a mask of values outside ``[lo, hi]`` or not finite.

    ``lo``/``hi`` are ``-inf``/``+inf`` where a tag has no ``min``/``max``. Out-of-range values are
    kept (they help commissioning) but flagged so the caller can store them with quality ``bad``.
    """
    value = raw * scale + offset
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(value) | (value < lo) | (value > hi)
    return value, bad


class ScaledTag(Protocol):
    """What scaling needs from a tag (both ``ModbusTag`` and ``OpcuaTag`` have it)."""

    @property
    def scale(self) -> float: ...
    @property
    def offset(self) -> float: ...
    @property
    def min(self) -> float | None: ...
    @property
    def max(self) -> float | None: ...


def range_arrays(
    tags: Sequence[ScaledTag],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """``scale, offset, lo, hi`` arrays of tags (a missing ``min``/``max`` becomes -inf/+inf)."""
    scale = np.array([t.scale for t in tags], dtype=np.float64)
    offset = np.array([t.offset for t in tags], dtype=np.float64)
    lo = np.array([-np.inf if t.min is None else t.min for t in tags], dtype=np.float64)
    hi = np.array([np.inf if t.max is None else t.max for t in tags], dtype=np.float64)
    return scale, offset, lo, hi


def quality_array(n: int, quality: Quality = Quality.GOOD) -> NDArray[np.object_]:
    """An object array of quality strings (what :func:`connectors.base.sample_frame` accepts)."""
    return np.full(n, quality.value, dtype=object)
