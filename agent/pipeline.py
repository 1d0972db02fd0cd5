"""The daemon: sources -> bounded queue -> DuckDB + recent window -> rule engine -> outbox/MQTT.

Structured concurrency (docs/architecture.md): one ``asyncio.TaskGroup`` holds a named task per source,
the writer, the evaluator and the MQTT link. The sample queue is bounded; when it is full a poller
waits (backpressure), and because pollers schedule drift-free and skip missed ticks, a stuck disk
shows up as skipped polls in the metrics rather than as unbounded memory.

Sample, KPI and alert writes run on the event-loop thread (one connection, no locking); the rule
tick (tens of milliseconds at 10k tags) runs in a worker thread, and so do the two reads that scan
history - the once-a-minute M&V update and the auditors' snapshot - each on its own cursor (a second
connection to the same database, reading an MVCC snapshot).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from agent import storage
from agent.config import Config
from agent.metrics import AgentMetrics
from agent.storage_guard import StorageGuard, disable_autocheckpoint
from connectors.base import Connector, Quality, empty_samples, now_utc

if TYPE_CHECKING:
    from agent.mqtt import MqttLink
    from agent.mv_savings import Deviation
    from rules.alerts import AlertEvent
    from rules.engine import RuleEngine, TickResult

log = logging.getLogger(__name__)

QUEUE_MAX_FRAMES = 1024
#: Flush early when this many sample rows are pending, whatever flush_every_secs says.
FLUSH_MAX_ROWS = 200_000
#: KPI rows held in memory while the database cannot take them (a day of 1-min rows of a big site).
MAX_HELD_KPI_ROWS = 500_000
#: The maintenance task looks at the wall clock this often (a daily run at agent.maintain_at, UTC) ...
MAINTAIN_CHECK_SECS = 60.0
#: ... and checks the disk budget this often (agent.max_disk_gb, agent.min_free_disk_gb).
BUDGET_CHECK_SECS = 600.0
#: A stop waits this long for an interrupted maintenance call to roll back.
MAINTENANCE_STOP_SECS = 10.0
#: A stop cancels the pollers up to this many times, waiting this long after each (see Agent._until).
STOP_CANCEL_ROUNDS = 20
STOP_CANCEL_WAIT_SECS = 0.5
#: Bound of the shutdown's last rule tick (one ordinary tick's work: tens of ms at 10k tags).
FINAL_EVALUATION_TIMEOUT_SECS = 10.0


@dataclass
class AgentView:
    """What the terminal view and ``once`` show: plain data, updated by the agent's tasks."""

    last_frames: dict[str, pl.DataFrame] = field(default_factory=dict)
    source_up: dict[str, bool] = field(default_factory=dict)
    latest_kpis: dict[str, dict[str, tuple[float | None, str]]] = field(default_factory=dict)
    grades: dict[str, Any] = field(default_factory=dict)
    open_alerts: dict[str, AlertEvent] = field(default_factory=dict)
    recent_events: deque[AlertEvent] = field(default_factory=lambda: deque(maxlen=20))
    samples_written: int = 0
    kpi_rows_written: int = 0
    #: rows dropped (oldest first) while the database could not take them (docs/reliability.md)
    samples_dropped: int = 0
    kpi_rows_dropped: int = 0
    started: float = field(default_factory=time.monotonic)


class Agent:
    """One site's agent. ``await agent.run(stop)`` until ``stop`` is set; everything is flushed on exit."""

    def __init__(
        self,
        cfg: Config,
        *,
        connectors: Sequence[Connector] | None = None,
        con: duckdb.DuckDBPyConnection | None = None,
        metrics: AgentMetrics | None = None,
    ) -> None:
        self.cfg = cfg
        self.site = cfg.agent.site
        self.metrics = metrics or AgentMetrics()
        self.view = AgentView()
        self._own_con = con is None
        self.con = con if con is not None else storage.connect(cfg.agent.db_path)
        if connectors is None:
            from connectors import make_connector

            connectors = [make_connector(s) for s in cfg.sources if s.enabled]
        self.connectors = list(connectors)
        self._queue: asyncio.Queue[tuple[str, pl.DataFrame]] = asyncio.Queue(QUEUE_MAX_FRAMES)
        self._pending: list[pl.DataFrame] = []
        self._pending_rows = 0
        self._window_tags = self._tags_for_rules()
        self._window: list[pl.DataFrame] = []
        self.engine: RuleEngine | None = None
        #: the rule tick running in a worker thread (outlives an evaluator cancelled by the stop)
        self._tick: asyncio.Future[TickResult] | None = None
        self._window_dtype: pl.DataType | None = None
        self.mqtt: MqttLink | None = None
        self._last_savings_update = 0.0
        self._excess_hour: datetime | None = None
        self._next_snapshot = 0.0
        #: rows DuckDB could not take yet (disk full): retried by the writer, agent/storage_guard.py
        self.guard = StorageGuard(cfg.agent.db_path)
        self._held_kpi: list[pl.DataFrame] = []
        self._held_events: list[AlertEvent] = []
        self._held_written = 0
        from agent.clock import ClockStep, ClockWatch

        self.clock = ClockWatch(cfg.agent.clock_step_secs)
        #: a wall-clock step seen since the last tick, and the window frames taken before it
        self._pre_step: tuple[ClockStep, list[pl.DataFrame]] | None = None
        #: the engine was replaced at a step and has not ticked on post-step samples yet
        self._epoch_waiting = False
        from agent.tiering import TierSettings

        self.tiers = TierSettings.from_agent(cfg.agent)
        self._last_maintain: datetime | None = None
        #: archive days deleted for the disk budget since start (MQTT ``status``)
        self._days_deleted = 0
        #: the maintenance call running in a worker thread, and its cursor
        self._maintenance: tuple[asyncio.Future[Any], duckdb.DuckDBPyConnection] | None = None
        self._prepare_db()

    # ---------------------------------------------------------------- setup
    def _tags_for_rules(self) -> set[str]:
        """Only tags that some asset role names are kept in the rule window (memory at 10k tags)."""
        tags: set[str] = set()
        for a in self.cfg.assets:
            tags.update(a.all_tags())
        return tags

    def _prepare_db(self) -> None:
        from agent.outbox import ensure_outbox
        from agent.tiering import create_samples_view, last_maintain, recover
        from agent.views import create_views

        ensure_outbox(self.con)
        disable_autocheckpoint(self.con)  # the writer checkpoints while there is room (storage_guard)
        create_views(self.con, shifts=self.cfg.agent.shifts)
        # a day's move that a crash interrupted is finished before anything reads the archive
        recover(self.con, self.tiers.archive_dir)
        create_samples_view(self.con, self.tiers.archive_dir)
        self._last_maintain = last_maintain(self.con)
        storage.upsert_assets(self.con, self.site, self.cfg.assets)
        a = self.cfg.agent
        storage.upsert_site(
            self.con,
            self.site,
            currency=a.currency,
            grid_co2_kg_per_kwh=a.grid_co2_kg_per_kwh,
            electricity_price_per_kwh=a.electricity_price_per_kwh,
        )

    def _start_engine(self) -> None:
        from agent.outbox import load_open_alerts
        from rules.engine import RuleEngine

        self.engine = RuleEngine(self.cfg.rule_settings())
        self._window_dtype = self.engine.tag_dtype
        self._window.clear()  # frames kept before the engine existed have String tags
        self._seed_steady(self.engine)
        open_alerts = load_open_alerts(self.con, self.site)
        self.engine.restore(open_alerts)
        for ev in open_alerts:
            self.view.open_alerts[ev.alert_id] = ev
        if open_alerts:
            log.info("restored %d open alert(s) from the database", len(open_alerts))

    def _seed_steady(self, engine: RuleEngine) -> None:
        """The stored unsteady minutes of the last 3 h, so ``steady_state_flag``'s "no stop in the last
        2 h" holds across a restart (rules/steady.py)."""
        rows = self.con.execute(
            "SELECT asset, list(epoch_us(ts) + 60000000) FROM kpi WHERE site = ? AND kpi = 'steady_state_flag' "
            "AND window_secs = 60 AND ts >= ? AND value IS DISTINCT FROM 1 GROUP BY asset",
            [self.site, now_utc() - timedelta(hours=3)],
        ).fetchall()
        for asset, ends in rows:
            engine.steady.seed(str(asset), [int(e) for e in ends])

    # ---------------------------------------------------------------- run
    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until ``stop`` is set (or forever); flush samples and close cleanly on the way out."""
        stop = stop or asyncio.Event()
        self._start_engine()
        # Everything made so far (config, rule plans, library modules) lives as long as the daemon:
        # moving it out of the cyclic GC's reach keeps full collections short, which would
        # otherwise add ~35 ms to a rule tick at 10k tags now and then.
        gc.collect()
        gc.freeze()
        if self.cfg.agent.metrics_port:
            self.metrics.serve(self.cfg.agent.metrics_host, self.cfg.agent.metrics_port)
        if self.cfg.mqtt is not None:
            from agent.mqtt import MqttLink

            self.mqtt = MqttLink(
                self.cfg.mqtt,
                site=self.site,
                con=self.con,
                outbox_retention_days=self.cfg.mqtt.outbox_retention_days,
            )
            self.guard.on_condition = self.mqtt
        try:
            try:
                async with asyncio.TaskGroup() as tg:
                    sources = [tg.create_task(self._poll(c), name=f"source:{c.name}") for c in self.connectors]
                    tg.create_task(self._writer(), name="writer")
                    tg.create_task(self._evaluator(), name="rules")
                    tg.create_task(self._maintainer(), name="maintain")
                    if self.mqtt is not None:
                        tg.create_task(self.mqtt.run(), name="mqtt")
                    tg.create_task(self._until(stop, sources), name="stop")
            except* _Stop:
                pass
            # a clean stop (no error, not cancelled): store what the last samples close
            self._drain_queue()
            self._flush()
            await self._final_evaluation()
        finally:
            gc.unfreeze()
            self._drain_queue()
            self._flush()
            if self.guard.fault is not None:
                log.warning(
                    "stopping with the database still failing (%s): %d sample(s), %d KPI row batch(es) and "
                    "%d alert event(s) not stored",
                    self.guard.fault,
                    self._pending_rows,
                    len(self._held_kpi),
                    len(self._held_events),
                )
            await self._stop_maintenance()
            self.metrics.close()
            if self._own_con:
                self.con.close()

    async def _until(self, stop: asyncio.Event, sources: Sequence[asyncio.Task[None]] = ()) -> None:
        """Wait for the stop, end the pollers, then stop the task group.

        Python 3.11's ``asyncio.wait_for`` can swallow a cancellation when the awaited answer arrives
        at the same moment (CPython gh-86296, fixed in 3.12); the protocol libraries wait for every
        answer that way, so one cancellation of a poller can be lost and the task group would wait
        for it for ever. The pollers are therefore cancelled until they have really ended (bounded).
        """
        await stop.wait()
        pending = [t for t in sources if not t.done()]
        for _ in range(STOP_CANCEL_ROUNDS):
            pending = [t for t in sources if not t.done()]
            if not pending:
                break
            for t in pending:
                t.cancel()
            await asyncio.wait(pending, timeout=STOP_CANCEL_WAIT_SECS)
        else:
            log.warning("stopping: %d source task(s) did not end after cancellation", len(pending))
        raise _Stop

    # ---------------------------------------------------------------- sources
    async def _poll(self, conn: Connector) -> None:
        name = conn.name
        stats = getattr(conn, "stats", None)
        m = self.metrics
        async for frame in conn.stream():
            self._note_source_state(name, frame)
            await self._queue.put((name, frame))  # full queue: wait (backpressure, see module doc)
            m.queue_depth.set(self._queue.qsize())
            if stats is not None:
                m.poll_duration.labels(name).observe(stats.last_poll_secs)
                m.source_connected.labels(name).set(1 if stats.connected else 0)
                m.source_requests.labels(name).set(stats.requests)
                m.source_skipped_polls.labels(name).set(stats.skipped_polls)
                m.source_reconnects.labels(name).set(stats.reconnects)
                m.source_quarantined.labels(name).set(stats.quarantined)

    def _note_source_state(self, name: str, frame: pl.DataFrame) -> None:
        """Record a ``source_status`` row when a source goes down or comes back (the connector logs)."""
        if frame.height == 0:
            return
        counts = frame.group_by("quality").len()
        for q, n in counts.iter_rows():
            self.metrics.samples.labels(name, q).inc(n)
        down = bool((frame.get_column("quality") == Quality.COMM_ERROR.value).all())
        if down:
            self.metrics.read_errors.labels(name).inc()
        was_up = self.view.source_up.get(name)
        if was_up is None or was_up == down:
            state = "down" if down else "up"
            if was_up is not None or down:
                try:
                    self.con.execute(
                        "INSERT INTO source_status VALUES (?, ?, ?, ?, ?)",
                        [now_utc(), self.site, name, state, None],
                    )
                except duckdb.Error as exc:  # disk full: the connector's log line still says it
                    log.debug("source_status row for %s not stored: %s", name, exc)
            self.view.source_up[name] = not down

    # ---------------------------------------------------------------- storage
    async def _writer(self) -> None:
        flush_every = self.cfg.agent.flush_every_secs
        next_flush = time.monotonic() + flush_every
        while True:
            timeout = max(0.0, next_flush - time.monotonic())
            try:
                async with asyncio.timeout(timeout):
                    name, frame = await self._queue.get()
                self._accept(name, frame)
            except TimeoutError:
                pass
            if time.monotonic() >= next_flush or self._pending_rows >= FLUSH_MAX_ROWS:
                self._flush()
                next_flush = time.monotonic() + flush_every

    def _accept(self, name: str, frame: pl.DataFrame) -> None:
        self._note_clock()  # before the frame: it was taken after any step seen now
        self.view.last_frames[name] = frame
        self._pending.append(frame)
        self._pending_rows += frame.height
        if self.guard.fault is not None:  # the database is failing: keep the buffer bounded
            self._bound_pending()
        if self._window_tags:
            if self._window_dtype is not None:
                # the engine's Enum: drops other tags and saves the rule tick a string group-by
                tag = pl.col("tag").cast(self._window_dtype, strict=False)
                w = frame.with_columns(tag).filter(pl.col("tag").is_not_null())
            else:
                w = frame.filter(pl.col("tag").is_in(self._window_tags))
            if w.height:
                self._window.append(w)

    def _drain_queue(self) -> None:
        while not self._queue.empty():
            name, frame = self._queue.get_nowait()
            self._accept(name, frame)

    def _flush(self) -> None:
        """Append the pending samples; while DuckDB cannot take them (disk full) they wait in memory,
        bounded by ``max_buffered_samples`` (oldest dropped first), and are retried with backoff."""
        if self._pending and self.guard.may_write():
            t0 = time.perf_counter()
            batch = pl.concat(self._pending, how="vertical") if len(self._pending) > 1 else self._pending[0]
            try:
                n = storage.insert_samples(self.con, self.site, batch)
            except duckdb.Error as exc:
                self._pending = [batch]
                self._pending_rows = batch.height
                self.guard.failed(exc, what="samples")
                self.metrics.storage_ok.set(0)
            else:
                held = self._pending_rows if self.guard.fault is not None else 0
                self._pending.clear()
                self._pending_rows = 0
                self.metrics.flush_duration.observe(time.perf_counter() - t0)
                self.metrics.rows_written.labels("samples").inc(n)
                self.view.samples_written += n
                self._held_written += held
                self._store_held()
        self._bound_pending()
        if self.guard.fault is None:
            self.guard.maybe_checkpoint(self.con)

    def _bound_pending(self) -> None:
        """Drop the oldest pending samples beyond ``max_buffered_samples`` (counted, never alerts)."""
        limit = self.cfg.agent.max_buffered_samples
        while self._pending_rows > limit and self._pending:
            over = self._pending_rows - limit
            first = self._pending[0]
            cut = min(over, first.height)
            if cut == first.height:
                self._pending.pop(0)
            else:
                self._pending[0] = first.slice(cut)
            self._pending_rows -= cut
            self.view.samples_dropped += cut
            self.metrics.rows_dropped.labels("samples").inc(cut)

    def _write_held(self, what: str) -> bool:
        """Write the held alert events (atomically, agent/outbox.py) and KPI rows; False when the
        database refused them (they stay held, the guard schedules the retry)."""
        from agent.outbox import record_events

        try:
            if self._held_events:
                record_events(self.con, self._held_events)
                self._held_events.clear()
                if self.mqtt is not None:
                    self.mqtt.notify()
            while self._held_kpi:
                n = storage.insert_frame(self.con, "kpi", self._held_kpi[0])
                self._held_kpi.pop(0)
                self.metrics.rows_written.labels("kpi").inc(n)
                self.view.kpi_rows_written += n
                if self.guard.fault is not None:
                    self._held_written += n
        except duckdb.Error as exc:
            self.guard.failed(exc, what=what)
            self.metrics.storage_ok.set(0)
            return False
        return True

    def _store_held(self) -> None:
        """Once writes work again: what was held during the fault, then the one line that says the
        fault is over (agent/storage_guard.py)."""
        if not self._write_held("held KPI rows and alerts"):
            return
        dropped = self.view.samples_dropped + self.view.kpi_rows_dropped
        self.guard.succeeded(held_written=self._held_written, dropped=dropped)
        self._held_written = 0
        self.metrics.storage_ok.set(1)

    # ---------------------------------------------------------------- rules
    def window_frame(self, now: datetime) -> pl.DataFrame:
        """The recent samples of rule-relevant tags, compacted into one time-ordered frame."""
        if not self._window:
            return empty_samples()
        frame = pl.concat(self._window, how="vertical") if len(self._window) > 1 else self._window[0]
        cutoff = now - timedelta(seconds=self.cfg.agent.window_secs)
        if frame.height and frame.item(0, "ts") < cutoff:
            frame = frame.filter(pl.col("ts") >= cutoff)
        frame = frame.rechunk()
        self._window = [frame]
        return frame

    async def _evaluator(self) -> None:
        assert self.engine is not None
        period = self.cfg.agent.evaluate_every_secs
        start = time.monotonic()
        k = 1
        while True:
            await asyncio.sleep(max(0.0, start + k * period - time.monotonic()))
            k = int((time.monotonic() - start) // period) + 1  # skip missed ticks, never bunch
            await self.evaluate(now_utc())

    async def evaluate(self, now: datetime) -> None:
        """One rule tick: KPI rows to DuckDB, alert events to the outbox, snapshots to MQTT."""
        assert self.engine is not None
        self._note_clock()
        if self._pre_step is not None:
            await self._close_epoch()
        if not self._epoch_ready(now):
            return
        await self._update_savings()  # before the tick: it feeds the rules' baseline deviations
        result = await self._run_tick(now, final=False)
        self._store(result)
        self.view.latest_kpis = result.latest
        self.view.grades = dict(getattr(result, "grades", {}) or {})
        if self.mqtt is not None:
            if result.events:
                self.mqtt.notify()
            for asset, kpis in result.latest.items():
                self.mqtt.offer_kpis(asset, now, kpis)
            s = self.mqtt.stats
            self.metrics.mqtt_published.set(s.published)
            self.metrics.mqtt_retried.set(s.retried)
            self.metrics.mqtt_backlog.set(s.backlog)
            self.metrics.mqtt_connected.set(1 if s.connected else 0)
        await self._snapshot()

    # ---------------------------------------------------------------- clock steps (agent/clock.py)
    def _note_clock(self) -> None:
        from agent.clock import announce, record

        step = self.clock.check()
        if step is None:
            return
        announce(step)
        self.metrics.clock_steps.inc()
        if self._pre_step is None:
            self._pre_step = (step, self._window)
        else:  # a second step before the tick: its frames still close with the first epoch
            self._pre_step = (self._pre_step[0], self._pre_step[1] + self._window)
        self._window = []
        try:
            record(self.con, self.site, step)
        except duckdb.Error as exc:
            log.warning("clock step not recorded in clock_events: %s", exc)

    def _epoch_ready(self, now: datetime) -> bool:
        """A fresh engine after a step judges nothing before it has a sample at or before ``now``: with
        the default ``clear`` an evaluation without data would resolve the episodes it carried over."""
        if self._epoch_waiting and any(f.height and f.item(0, "ts") <= now for f in self._window):
            self._epoch_waiting = False
        return not self._epoch_waiting

    async def _close_epoch(self) -> None:
        """Close the windows of the samples before a step at the pre-step time, then go on with a
        fresh engine that carries the firing episodes over (none resolved or fired twice)."""
        from rules.engine import RuleEngine

        assert self._pre_step is not None and self.engine is not None
        step, frames = self._pre_step
        self._pre_step = None
        window = pl.concat(frames, how="vertical") if frames else empty_samples()
        self._store(await self._run_tick(step.wall_before, final=True, window=window))
        old = self.engine
        engine = await asyncio.to_thread(RuleEngine, self.cfg.rule_settings())
        engine.restore(old.open_alerts())
        for name, values in old.externals().items():
            engine.set_external(name, values)
        self.engine = engine
        self._epoch_waiting = True

    async def _run_tick(
        self, now: datetime, *, final: bool, window: pl.DataFrame | None = None
    ) -> TickResult:
        """The rule tick on the current window, in a worker thread.

        Shielded: a stop that cancels the evaluator leaves the tick running, and
        :meth:`_final_evaluation` stores its result before ticking again (one tick at a time).
        """
        assert self.engine is not None
        window = self.window_frame(now) if window is None else window
        t0 = time.perf_counter()
        tick = functools.partial(self.engine.tick, window, now, final=final)
        self._tick = asyncio.get_running_loop().run_in_executor(None, tick)
        result = await asyncio.shield(self._tick)
        self._tick = None
        self.metrics.rule_eval_duration.observe(time.perf_counter() - t0)
        return result

    async def _final_evaluation(self) -> None:
        """After a clean stop (queue drained, samples flushed): close the windows that have ended.

        An ordinary tick holds a window back for ``ALLOWED_LATENESS_SECS`` after its end; with the
        sources closed no sample can arrive any more, so one last tick closes every window that
        ended by now (``RuleEngine.tick(final=True)``) and its KPI rows are stored: a one-minute run
        keeps its 1-min KPIs. Its alert events are recorded like any tick's: the tick judges the
        same samples an ordinary tick at this instant would, and the outbox delivers the events
        at the next start (the MQTT link has stopped). Bounded by ``FINAL_EVALUATION_TIMEOUT_SECS``.
        """
        if self.engine is None:
            return
        try:
            async with asyncio.timeout(FINAL_EVALUATION_TIMEOUT_SECS):
                if self._tick is not None:  # a tick the stop interrupted: keep what it computed
                    pending, self._tick = self._tick, None
                    self._store(await pending)
                self._note_clock()
                if self._pre_step is not None:  # a step since the last tick: close before it first
                    await self._close_epoch()
                now = now_utc()
                if not self._epoch_ready(now):
                    return
                result = await self._run_tick(now, final=True)
        except TimeoutError:
            log.warning(
                "final rule evaluation did not finish within %g s: the last KPI windows are not stored",
                FINAL_EVALUATION_TIMEOUT_SECS,
            )
            return
        self._store(result)
        self.view.latest_kpis = result.latest
        self.view.grades = dict(result.grades)

    def _store(self, result: TickResult) -> None:
        """A tick's KPI rows to DuckDB and its alert events to the alert store and outbox.

        While the database cannot take them they are held (KPI rows bounded, oldest dropped; alert
        events never) and written by the writer once it can (:meth:`_store_held`)."""

        if result.kpi_rows.height:
            self._held_kpi.append(result.kpi_rows)
        if result.events:
            self._held_events.extend(result.events)
        if self.guard.fault is None:
            self._write_held("KPI rows and alerts")
        held_rows = sum(f.height for f in self._held_kpi)
        while held_rows > MAX_HELD_KPI_ROWS and len(self._held_kpi) > 1:
            gone = self._held_kpi.pop(0)
            held_rows -= gone.height
            self.view.kpi_rows_dropped += gone.height
            self.metrics.rows_dropped.labels("kpi").inc(gone.height)
        if result.events:
            for ev in result.events:
                self.metrics.alert_events.labels(ev.state).inc()
                self.view.recent_events.appendleft(ev)
                if ev.state == "firing":
                    self.view.open_alerts[ev.alert_id] = ev
                else:
                    self.view.open_alerts.pop(ev.alert_id, None)
                log.warning("alert %s %s %s: %s", ev.state, ev.asset, ev.rule, ev.message)

    async def _update_savings(self) -> None:
        """Keep today's ``mv_savings`` rows and the rules' baseline deviations current (once a minute).

        ``baseline_deviation_pct`` (last hour against each asset's live M&V baseline) goes to the
        rule engine for ``mill.specific_power.above_baseline`` (docs/kpis.md §8 mill inefficiency). The
        queries read an hour of samples per baseline variable, so they run on a second connection in
        a worker thread (MVCC snapshot) instead of stalling the pollers on the event loop.
        """
        if time.monotonic() - self._last_savings_update < 60:
            return
        self._last_savings_update = time.monotonic()
        from agent.mv_savings import excess_kpi_rows, excess_values

        now = now_utc()
        hour = now.replace(minute=0, second=0, microsecond=0)
        close_hour = self._excess_hour is not None and hour > self._excess_hour
        cur = self.con.cursor()
        try:
            deviations = await asyncio.to_thread(_mv_minute, cur, self.site, now)
            # the hour that just ended is stored once as kpi rows (docs/kpis.md §11)
            closed = await asyncio.to_thread(_mv_hour, cur, self.site, hour) if close_hour else {}
        finally:
            cur.close()
        self._excess_hour = hour
        a = self.cfg.agent
        prices = {"price_per_kwh": a.electricity_price_per_kwh, "grid_co2_kg_per_kwh": a.grid_co2_kg_per_kwh}
        if self.engine is not None:
            for name, vals in excess_values(deviations, **prices).items():
                self.engine.set_external(name, vals)
        if closed:
            units = {"excess_energy_kwh_per_h": "kWh/h", "excess_power_cost_per_h": f"{a.currency}/h"}
            units["excess_power_co2_kg_per_h"] = "kg/h"
            rows = excess_kpi_rows(
                excess_values(closed, **prices), self.site, hour - timedelta(hours=1), units
            )
            if rows.height:
                self._held_kpi.append(rows)  # stored with the next tick's rows (held while disk full)

    # ---------------------------------------------------------------- storage tiers
    def maintain_due(self, now: datetime) -> bool:
        """Due when the last run is older than the latest ``maintain_at`` (UTC) at or before ``now``:
        the daily run, and a run missed while the agent was stopped, caught up at start."""
        if self._last_maintain is None:
            return True
        hh, _, mm = self.cfg.agent.maintain_at.partition(":")
        slot = now.replace(hour=int(hh), minute=int(mm), second=0, microsecond=0)
        if slot > now:
            slot -= timedelta(days=1)
        return self._last_maintain < slot

    async def _maintainer(self) -> None:
        """Daily tiering and compaction (agent/tiering.py) and a disk-budget check every 10 minutes,
        on a second connection in a worker thread: polling and rule ticks go on meanwhile."""
        from agent.tiering import enforce_budget, maintain

        budget = self.tiers.max_disk_gb is not None or self.tiers.min_free_disk_gb is not None
        next_budget = 0.0
        while True:
            now = now_utc()
            if self.maintain_due(now):
                self._last_maintain = now  # a failed run is retried the next day, not every minute
                result = await self._in_thread(maintain, self.tiers, now=now)
                if result is not None:
                    self.metrics.archive_days_moved.inc(len(result.days_moved))
                    self._note_deleted(len(result.days_deleted))
                    log.info("storage maintenance: %s", result.summary())
                self._publish_storage()
                next_budget = time.monotonic() + BUDGET_CHECK_SECS
            elif budget and time.monotonic() >= next_budget:
                deleted = await self._in_thread(enforce_budget, self.tiers)
                self._note_deleted(len(deleted or ()))
                self._publish_storage()
                next_budget = time.monotonic() + BUDGET_CHECK_SECS
            await asyncio.sleep(MAINTAIN_CHECK_SECS)

    async def _in_thread(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a storage-maintenance call on its own cursor in a worker thread; failures are logged
        and counted, never fatal (the samples stay in the live file and the run is retried).

        A stop does not wait for a long move: :meth:`_stop_maintenance` interrupts it (the day's
        transaction rolls back, agent/tiering.py) before the connection closes.
        """
        from agent.tiering import TieringError

        cur = self.con.cursor()
        fut = asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, cur, *args, **kwargs))
        self._maintenance = (fut, cur)
        try:
            return await asyncio.shield(fut)
        except (duckdb.Error, OSError, TieringError) as exc:
            self.metrics.maintain_failures.inc()
            log.warning("storage maintenance failed (retried later): %s", exc)
            return None
        except Exception:  # a bug here must not stop polling: the samples simply stay live
            self.metrics.maintain_failures.inc()
            log.exception("storage maintenance failed (retried later)")
            return None
        finally:
            if fut.done():
                self._maintenance = None
                cur.close()

    async def _stop_maintenance(self) -> None:
        if self._maintenance is None:
            return
        fut, cur = self._maintenance
        self._maintenance = None
        if not fut.done():
            log.info("stopping: interrupting storage maintenance (the day being moved stays live)")
            cur.interrupt()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(fut), MAINTENANCE_STOP_SECS)
        cur.close()

    def _note_deleted(self, n: int) -> None:
        if n:
            self.metrics.archive_days_deleted.inc(n)
            self._days_deleted += n

    def _publish_storage(self) -> None:
        from agent.tiering import storage_figures

        figures = storage_figures(self.tiers)
        self.metrics.storage_bytes.labels("database").set(figures["database_bytes"])
        self.metrics.storage_bytes.labels("archive").set(figures["archive_bytes"])
        if self.mqtt is not None:
            self.mqtt.set_storage({**figures, "archive_days_deleted": self._days_deleted})

    async def _snapshot(self) -> None:
        """Write the auditors' snapshot (``agent.snapshot_path``) every ``snapshot_every_secs``.

        Runs on a second connection in a worker thread: the copy reads one consistent MVCC
        snapshot while sampling goes on.
        """
        path = self.cfg.agent.snapshot_path
        if not path or time.monotonic() < self._next_snapshot:
            return
        self._next_snapshot = time.monotonic() + self.cfg.agent.snapshot_every_secs
        from agent.export import snapshot_database

        cur = self.con.cursor()
        try:
            await asyncio.to_thread(snapshot_database, cur, path)
        except (duckdb.Error, OSError) as exc:
            log.warning("database snapshot to %s failed: %s", path, exc)
        finally:
            cur.close()


def _mv_hour(con: duckdb.DuckDBPyConnection, site: str, hour: datetime) -> dict[str, Deviation | None]:
    """Each baseline's deviation over the hour that ended at ``hour`` (stored as hourly kpi rows)."""
    from agent.mv_savings import recent_excesses
    from rules.mv import MVError

    try:
        return recent_excesses(con, site, hour, hours=1.0)
    except (duckdb.Error, MVError) as exc:
        log.warning("M&V hourly excess failed: %s", exc)
        return {}


def _mv_minute(con: duckdb.DuckDBPyConnection, site: str, now: datetime) -> dict[str, Deviation | None]:
    """The daemon's once-a-minute M&V work: live savings rows, then each baseline's last-hour deviation.

    A broken baseline must not stop sampling: failures are logged and give no deviations.
    """
    from agent.mv_savings import recent_excesses, update_savings
    from rules.mv import MVError

    try:
        update_savings(con, site, now)
    except (duckdb.Error, MVError) as exc:
        log.warning("M&V savings update failed: %s", exc)
    try:
        return recent_excesses(con, site, now, hours=1.0)
    except (duckdb.Error, MVError) as exc:
        log.warning("M&V baseline deviation update failed: %s", exc)
        return {}


class _Stop(Exception):
    """Raised inside the task group to stop every task."""
