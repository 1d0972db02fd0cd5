"""The live rule engine: incremental KPI windows and alert events, one ``tick`` at a time.

``RuleEngine.tick(window, now)`` is what the agent calls every ``evaluate_every_secs``. It reads only
the rows of ``window`` that are new since the previous tick (binary search on the time-ordered
``ts``), folds them into per-minute tag statistics, and from those emits each 1-min, 15-min and
hourly KPI window once it has closed. Rules are evaluated on the current values (the raw samples
of the last ``RuleSettings.current_window_secs``, default 60 s) or, with ``window = "60m"``, on KPIs
over the rolling window. Nothing here reads a clock: the result is a pure function of the frames and
times passed in.

This module owns the per-tick state (minute ledger, running window sums, alert state per rule and
asset) and nothing else: the rules come from rules/packs.py, already parsed and checked, and
rules/history.py replays the same compiled rules (``_groups``) and state machine (``_step``) over
stored samples in one vectorised pass, so a backfill fires exactly as the live engine would.
"""

from __future__ import annotations

import logging
import math
import operator
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import polars as pl

from common.values import finite
from rules import constants as C
from rules.alerts import AlertEvent
from rules.asset_model import AssetModel
from rules.assets import RuleSettings
from rules.catalogue import EXTERNAL, empty_kpi_rows, kpi_column
from rules.dense import DenseStats
from rules.expr import to_polars
from rules.grades import AssetGrades, grade
from rules.kpi import to_us
from rules.packs import Rule, load_rules, render_message
from rules.state import AlertTracker, Observation, Phase, Transition
from rules.steady import SteadyTracker

__all__ = ["RuleEngine", "TickResult", "from_us", "suppress_expr"]

log = logging.getLogger(__name__)

US = 1_000_000
MINUTE_US = 60 * US
#: rows of a tick's new samples counted at a time (bounds the NumPy temporaries)
_INGEST_PIECE_ROWS = 2_000_000


@dataclass(frozen=True, slots=True)
class TickResult:
    """What one tick produced (see :meth:`RuleEngine.tick`)."""

    #: KPI rows of windows that closed since the previous tick (docs/auditors.md ``kpi`` + good_fraction, reason).
    kpi_rows: pl.DataFrame
    #: asset -> kpi -> (value, unit): current 1-min values for MQTT and the terminal.
    latest: dict[str, dict[str, tuple[float | None, str]]]
    #: Alert transitions (firing / resolved), in a deterministic order.
    events: list[AlertEvent]
    #: GB 16780-2021 grades per kiln and cement mill (last hourly window, else current values).
    grades: dict[str, AssetGrades] = field(default_factory=dict)


@dataclass(frozen=True)
class _Compiled:
    rule: Rule
    index: int
    assets: tuple[str, ...]
    exprs: tuple[pl.Expr, ...]
    #: row (config order) of each asset in ``assets``
    rows: np.ndarray[Any, np.dtype[np.intp]]


class RuleEngine:
    """Incremental KPI windows and alert state for one site (see the module docstring)."""

    def __init__(
        self, settings: RuleSettings, rules: list[Rule] | None = None, *, model: AssetModel | None = None
    ) -> None:
        self.settings = settings
        self.site = settings.site
        self.model = AssetModel.build(settings) if model is None else model
        self.rules = load_rules(settings) if rules is None else [r for r in rules if r.enabled]
        self.tracker = AlertTracker(self.site)
        #: the window's ``tag`` type: dictionary codes that are the model's dense tag index
        self._tag_enum = self.model.tag_enum
        self._stale_us = int(settings.stale_after_secs * US)
        self._lateness_us = int(C.ALLOWED_LATENESS_SECS * US)
        self._disorder_us = int(C.MAX_DISORDER_SECS * US)
        #: current values (and rules without ``window``) are over the raw samples of [now - this, now)
        self._current_secs = int(settings.current_window_secs)
        #: minute start -> that minute's statistics per role tag (one-row dense arrays)
        self._ledger: dict[int, DenseStats] = {}
        #: window size -> window start -> running statistics of its closed minutes
        self._acc: dict[int, dict[int, DenseStats]] = {}
        self._n_tags = len(self._tag_enum.categories)
        self._watermark: int | None = None
        self._next_start: dict[int, int] = {}
        self._open: dict[tuple[str, str], AlertEvent] = {}
        self._orphans: list[AlertEvent] = []
        self._hourly: dict[str, dict[str, float | None]] = {}
        self._external: dict[str, dict[str, float]] = {}
        self.steady = SteadyTracker()
        self._groups: dict[int | None, list[_Compiled]] = {}
        #: names that are columns of the evaluation frames (messages may show any of them)
        self._columns = (
            frozenset().union(*self.model.available.values()) if self.model.available else frozenset()
        )
        self._asset_ids = [a.id for a in self.model.assets]
        row_of = {a: i for i, a in enumerate(self._asset_ids)}
        #: rows of the (rule, asset) pairs that are pending or firing, per rule id
        self._active: dict[str, set[int]] = {}
        for i, rule in enumerate(self.rules):
            assets: list[str] = []
            skipped: list[str] = []
            missing: set[str] = set()
            for a in self.model.assets:
                if not rule.applies_to(a.id, a.type):
                    continue
                lacks = rule.names - self.model.available[a.id]
                if lacks:
                    skipped.append(a.id)
                    missing |= lacks
                    continue
                assets.append(a.id)
            if skipped:
                shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
                log.info(
                    "rule %s not evaluated on %s: %s not configured",
                    rule.id,
                    shown,
                    ", ".join(sorted(missing)),
                )
            if not assets:
                continue
            w = rule.window_secs if rule.window_secs not in (None, self._current_secs) else None
            rows = np.asarray([row_of[a] for a in assets], dtype=np.intp)
            self._groups.setdefault(w, []).append(
                _Compiled(rule, i, tuple(assets), _rule_exprs(rule, i, self._columns), rows)
            )
        self._suppress_by_index = {
            c.index: suppress_expr(c.rule, c.index) for cs in self._groups.values() for c in cs
        }
        self._max_rule_window_us = max((w or 0 for w in self._groups), default=0) * US
        self._latest_cols = sorted(
            {kpi_column(s.name) for specs in self.model.kpis_by_asset.values() for s in specs}
        )
        self._grade_cache: dict[str, AssetGrades] = {}
        col_index = {c: i for i, c in enumerate(self._latest_cols)}
        self._latest_pickers: list[
            tuple[str, int, tuple[str, ...], Callable[[tuple[Any, ...]], tuple[Any, ...]], tuple[str, ...]]
        ] = []
        for row, asset in enumerate(self._asset_ids):
            specs = self.model.kpis_by_asset.get(asset, ())
            if specs:
                idx = [col_index[kpi_column(s.name)] for s in specs]
                self._latest_pickers.append(
                    (asset, row, tuple(s.name for s in specs), _picker(idx), tuple(s.unit for s in specs))
                )
        self._rolling: dict[int, _Rolling] = {
            w: _Rolling(w) for w in self._groups if w is not None and w > C.RAW_WINDOW_MAX_SECS
        }

    # -------------------------------------------------------------- restart
    def restore(self, open_alerts: list[AlertEvent]) -> None:
        """Alerts stored as firing before a restart: their episodes continue (never fired twice).

        An open alert whose rule or asset no longer exists is resolved on the next tick.
        """
        active = {(c.rule.id, a) for cs in self._groups.values() for c in cs for a in c.assets}
        for ev in open_alerts:
            if ev.state != "firing":
                continue
            key = (ev.rule, ev.asset)
            if key in active:
                self.tracker.restore(ev.rule, ev.asset, ev.alert_id, ev.started_at)
                self._active.setdefault(ev.rule, set()).add(self._asset_ids.index(ev.asset))
                self._open[key] = ev
            else:
                self._orphans.append(ev)

    def set_external(self, name: str, values: Mapping[str, float | None]) -> None:
        """Values from outside the sample stream for the next ticks, e.g. ``baseline_deviation_pct``.

        They replace the previous ones as a whole: an asset left out (or None, or not finite) reads
        NULL, so a rule on it goes quiet rather than acting on a figure that is no longer current.
        """
        if name not in EXTERNAL:
            raise ValueError(f"{name!r} is not an external name (known: {', '.join(EXTERNAL)})")
        known = set(self._asset_ids)
        self._external[name] = {
            a: float(v) for a, v in values.items() if a in known and v is not None and math.isfinite(v)
        }

    def externals(self) -> dict[str, dict[str, float]]:
        """The values given with :meth:`set_external`, to hand to an engine that replaces this one."""
        return {name: dict(vals) for name, vals in self._external.items()}

    def open_alerts(self) -> list[AlertEvent]:
        """The firing episodes, as their latest firing event (what an outbox would restore)."""
        return [self._open[k] for k in sorted(self._open)]

    # -------------------------------------------------------------- tick
    def tick(self, window: pl.DataFrame, now: datetime, *, final: bool = False) -> TickResult:
        """Evaluate at ``now``; ``window`` holds recent samples (SAMPLE_SCHEMA), time-ordered.

        Rows may be out of order by up to ``MAX_DISORDER_SECS`` (several sources); a row that
        arrives more than ``ALLOWED_LATENESS_SECS`` after its timestamp misses the KPI windows.

        ``final``: no sample will come any more (the agent stops cleanly, its sources are closed and
        their last samples are in ``window``): every window that ended by ``now`` is closed without
        waiting out the lateness grace. Rules are evaluated as in any tick.
        """
        now_us = to_us(now)
        window = self.normalise(window)
        ts = window.get_column("ts")
        self._ingest(window, ts, now_us - (0 if final else self._lateness_us), now_us)
        kpi_rows = self.steady.apply(self._close_windows())  # the flag's 2-h memory (rules/steady.py)
        self._update_rolling()
        self._prune()
        frames = self._evaluation_frames(window, ts, now_us)
        latest = self._latest(frames[None])
        events = self._evaluate_rules(frames, now)
        if kpi_rows.height or not self._grade_cache:  # grades move at most once a minute
            self._grade_cache = self._grades(latest)
        return TickResult(kpi_rows=kpi_rows, latest=latest, events=events, grades=dict(self._grade_cache))

    @property
    def tag_dtype(self) -> pl.Enum:
        """The ``tag`` type a window should have: handing it saves a cast per tick (the agent does)."""
        return self._tag_enum

    def normalise(self, window: pl.DataFrame) -> pl.DataFrame:
        """``window`` with ``tag`` as :attr:`tag_dtype`; rows of tags no role uses are dropped.

        Grouping by dictionary codes is cheaper than by strings, and the codes index the dense
        per-tag arrays directly (no join).
        """
        return self.model.with_tag_enum(window)

    def _slice_from(self, window: pl.DataFrame, ts: pl.Series, start_us: int) -> pl.DataFrame:
        """Rows from the first one at or after ``start_us`` minus the disorder allowance (binary search)."""
        if window.height == 0:
            return window
        at = from_us(start_us - self._disorder_us)
        idx = int(ts.search_sorted(at, side="left"))  # type: ignore[arg-type]
        return window.slice(idx)

    def _ingest(self, window: pl.DataFrame, ts: pl.Series, wm_new: int, now_us: int) -> None:
        """Fold rows with ``ts`` in [previous watermark, new watermark) into per-minute statistics.

        The first tick starts the KPI windows at the oldest sample it is given (or at ``now``).
        """
        old = self._watermark
        if old is not None and wm_new <= old:
            return
        if old is None:
            first = ts.min() if window.height else None
            first_us = to_us(first) if isinstance(first, datetime) else now_us
            for w in C.KPI_WINDOWS_SECS:
                wus = w * US
                self._next_start[w] = first_us // wus * wus
            slab = window.filter(pl.col("ts") < from_us(wm_new))
        else:
            slab = self._slice_from(window, ts, old).filter(
                (pl.col("ts") >= from_us(old)) & (pl.col("ts") < from_us(wm_new))
            )
        self._watermark = wm_new
        if slab.height == 0:
            return
        # statistics add up, so a big slab (a first tick handed an hour of history) is folded in
        # pieces: the NumPy temporaries stay bounded (~100 MB per 2 M rows)
        for piece in slab.iter_slices(_INGEST_PIECE_ROWS):
            minutes = self.model.binned_stats(piece, 60)
            for i, m in enumerate(minutes.windows.tolist()):
                prev = self._ledger.get(m)
                part = minutes.row(i)
                self._ledger[m] = part if prev is None else prev.merged(part)

    def _close_windows(self) -> pl.DataFrame:
        """KPI rows of every 1-min, 15-min and hourly window that closed since the previous tick.

        All windows closing at this tick are evaluated together (one Polars plan); 15-min and
        hourly statistics come from running sums fed as each minute closes (no re-read of an hour).
        """
        wm = self._watermark
        assert wm is not None
        closing: list[tuple[int, int]] = []  # (window_secs, start)
        for w in C.KPI_WINDOWS_SECS:
            wus = w * US
            start = self._next_start[w]
            starts = list(range(start, wm - wus + 1, wus)) if start + wus <= wm else []
            if starts:
                self._next_start[w] = starts[-1] + wus
                closing += [(w, s) for s in starts]
        if not closing:
            return empty_kpi_rows()
        self._accumulate([s for w, s in closing if w == 60])
        parts = []
        for label, (w, s) in enumerate(closing):
            stats = self._ledger.get(s) if w == 60 else self._acc[w].pop(s, None)
            parts.append((stats or DenseStats.zeros(self._n_tags)).labelled(label))
        frame = self.model.evaluate(DenseStats.stack(parts, range(len(closing))))
        frame = frame.with_columns(
            pl.col("window").alias("_label"),
            pl.col("window")
            .replace_strict(list(range(len(closing))), [s for _, s in closing], return_dtype=pl.Int64)
            .alias("window"),
        )
        out: list[pl.DataFrame] = []
        for w in C.KPI_WINDOWS_SECS:
            labels = [i for i, (ww, _) in enumerate(closing) if ww == w]
            if not labels:
                continue
            sub = frame.filter(pl.col("_label").is_in(labels))
            out.append(self.model.kpi_rows(sub, w))
            if w == 3600:
                self._remember_hourly(sub.filter(pl.col("_label") == labels[-1]))
        return pl.concat(out, how="vertical") if len(out) > 1 else out[0]

    def _accumulate(self, minutes: list[int]) -> None:
        """Add closed minutes to the running statistics of their 15-min and hourly windows."""
        for w in C.KPI_WINDOWS_SECS:
            if w == 60:
                continue
            wus = w * US
            acc = self._acc.setdefault(w, {})
            for m in minutes:
                if m in self._ledger:
                    start = m // wus * wus
                    prev = acc.get(start)
                    acc[start] = self._ledger[m] if prev is None else prev.merged(self._ledger[m])

    def _update_rolling(self) -> None:
        """Keep each long rule window's sum over its closed minutes: add new minutes, drop old ones.

        Sums and counts are additive, so a tick costs two small merges instead of re-reading an
        hour of minutes. Rebuilt from the ledger every hour (no float drift) or after a gap.
        """
        wm = self._watermark
        assert wm is not None
        open_minute = wm // MINUTE_US * MINUTE_US
        for r in self._rolling.values():
            # whole minutes inside the last ``secs`` (the open minute is added at evaluation)
            start = -((r.secs * US - wm) // MINUTE_US) * MINUTE_US
            drop = [m for m in r.minutes if m < start]
            rebuild = (
                r.closed is None
                or open_minute // 3_600_000_000 != r.upto // 3_600_000_000
                or any(m not in self._ledger for m in drop)
            )
            closed = DenseStats.zeros(self._n_tags)
            if rebuild:
                r.minutes = deque(m for m in sorted(self._ledger) if start <= m < open_minute)
                for m in r.minutes:
                    closed = closed.merged(self._ledger[m])
            else:
                add = [m for m in sorted(self._ledger) if max(r.upto, start) <= m < open_minute]
                r.minutes = deque([*(m for m in r.minutes if m >= start), *add])
                closed = cast(DenseStats, r.closed)
                for m in add:
                    closed = closed.merged(self._ledger[m])
                for m in drop:
                    closed = closed.counts_minus(self._ledger[m])
            r.upto = open_minute
            r.closed = closed.counts_only()  # staleness comes from the recent minutes at evaluation

    def _prune(self) -> None:
        wm = self._watermark
        assert wm is not None
        keep_from = min(
            min(self._next_start.values()),
            (wm - self._max_rule_window_us) // MINUTE_US * MINUTE_US - MINUTE_US,
        )
        for m in [m for m in self._ledger if m < keep_from]:
            del self._ledger[m]

    def _evaluation_frames(
        self, window: pl.DataFrame, ts: pl.Series, now_us: int
    ) -> dict[int | None, pl.DataFrame]:
        """Signals and KPIs of the current window and of each rule window, in one evaluation.

        Label 0 is the current window: raw samples of [now - current_window_secs, now), whatever its
        length (the agent keeps at least that many raw samples, agent/config.py). A rule window up to
        ``RAW_WINDOW_MAX_SECS`` is read from raw samples too; a longer one is its rolling sum of
        closed minutes plus the open minute. A tag without a good sample in the last
        ``stale_after_secs`` counts as having no good data in every one of them.
        """
        wm = self._watermark
        assert wm is not None
        labels: dict[int | None, int] = {None: 0}
        for i, gw in enumerate(sorted(k for k in self._groups if k is not None), start=1):
            labels[gw] = i
        raw: dict[int, DenseStats] = {}
        rolled: dict[int, DenseStats] = {}
        longest_raw = max([self._current_secs, *(w for w in labels if w and w <= C.RAW_WINDOW_MAX_SECS)])
        tail = self._slice_from(window, ts, now_us - longest_raw * US)
        open_minute = wm // MINUTE_US * MINUTE_US
        recent = [m for m in self._ledger if m + MINUTE_US > wm - self._stale_us]
        for w, label in labels.items():
            secs = w or self._current_secs
            if w is None or secs <= C.RAW_WINDOW_MAX_SECS:
                lo = now_us - secs * US
                rows = tail.filter((pl.col("ts") >= from_us(lo)) & (pl.col("ts") < from_us(now_us)))
                raw[label] = self.model.window_stats(rows, label)
                continue
            r = self._rolling[secs]
            st = r.closed if r.closed is not None else DenseStats.zeros(self._n_tags)
            if open_minute in self._ledger:
                st = st.merged(self._ledger[open_minute])
            for m in recent:
                if m != open_minute:
                    st = st.with_last_good(self._ledger[m])
            rolled[label] = st.labelled(label)
        order = sorted(labels.values())
        stale = [(now_us if label in raw else wm) - self._stale_us for label in order]
        dense = DenseStats.stack([*raw.values(), *rolled.values()], order)
        frame = self.model.evaluate(dense, stale_before_us=stale)
        if self._external:
            frame = frame.with_columns(
                pl.col("asset").replace_strict(vals, default=None, return_dtype=pl.Float64).alias(name)
                for name, vals in self._external.items()
            )
        return {w: frame.filter(pl.col("window") == label) for w, label in labels.items()}

    # -------------------------------------------------------------- outputs
    def _latest(self, current: pl.DataFrame) -> dict[str, dict[str, tuple[float | None, str]]]:
        """asset -> KPI -> (value, unit) of the current window, built with C-level zips.

        At 10k tags this is ~18k tuples per tick: the per-asset pickers are prepared once, so the
        tick spends ~2 ms here instead of ~8 (and makes fewer objects for the garbage collector).
        """
        rows = current.select(self._latest_cols).rows()
        out: dict[str, dict[str, tuple[float | None, str]]] = {}
        # values are finite or None by construction (rules/stages.py guards every KPI); rows are in
        # asset (config) order
        for asset, row, names, pick, units in self._latest_pickers:
            out[asset] = dict(zip(names, zip(pick(rows[row]), units, strict=True), strict=True))
        for name, vals in self._external.items():
            for asset, v in vals.items():
                out.setdefault(asset, {})[name] = (v, self.model.units[asset].get(name, ""))
        return out

    def _remember_hourly(self, frame: pl.DataFrame) -> None:
        for row in frame.iter_rows(named=True):
            self._hourly[row["asset"]] = {k: finite(row.get(k)) for k in _GRADE_KPIS}

    def _grades(self, latest: dict[str, dict[str, tuple[float | None, str]]]) -> dict[str, AssetGrades]:
        out: dict[str, AssetGrades] = {}
        for a in self.model.assets:
            if a.type not in ("kiln", "cement_mill"):
                continue
            hourly = self._hourly.get(a.id)
            values = hourly if hourly and any(v is not None for v in hourly.values()) else None
            basis = 3600
            if values is None:
                values = {k: v for k, (v, _u) in latest.get(a.id, {}).items()}
                basis = self._current_secs
            indicators = (
                [
                    (k, k)
                    for k in (
                        "clinker_energy_kgce_per_t",
                        "clinker_coal_kgce_per_t",
                        "clinker_power_kwh_per_t",
                    )
                ]
                if a.type == "kiln"
                else [("cement_preparation_kwh_per_t", "specific_power_kwh_per_t")]
            )
            grades = tuple(
                grade(
                    ind,
                    v,
                    altitude_m=self.settings.altitude_m,
                    site_pressure_pa=self.settings.site_pressure_pa,
                )
                for ind, k in indicators
                if (v := values.get(k)) is not None
            )
            if grades:
                out[a.id] = AssetGrades(a.id, basis, grades)
        return out

    # -------------------------------------------------------------- rules
    def _evaluate_rules(self, frames: dict[int | None, pl.DataFrame], now: datetime) -> list[AlertEvent]:
        """Advance the (rule, asset) pairs with the conditions of one evaluation.

        Conditions are evaluated for all assets at once; only pairs whose ``when`` holds or that are
        pending or firing go through the state machine (NULL acts as false there). Suppressions are
        always read on the current values: a rule on a rolling hour still stops while the kiln is
        stopped *now*. Rows of every frame are in asset (config) order.
        """
        events = [_resolved_orphan(ev, now) for ev in self._orphans]
        self._orphans.clear()
        n = len(self.model.assets)
        for w, compiled in sorted(self._groups.items(), key=lambda kv: kv[0] or 0):
            frame, current = frames[w], frames[None]
            assert frame.height == n and current.height == n, "one row per asset"
            cond = frame.select(*[e for c in compiled for e in c.exprs])
            supp = current.select(pl.col("window"), *[self._suppress_by_index[c.index] for c in compiled])
            for c in compiled:
                k = c.index
                when = cond.get_column(f"w{k}").fill_null(False).to_numpy()
                active = self._active.setdefault(c.rule.id, set())
                rows = c.rows[when[c.rows]]
                todo = sorted(set(rows.tolist()) | active)
                if not todo:
                    continue
                clear = cond.get_column(f"c{k}").fill_null(False).to_numpy()
                suppressed = supp.get_column(f"s{k}").fill_null(False).to_numpy()
                val = cond.get_column(f"v{k}").to_numpy()
                thr = cond.get_column(f"t{k}").to_numpy()
                shown = {n: cond.get_column(f"m{k}_{n}").to_list() for n in c.rule.message_names}
                for i in todo:
                    asset = self._asset_ids[i]
                    obs = Observation(bool(when[i]), bool(clear[i]), bool(suppressed[i]))
                    extra = {n: finite(v[i]) for n, v in shown.items()}
                    ev = self._step(c.rule, asset, now, obs, val[i], thr[i], extra)
                    if self.tracker.state(c.rule.id, asset).phase is Phase.IDLE:
                        active.discard(i)
                    else:
                        active.add(i)
                    if ev is not None:
                        events.append(ev)
        return events

    def _step(
        self,
        rule: Rule,
        asset: str,
        now: datetime,
        obs: Observation,
        value: object,
        threshold: object,
        extra: dict[str, float | None] | None = None,
    ) -> AlertEvent | None:
        """Advance the (rule, asset) state machine; the alert event when it fired or resolved."""
        got = self.tracker.observe(rule.id, asset, now, obs, rule.for_secs)
        if got is None:
            return None
        tr, aid, started = got
        return self._event(
            rule,
            asset,
            tr,
            aid,
            started,
            now,
            finite(value),
            finite(threshold),
            suppressed=obs.suppressed is True,
            extra=extra,
        )

    def _event(
        self,
        rule: Rule,
        asset: str,
        tr: Transition,
        aid: str,
        started: datetime,
        now: datetime,
        value: float | None,
        threshold: float | None,
        *,
        suppressed: bool = False,
        extra: dict[str, float | None] | None = None,
    ) -> AlertEvent:
        vname = rule.value_name()
        unit = rule.unit if rule.unit is not None else self.model.units[asset].get(vname or "", "")
        fields: dict[str, object] = {
            **(extra or {}),
            "currency": self.settings.currency,
            "value": value,
            "threshold": threshold,
            "unit": unit,
            "asset": asset,
            "rule": rule.id,
            "severity": rule.severity,
            "site": self.site,
        }
        if tr is Transition.FIRED:
            message = render_message(rule.message, **fields)
        elif suppressed and rule.suppress_when is not None:
            message = f"Resolved: {rule.id} on {asset} suppressed while {rule.suppress_when.text}"
        elif rule.resolved_message is not None:
            message = render_message(rule.resolved_message, **fields)
        else:
            message = render_message("Resolved: {rule} on {asset}, now {value:.4g} {unit}", **fields)
        ev = AlertEvent(
            alert_id=aid,
            site=self.site,
            asset=asset,
            rule=rule.id,
            severity=rule.severity,
            state=tr.value,
            value=value,
            threshold=threshold,
            unit=unit,
            started_at=started,
            ts=now,
            message=message,
            resolved_at=now if tr is Transition.RESOLVED else None,
        )
        if tr is Transition.FIRED:
            self._open[(rule.id, asset)] = ev
        else:
            self._open.pop((rule.id, asset), None)
        return ev


@dataclass
class _Rolling:
    """Running statistics of a long rule window over its closed minutes (see ``_update_rolling``)."""

    secs: int
    closed: DenseStats | None = None
    minutes: deque[int] = field(default_factory=deque)
    upto: int = 0


_GRADE_KPIS = (
    "clinker_energy_kgce_per_t",
    "clinker_coal_kgce_per_t",
    "clinker_power_kwh_per_t",
    "specific_power_kwh_per_t",
)


def _picker(idx: Sequence[int]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """``itemgetter`` that always returns a tuple (it returns a bare item for one index)."""
    if len(idx) == 1:
        i = idx[0]
        return lambda row: (row[i],)
    return operator.itemgetter(*idx)


def from_us(us: int) -> datetime:
    """Epoch microseconds as a UTC datetime (the inverse of ``rules.kpi.to_us``)."""
    return datetime.fromtimestamp(us // US, tz=UTC).replace(microsecond=us % US)


def _rule_exprs(rule: Rule, k: int, columns: frozenset[str]) -> tuple[pl.Expr, ...]:
    """when / clear / value / threshold of rule ``k``, and the names its message shows, as aliased
    expressions (a message name the site has no column for is NULL, shown as ``n/a``)."""
    when = rule.when.expr()
    clear = rule.clear.expr() if rule.clear is not None else ~when.fill_null(False)
    cmp = rule.when.first_comparison()
    value = to_polars(cmp.left) if cmp is not None else pl.lit(None, dtype=pl.Float64)
    thr = to_polars(cmp.right) if cmp is not None else pl.lit(None, dtype=pl.Float64)
    return (
        when.alias(f"w{k}"),
        clear.alias(f"c{k}"),
        value.cast(pl.Float64).alias(f"v{k}"),
        thr.cast(pl.Float64).alias(f"t{k}"),
        *(
            (pl.col(kpi_column(n)) if n in columns else pl.lit(None)).cast(pl.Float64).alias(f"m{k}_{n}")
            for n in rule.message_names
        ),
    )


def suppress_expr(rule: Rule, k: int) -> pl.Expr:
    """``suppress_when`` of rule ``k`` as column ``s{k}`` (always false without one)."""
    supp = rule.suppress_when.expr() if rule.suppress_when is not None else pl.lit(False)
    return supp.alias(f"s{k}")


def _resolved_orphan(ev: AlertEvent, now: datetime) -> AlertEvent:
    return AlertEvent(
        alert_id=ev.alert_id,
        site=ev.site,
        asset=ev.asset,
        rule=ev.rule,
        severity=ev.severity,
        state="resolved",
        value=None,
        threshold=ev.threshold,
        unit=ev.unit,
        started_at=ev.started_at,
        ts=now,
        message=f"Resolved: rule {ev.rule} is no longer configured for {ev.asset}",
        resolved_at=now,
    )
