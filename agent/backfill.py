"""Weeks of simulated plant history in a site database, faster than real time.

The simulator's pure plant model (:class:`simulator.plant.PlantModel`, no sockets) is stepped at the
stored sample interval; every reading is stored in ``samples`` (what the agent would have polled).
KPI rows (1-min, 15-min and hourly windows) and alert episodes come from one vectorised replay of
the rule engine over the whole range (:func:`rules.history.evaluate_history`), so reports,
baselines and the auditor views have realistic content on a fresh machine.

Alerts are written to ``alerts`` directly, not to the MQTT outbox: history is never published.
Episodes still firing at the end of the simulated range are closed at its end, so an agent started
later on the same file does not inherit them. Re-running over the same range replaces its rows.
"""

from __future__ import annotations

import logging
import time
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import polars as pl

from agent import storage
from agent.config import Config, parse_config
from agent.views import create_views
from common.values import to_utc
from rules.alerts import AlertEvent, episodes

if TYPE_CHECKING:
    from simulator.plant import PlantModel

log = logging.getLogger(__name__)

#: Samples are built and stored one simulated day at a time (bounded memory per insert).
CHUNK = timedelta(days=1)


class BackfillError(ValueError):
    """Bad backfill arguments (unknown scenario, config without simulator tags)."""


@dataclass(frozen=True, slots=True)
class BackfillResult:
    start: datetime
    end: datetime
    samples: int
    kpi_rows: int
    alert_events: int
    elapsed_secs: float


def simulator_config(site: str = "plant1") -> Config:
    """The agent config of the bundled simulated plant (assets, roles, rules), ports unused."""
    from simulator.config_gen import agent_config_toml

    text = agent_config_toml(modbus_port=5020, opcua_port=4840, site=site)
    return parse_config(tomllib.loads(text))


def backfill(
    con: duckdb.DuckDBPyConnection,
    *,
    days: float,
    scenario: str = "normal",
    seed: int = 1,
    start: datetime | None = None,
    sample_every_secs: float = 60.0,
    cfg: Config | None = None,
    progress: bool = False,
) -> BackfillResult:
    """Simulate ``days`` of plant history from ``start`` (default: ``days`` before today, UTC).

    ``cfg`` supplies site, assets and rules (default: the simulator's own config); its asset roles
    must name simulator tags. Returns what was written.
    """
    if days <= 0:
        raise BackfillError("days must be positive")
    if sample_every_secs <= 0:
        raise BackfillError("sample_every_secs must be positive")
    t_start = time.perf_counter()
    cfg = cfg or simulator_config()
    start, end = _time_range(start, days)
    model = _plant_model(cfg, scenario, seed, start)
    site = cfg.agent.site
    storage.upsert_assets(con, site, cfg.assets)
    _clear_range(con, site, start, end)
    samples, written = _simulate(con, site, model, start, end, sample_every_secs, progress)
    kpi, events = _replay_rules(cfg, samples, sample_every_secs, end)
    storage.insert_frame(con, "kpi", kpi)
    _store_alerts(con, events, end)
    create_views(con, shifts=cfg.agent.shifts)
    elapsed = time.perf_counter() - t_start
    log.info(
        "backfilled %s .. %s: %d samples, %d KPI rows, %d alert events in %.1f s",
        start,
        end,
        written,
        kpi.height,
        len(events),
        elapsed,
    )
    return BackfillResult(start, end, written, kpi.height, len(events), elapsed)


def _time_range(start: datetime | None, days: float) -> tuple[datetime, datetime]:
    """``[start, end)`` in UTC; without ``start`` the range ends at today's midnight (UTC), so a
    fresh database gets history up to today and a re-run on the same day replaces the same range."""
    if start is None:
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start = today - timedelta(days=days)
    start = to_utc(start)
    return start, start + timedelta(days=days)


def _plant_model(cfg: Config, scenario: str, seed: int, start: datetime) -> PlantModel:
    """The simulated plant, refused before anything is written when it cannot serve ``cfg``: an
    unknown scenario, or asset roles that name none of the simulator's tags (every KPI would be
    empty, and the run would only look successful)."""
    from simulator.plant import PlantModel
    from simulator.scenarios import ScenarioError

    try:
        model = PlantModel(scenario=scenario, seed=seed, start=start)
    except ScenarioError as exc:
        raise BackfillError(str(exc)) from None
    used = {t for a in cfg.assets for tags in a.roles().values() for t in tags}
    if used and not used & set(model.tagmap.names):
        raise BackfillError(
            "the config's asset roles name no simulator tags: backfill needs the simulator's tags"
        )
    return model


def _simulate(
    con: duckdb.DuckDBPyConnection,
    site: str,
    model: PlantModel,
    start: datetime,
    end: datetime,
    sample_every_secs: float,
    progress: bool,
) -> tuple[pl.DataFrame, int]:
    """Step the plant over ``[start, end)`` and store every reading in ``samples``, one simulated day
    (:data:`CHUNK`) per insert so memory per insert stays bounded. Returns all samples as one frame
    (the rule replay needs the whole range) and the number of rows written."""
    from rich.progress import Progress

    from simulator.plant import STATUS_QUALITY, SensorStatus

    names = model.tagmap.names
    quality_of = np.full(max(int(s) for s in STATUS_QUALITY) + 1, "bad", dtype=object)
    for st, q in STATUS_QUALITY.items():
        quality_of[int(st)] = q
    failed = int(SensorStatus.BAD_SENSOR_FAILURE)
    steps_total = round((end - start).total_seconds() / sample_every_secs)
    frames: list[pl.DataFrame] = []
    written = 0
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("simulating", total=steps_total)
        done = 0
        while done < steps_total:
            n = min(steps_total - done, max(1, int(CHUNK.total_seconds() / sample_every_secs)))
            stamps, values, status, reachable = _read_chunk(model, n, sample_every_secs)
            frame = _frame(stamps, names, values, status, reachable, quality_of, failed)
            written += storage.insert_samples(con, site, frame)
            frames.append(frame)
            done += n
            bar.update(task, completed=done)
    samples = pl.concat(frames, how="vertical")
    frames.clear()
    return samples, written


def _read_chunk(
    model: PlantModel, n: int, sample_every_secs: float
) -> tuple[
    list[datetime],
    np.ndarray[Any, np.dtype[np.float64]],
    np.ndarray[Any, np.dtype[np.int8]],
    np.ndarray[Any, np.dtype[np.bool_]],
]:
    """``n`` readings of every tag as the agent would have polled them (value, sensor status, and
    whether the PLC answered at all), advancing the model by one sample interval after each."""
    k = len(model.tagmap.names)
    values = np.empty((n, k))
    status = np.empty((n, k), dtype=np.int8)
    reachable = np.empty(n, dtype=np.bool_)
    stamps: list[datetime] = []
    for i in range(n):
        values[i] = model.vector()  # the reading at model.now, then advance
        status[i] = model.statuses()
        reachable[i] = model.plc_reachable and model.plc_responsive  # dropout or hang
        stamps.append(model.now)
        model.step(sample_every_secs)
    return stamps, values, status, reachable


def _replay_rules(
    cfg: Config, samples: pl.DataFrame, sample_every_secs: float, end: datetime
) -> tuple[pl.DataFrame, list[AlertEvent]]:
    """KPI rows and alert events of the whole range from one vectorised replay of the rule engine.

    KPI windows that close at or after ``end`` are left out: they lack data and belong to the next
    range (a re-run clears ``[start, end)`` only).
    """
    from rules.history import evaluate_history
    from rules.packs import load_rules

    # History is sampled every sample_every_secs: a reading stays fresh for two intervals, or the
    # engine's live staleness limit (default 30 s) would blank every 1-min window.
    stale = max(cfg.agent.stale_after_secs, 2 * sample_every_secs)
    replay_cfg = cfg.model_copy(update={"agent": cfg.agent.model_copy(update={"stale_after_secs": stale})})
    result = evaluate_history(replay_cfg.rule_settings(), samples, load_rules(cfg.rule_settings()))
    return result.kpi_rows.filter(pl.col("ts") < end), result.events


def _frame(
    stamps: list[datetime],
    names: list[str],
    values: np.ndarray[Any, np.dtype[np.float64]],
    status: np.ndarray[Any, np.dtype[np.int8]],
    reachable: np.ndarray[Any, np.dtype[np.bool_]],
    quality_of: np.ndarray[Any, np.dtype[Any]],
    failed: int,
) -> pl.DataFrame:
    """Long sample frame (connectors.base.SAMPLE_SCHEMA) of ``n`` readings of every tag."""
    n, k = values.shape
    quality = quality_of[status].astype(object)
    vals = values.copy()
    vals[status == failed] = np.nan  # a failed sensor has no value (a saturated one keeps its clamp)
    quality[~reachable, :] = "comm_error"  # plc_dropout: the agent would have read nothing
    vals[~reachable, :] = np.nan
    ts = pl.Series("ts", stamps, dtype=pl.Datetime("us", "UTC"))
    return pl.DataFrame(
        {
            "ts": ts.gather(np.repeat(np.arange(n), k)),
            "tag": pl.Series("tag", names * n, dtype=pl.String),
            "value": pl.Series("value", vals.reshape(-1), dtype=pl.Float64, nan_to_null=True),
            "quality": pl.Series("quality", quality.reshape(-1).tolist(), dtype=pl.String),
        }
    )


def _clear_range(con: duckdb.DuckDBPyConnection, site: str, start: datetime, end: datetime) -> None:
    """Re-running a backfill over the same range replaces its rows instead of doubling them."""
    for table, col in (("samples", "ts"), ("kpi", "ts"), ("alerts", "started_at")):
        con.execute(f"DELETE FROM {table} WHERE site = ? AND {col} >= ? AND {col} < ?", [site, start, end])


def _store_alerts(con: duckdb.DuckDBPyConnection, events: list[AlertEvent], end: datetime) -> None:
    """One ``alerts`` row per episode (first event's figures, last event's state)."""
    merged = episodes(events)
    if not merged:
        return
    rows = [
        {
            "alert_id": first.alert_id,
            "site": first.site,
            "asset": first.asset,
            "rule": first.rule,
            "severity": first.severity,
            "state": "resolved",
            "started_at": first.started_at,
            "resolved_at": (last.resolved_at or last.ts) if last.state == "resolved" else end,
            "value": first.value,
            "threshold": first.threshold,
            "unit": first.unit,
            "message": first.message,
        }
        for first, last in merged
    ]
    frame = pl.DataFrame(
        rows,
        schema={
            "alert_id": pl.String,
            "site": pl.String,
            "asset": pl.String,
            "rule": pl.String,
            "severity": pl.String,
            "state": pl.String,
            "started_at": pl.Datetime("us", "UTC"),
            "resolved_at": pl.Datetime("us", "UTC"),
            "value": pl.Float64,
            "threshold": pl.Float64,
            "unit": pl.String,
            "message": pl.String,
        },
    )
    con.register("_kw_alerts", frame)
    try:
        con.execute(
            "INSERT INTO alerts SELECT * FROM _kw_alerts ON CONFLICT (alert_id) DO UPDATE SET "
            "state = excluded.state, resolved_at = excluded.resolved_at"
        )
    finally:
        con.unregister("_kw_alerts")
