"""Modbus TCP connector: block reads, vectorised decoding, fault isolation, reconnection.

The asyncio shell around :mod:`connectors.modbus_codec`. Per poll it sends the planned block
reads (function codes 1-4 only: this module has no code path that writes), lays the answers out
in one buffer and decodes every tag at once.

Faults, from narrow to wide:

* a value outside the tag's ``min``/``max`` (or NaN/inf): that sample is ``bad``;
* a block answered with *illegal data address/value* (exception 2/3): the block is split in
  halves and read again, recursively, within the same poll, until the offending tags are found.
  Those are *quarantined* (reported ``bad``, not read) and retried every
  ``quarantine_retry_secs``; the rest of the poll stays ``good`` and the plan keeps the smaller
  blocks that worked. *Illegal function* (1) quarantines the whole block (the device lacks
  the table). Other exceptions (busy, device failure) make that block ``bad`` for one poll;
* a block that gets no answer while the device answers other requests ("dead block") is
  ``bad`` for that poll and split in halves for the next one (one level per poll, so a
  silent device range costs at most a few timeouts per poll until its tags are quarantined);
* no answer at all, a refused/lost connection, or a gateway exception (10/11: the unit id behind
  a gateway is dead): every tag ``comm_error``. The connection is closed and re-opened with a
  jittered, capped exponential backoff (``reconnect_min_ms``..``reconnect_max_ms``).

pymodbus's own per-request log messages are muted unless this module logs at DEBUG: the
connector reports state changes itself, one line each (down, up, quarantined, released).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl
from numpy.typing import NDArray
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from common.backoff import Backoff
from connectors import ConnectorStats, PollTicker, SourceHealth
from connectors.base import (
    ConnectError,
    DeviceException,
    Quality,
    ReadTimeout,
    now_utc,
    sample_frame,
)
from connectors.modbus_codec import MAX_BITS, MAX_REGISTERS, CompiledPlan, ReadBlock, block_of, plan_reads
from connectors.modbus_config import ModbusSource, ModbusTag

log = logging.getLogger(__name__)

# Exception codes (Modbus Application Protocol v1.1b3 §7).
ILLEGAL_FUNCTION = 0x01
ILLEGAL_ADDRESS = 0x02
ILLEGAL_VALUE = 0x03
GATEWAY_PATH_UNAVAILABLE = 0x0A
GATEWAY_TARGET_FAILED = 0x0B
_SPLIT_CODES = frozenset({ILLEGAL_ADDRESS, ILLEGAL_VALUE})
_GATEWAY_CODES = frozenset({GATEWAY_PATH_UNAVAILABLE, GATEWAY_TARGET_FAILED})
#: Pseudo exception code for an answer of the wrong length (a device bug): bad for one poll.
_SHORT_ANSWER = -1

Payload = NDArray[np.uint16] | NDArray[np.bool_]
#: What one request gives: data, an exception code, or None for "no valid answer in time".
Answer = Payload | int | None


class _LibraryLogFilter(logging.Filter):
    """Let pymodbus's per-request messages through only when this module logs at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        return log.isEnabledFor(logging.DEBUG)


def _quiet_library_logs() -> None:
    lib = logging.getLogger("pymodbus.logging")
    if not any(isinstance(f, _LibraryLogFilter) for f in lib.filters):
        lib.addFilter(_LibraryLogFilter())


_quiet_library_logs()


class _DeviceDown(Exception):
    """The whole device is unreachable for this poll (maps to ``comm_error`` for every tag)."""


def _new_client(host: str, port: int, timeout_secs: float, name: str) -> AsyncModbusTcpClient:
    # retries=0: one request, one timeout_ms; reconnect_delay=0: reconnection is ours (jittered).
    client = AsyncModbusTcpClient(
        host, port=port, name=name, timeout=timeout_secs, retries=0, reconnect_delay=0
    )
    # pymodbus drops the connection after a few unanswered requests; the connector decides that
    # itself (a dead block must not cost the connection), so lift the library's counter.
    client.set_max_no_responses(1 << 30)
    return client


async def _send_read(client: AsyncModbusTcpClient, table: str, address: int, count: int, unit: int) -> Answer:
    """One read request; library exceptions mapped to an :data:`Answer` or :class:`_DeviceDown`."""
    try:
        if table == "holding":
            rr = await client.read_holding_registers(address, count=count, device_id=unit)
        elif table == "input":
            rr = await client.read_input_registers(address, count=count, device_id=unit)
        elif table == "coil":
            rr = await client.read_coils(address, count=count, device_id=unit)
        elif table == "discrete":
            rr = await client.read_discrete_inputs(address, count=count, device_id=unit)
        else:  # pragma: no cover - the config only allows the four tables
            raise ValueError(f"unknown table {table!r}")
    except ConnectionException as exc:
        raise _DeviceDown(f"connection lost ({exc})") from None
    except ModbusIOException:
        return None  # no answer within timeout_ms, or an answer for another transaction/unit
    except (ModbusException, OSError) as exc:
        raise _DeviceDown(f"{type(exc).__name__}: {exc}") from None
    if rr.isError():
        return int(rr.exception_code)
    if table in ("coil", "discrete"):
        if len(rr.bits) < count:
            return _SHORT_ANSWER
        return np.asarray(rr.bits[:count], dtype=np.bool_)
    if len(rr.registers) != count:
        return _SHORT_ANSWER
    return np.asarray(rr.registers, dtype=np.uint16)


@dataclass(slots=True)
class _Quarantined:
    tag: ModbusTag
    reason: str
    retry_at: float


class ModbusConnector:
    """One Modbus TCP device (``[[sources]] type = "modbus"``)."""

    def __init__(self, source: ModbusSource) -> None:
        self.name = source.name
        self.source = source
        self.stats = ConnectorStats()
        self._tags = list(source.tags)
        self._names = [t.name for t in self._tags]
        self._index = {name: i for i, name in enumerate(self._names)}
        self._interval = source.poll_interval_ms / 1000
        self._timeout = source.timeout_ms / 1000
        self._plan = plan_reads(
            self._tags,
            max_gap=source.max_gap_registers,
            max_registers=source.max_registers_per_request,
            max_bits=source.max_bits_per_request,
        )
        self._compiled = CompiledPlan(self._plan, self._index)
        self._quarantine: dict[str, _Quarantined] = {}
        self._client: AsyncModbusTcpClient | None = None
        self._backoff = Backoff(source.reconnect_min_ms / 1000, source.reconnect_max_ms / 1000)
        self._next_connect_at = 0.0
        self._health = SourceHealth(source.name, log, self.stats)

    # ------------------------------------------------------------------ public API
    @property
    def plan(self) -> tuple[ReadBlock, ...]:
        """The read blocks of the next poll (changes after faults are isolated)."""
        return tuple(self._plan)

    @property
    def quarantined(self) -> dict[str, str]:
        """Quarantined tag names and why."""
        return {name: q.reason for name, q in self._quarantine.items()}

    async def stream(self) -> AsyncGenerator[pl.DataFrame, None]:
        """A sample frame per poll interval, until cancelled (see :class:`connectors.base.Connector`)."""
        loop = asyncio.get_running_loop()
        ticker = PollTicker(self._interval, clock=loop.time)
        try:
            while True:
                await ticker.wait()
                self.stats.skipped_polls = ticker.skipped
                yield await self.poll()
        finally:
            self.close()

    async def read_once(self) -> pl.DataFrame:
        """Connect, read every tag once, disconnect (``kilnwatch once``)."""
        try:
            return await self.poll()
        finally:
            self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def poll(self) -> pl.DataFrame:
        """One poll: (re)connect when due, read every block, decode. Never raises for device faults."""
        t0 = time.perf_counter()
        ts = now_utc()
        try:
            client = await self._connected_client()
            frame = await self._read_all(client, ts)
        except _DeviceDown as exc:
            self._lost(str(exc))
            frame = sample_frame(ts, self._names, np.full(len(self._names), np.nan), Quality.COMM_ERROR)
        self.stats.samples += frame.height
        self.stats.last_poll_secs = time.perf_counter() - t0
        return frame

    # ------------------------------------------------------------------ connection
    async def _connected_client(self) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        if self._client is not None:  # dropped by the peer since the last poll
            self._lost("connection closed by the device")
        now = time.monotonic()
        if now < self._next_connect_at:
            raise _DeviceDown("waiting to reconnect")
        src = self.source
        client = _new_client(src.host, src.port, self._timeout, self.name)
        try:
            ok = await client.connect()
        except (ModbusException, OSError) as exc:
            ok = False
            log.debug("connect to %s:%d failed: %s", src.host, src.port, exc)
        if not ok:
            client.close()
            self.stats.errors += 1
            self._next_connect_at = time.monotonic() + self._backoff.next_delay()
            raise _DeviceDown(f"cannot connect to {src.host}:{src.port}")
        self._client = client
        return client

    def _lost(self, reason: str) -> None:
        """Close the connection (it may hold stale transactions) and schedule a reconnect."""
        if self._client is not None:
            self._client.close()
            self._client = None
            self._next_connect_at = time.monotonic() + self._backoff.next_delay()
        self._health.down(reason)

    # ------------------------------------------------------------------ reading
    async def _request(self, client: AsyncModbusTcpClient, block: ReadBlock) -> Answer:
        self.stats.requests += 1
        try:
            answer = await _send_read(client, block.table, block.start, block.count, self.source.unit_id)
        except _DeviceDown:
            self.stats.errors += 1
            raise
        if not isinstance(answer, np.ndarray):
            self.stats.errors += 1
        return answer

    async def _read_all(self, client: AsyncModbusTcpClient, ts: datetime) -> pl.DataFrame:
        new_plan: list[ReadBlock] = []
        payloads: list[Payload | None] = []
        deferred: list[ReadBlock] = []  # halves of dead blocks, read next poll
        newly_quarantined: list[str] = []
        proof: ReadBlock | None = None  # a block that answered this poll (liveness probe)
        changed = False  # the plan must be recompiled
        dead: list[ReadBlock] = []  # no answer, while the device answered other requests
        unanswered: list[ReadBlock] = []  # no answer, and nothing answered yet this poll
        for block in self._plan:
            answer = await self._request(client, block)
            if answer is None:
                if proof is None:
                    unanswered.append(block)
                    if len(unanswered) > 1:  # two silent requests in a row: the device is gone
                        raise _DeviceDown(f"no answer within {self.source.timeout_ms} ms")
                elif not await self._alive(client, proof):
                    raise _DeviceDown(f"no answer within {self.source.timeout_ms} ms")
                else:
                    # the device answers others: ask once more before taking the block for dead
                    # (a request lost once, or swallowed by a restart, must not split the plan)
                    answer = await self._request(client, block)
                    if answer is None:
                        dead.append(block)
                        continue
                if answer is None:
                    continue
            if proof is None:  # data or an exception response: the device is listening
                proof = block
                dead += unanswered
                unanswered.clear()
            if isinstance(answer, np.ndarray):
                new_plan.append(block)
                payloads.append(answer)
            else:
                changed |= await self._on_exception(
                    client, block, answer, new_plan, payloads, newly_quarantined
                )
        if unanswered:
            raise _DeviceDown(f"no answer within {self.source.timeout_ms} ms")
        for block in dead:  # bisect silent blocks over the next polls (one level per poll)
            changed = True
            if len(block.tags) == 1:
                newly_quarantined += self._quarantine_tags(block.tags, "no answer")
            else:
                deferred.extend(block.split())

        released = await self._retry_quarantined(client, new_plan, payloads)
        self._backoff.reset()
        self._health.up(f"{self.source.host}:{self.source.port} unit {self.source.unit_id}")
        for half in deferred:
            new_plan.append(half)
            payloads.append(None)
        if newly_quarantined:
            log.warning(
                "source %s: %d tag(s) quarantined (%s), retried every %g s: %s",
                self.name,
                len(newly_quarantined),
                ", ".join(sorted({self._quarantine[n].reason for n in newly_quarantined})),
                self.source.quarantine_retry_secs,
                ", ".join(newly_quarantined[:10]) + (" ..." if len(newly_quarantined) > 10 else ""),
            )
        if released:
            log.info(
                "source %s: %d quarantined tag(s) readable again: %s",
                self.name,
                len(released),
                ", ".join(released),
            )
        if changed or released:
            self._plan = new_plan
            self._compiled = CompiledPlan(new_plan, self._index)
        self.stats.quarantined = len(self._quarantine)
        return self._frame(ts, payloads)

    async def _alive(self, client: AsyncModbusTcpClient, proof: ReadBlock) -> bool:
        """After a timeout: does the device still answer a request that was answered this poll?"""
        answer = await self._request(client, proof)
        return answer is not None

    async def _on_exception(
        self,
        client: AsyncModbusTcpClient,
        block: ReadBlock,
        code: int,
        new_plan: list[ReadBlock],
        payloads: list[Payload | None],
        quarantined: list[str],
    ) -> bool:
        """Handle an exception response; True when the plan changed."""
        if code in _GATEWAY_CODES:
            raise _DeviceDown(f"gateway reports unit {self.source.unit_id} unreachable (exception {code})")
        if code == ILLEGAL_FUNCTION:
            quarantined += self._quarantine_tags(block.tags, f"{block.table} table not supported")
            return True
        if code in _SPLIT_CODES:
            for leaf, payload in await self._isolate(client, block, code, quarantined):
                new_plan.append(leaf)
                payloads.append(payload)
            return True
        # busy, device failure, wrong-length answer: bad for this poll only
        new_plan.append(block)
        payloads.append(None)
        return False

    async def _isolate(
        self, client: AsyncModbusTcpClient, block: ReadBlock, code: int, quarantined: list[str]
    ) -> list[tuple[ReadBlock, Payload | None]]:
        """Binary split of a block answered with an address exception, within this poll."""
        if len(block.tags) == 1:
            quarantined += self._quarantine_tags(block.tags, _exception_reason(code))
            return []
        out: list[tuple[ReadBlock, Payload | None]] = []
        for half in block.split():
            answer = await self._request(client, half)
            if isinstance(answer, np.ndarray):
                out.append((half, answer))
            elif answer is None:
                out.append((half, None))  # handled as a dead block from the next poll on
            elif answer in _SPLIT_CODES:
                out.extend(await self._isolate(client, half, answer, quarantined))
            elif answer in _GATEWAY_CODES:
                raise _DeviceDown(
                    f"gateway reports unit {self.source.unit_id} unreachable (exception {answer})"
                )
            elif answer == ILLEGAL_FUNCTION:
                quarantined += self._quarantine_tags(half.tags, f"{half.table} table not supported")
            else:
                out.append((half, None))
        return out

    def _quarantine_tags(self, tags: Sequence[ModbusTag], reason: str) -> list[str]:
        retry_at = time.monotonic() + self.source.quarantine_retry_secs
        for tag in tags:
            self._quarantine[tag.name] = _Quarantined(tag, reason, retry_at)
        return [t.name for t in tags]

    async def _retry_quarantined(
        self, client: AsyncModbusTcpClient, new_plan: list[ReadBlock], payloads: list[Payload | None]
    ) -> list[str]:
        now = time.monotonic()
        released: list[str] = []
        for name, q in list(self._quarantine.items()):
            if q.retry_at > now:
                continue
            block = block_of([q.tag])
            answer = await self._request(client, block)
            if isinstance(answer, np.ndarray):
                del self._quarantine[name]
                new_plan.append(block)
                payloads.append(answer)
                released.append(name)
            else:
                q.retry_at = now + self.source.quarantine_retry_secs
        return released

    def _frame(self, ts: datetime, payloads: Sequence[Payload | None]) -> pl.DataFrame:
        plan = self._compiled
        regs, bits = plan.new_buffers()
        ok = np.zeros(len(payloads), dtype=np.bool_)
        for b, ((is_bits, offset), payload) in enumerate(zip(plan.block_slots(), payloads, strict=True)):
            if payload is None:
                continue
            ok[b] = True
            if is_bits:
                bits[offset : offset + len(payload)] = payload
            else:
                regs[offset : offset + len(payload)] = payload
        values = np.full(len(self._names), np.nan)
        quality = np.full(len(self._names), Quality.BAD.value, dtype=object)
        if len(plan):
            v, q = plan.decode(regs, bits, ok)
            values[plan.positions] = v
            quality[plan.positions] = q
        return sample_frame(ts, self._names, values, quality)


def _exception_reason(code: int) -> str:
    return {ILLEGAL_ADDRESS: "illegal data address", ILLEGAL_VALUE: "illegal data value"}.get(
        code, f"exception {code}"
    )


# ---------------------------------------------------------------------- one-off reads (probe)
async def read_range(
    host: str,
    port: int,
    *,
    unit: int,
    table: str,
    start: int,
    count: int,
    timeout_secs: float = 2.0,
) -> list[int] | list[bool]:
    """Read ``count`` addresses of ``table`` from ``start`` in as many requests as needed.

    For ``kilnwatch probe``: raises :class:`ConnectError`, :class:`ReadTimeout` or
    :class:`DeviceException` (with the Modbus exception code) instead of returning bad data.
    """
    if count < 1 or start < 0 or start + count > 65536:
        raise ValueError("address range outside 0..65535")
    client = _new_client(host, port, timeout_secs, "probe")
    try:
        try:
            ok = await client.connect()
        except (ModbusException, OSError):
            ok = False
        if not ok:
            raise ConnectError(f"cannot connect to {host}:{port}")
        step = MAX_BITS if table in ("coil", "discrete") else MAX_REGISTERS
        out: list[int] | list[bool] = []
        for addr in range(start, start + count, step):
            n = min(step, start + count - addr)
            try:
                answer = await _send_read(client, table, addr, n, unit)
            except _DeviceDown as exc:
                raise ConnectError(str(exc)) from None
            if answer is None:
                raise ReadTimeout(f"no answer from {host}:{port} unit {unit} within {timeout_secs:g} s")
            if isinstance(answer, int):
                raise DeviceException(
                    f"{table} {addr}..{addr + n - 1}: {_exception_reason(answer)}", code=answer
                )
            out.extend(answer.tolist())
        return out
    finally:
        client.close()


__all__ = ["ModbusConnector", "read_range"]
