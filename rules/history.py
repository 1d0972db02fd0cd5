"""History replay: the full rule pack over stored samples in one vectorised pass.

``evaluate_history`` serves backfill (agent/backfill.py), what-if runs and the benchmark
(bench/rules_bench.py). It is kept apart from the live engine because its shape is the opposite
one: instead of folding a few new rows per tick, it aggregates the whole range into 1-min tag
statistics once, derives every KPI window and rolling rule window from those arrays, and then steps
each (rule, asset) state machine only over the minutes where something can happen. The rules,
their compiled Polars expressions and the state machine are the live engine's own
(rules/engine.py), so a replay fires and resolves exactly as ticks at each minute end would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import polars as pl

from rules import constants as C
from rules.alerts import AlertEvent
from rules.assets import RuleSettings
from rules.catalogue import KPI_ROW_SCHEMA, empty_kpi_rows
from rules.engine import MINUTE_US, RuleEngine, from_us, suppress_expr
from rules.kpi import window_range
from rules.packs import Rule
from rules.state import Observation, Phase

__all__ = ["HistoryResult", "evaluate_history"]


@dataclass(frozen=True, slots=True)
class HistoryResult:
    """KPI rows of every window size and the alert events of a replay over stored samples."""

    kpi_rows: pl.DataFrame
    events: list[AlertEvent]


def evaluate_history(
    settings: RuleSettings,
    samples: pl.DataFrame,
    rules: list[Rule] | None = None,
    *,
    windows_secs: Sequence[int] = C.KPI_WINDOWS_SECS,
) -> HistoryResult:
    """The full pack over a time range in one vectorised pass (backfill, what-if, benchmark).

    Samples are aggregated once into 1-min tag statistics; 15-min and hourly windows and the rolling
    rule windows are sums of those. Rules are evaluated at every minute end on the closed minute, as a
    tick at that time would (without the live staleness check, which has no meaning for history);
    the only sequential part is the per-pair state machine, skipped while idle.
    """
    engine = RuleEngine(settings, rules)
    model = engine.model
    if samples.height == 0 or not model.assets:
        return HistoryResult(empty_kpi_rows(), [])
    ts = samples.get_column("ts").dt.epoch("us")
    lo, hi = cast(int, ts.min()), cast(int, ts.max())
    # one pass over the samples (streaming engine: bounded memory); everything else reads minutes
    minutes = window_range(lo, hi, 60)
    dense = model.dense_minutes(samples)
    rows: list[pl.DataFrame] = []
    frames: dict[int | None, pl.DataFrame] = {}
    for w in windows_secs:
        if w == 60:
            frame = model.evaluate(dense)
            frames[None] = frame  # rules without a window read the closed minute (no staleness in history)
        else:
            frame = model.evaluate(dense.coarsen(w))
        rows.append(model.kpi_rows(frame, w))
    if None not in frames:
        frames[None] = model.evaluate(dense)
    # rule conditions per window group; a rolling window computes only what its rules read
    conds: dict[int | None, pl.DataFrame] = {}
    for rw, compiled in engine._groups.items():
        exprs = [pl.col("window"), pl.col("asset"), *(e for c in compiled for e in c.exprs)]
        if rw is None:
            conds[rw] = frames[None].select(exprs)
        else:
            # whole minutes of the last ``rw`` seconds ending with each minute
            conds[rw] = model.evaluate(dense.rolling(max(1, rw // 60)), select=exprs)
    events = _replay(engine, conds, frames[None], minutes)
    kpi_rows = pl.concat(rows, how="vertical") if rows else pl.DataFrame(schema=KPI_ROW_SCHEMA)
    return HistoryResult(kpi_rows, events)


def _replay(
    engine: RuleEngine, conds: dict[int | None, pl.DataFrame], current: pl.DataFrame, minutes: pl.Series
) -> list[AlertEvent]:
    """Step every rule's state machine at each minute end, in time order.

    NULL conditions act as false in the state machine, so conditions become boolean arrays
    (minutes x assets) and each (rule, asset) pair only visits the minutes where something can
    happen: from a minute where ``when`` holds, until the pair is idle again.
    """
    n_min = minutes.len()
    starts = minutes.to_numpy()
    supp_frame = current  # every frame is window-major, assets in config order
    asset_pos = {a: i for i, a in enumerate(supp_frame.get_column("asset").head(len(engine.model.assets)))}

    def grid(frame: pl.DataFrame, col: str, *, boolean: bool) -> np.ndarray[Any, Any]:
        series = frame.get_column(col)
        arr = series.fill_null(False).to_numpy() if boolean else series.cast(pl.Float64).to_numpy()
        return arr.reshape(n_min, -1)

    found: list[tuple[int, int, int, int, AlertEvent]] = []
    for g, (w, compiled) in enumerate(sorted(engine._groups.items(), key=lambda kv: kv[0] or 0)):
        frame = conds[w]  # w{k}, c{k}, v{k}, t{k} of each rule k (see _rule_exprs in rules/engine.py)
        supp = supp_frame.select("window", *[suppress_expr(c.rule, c.index) for c in compiled])
        for c in compiled:
            k = c.index
            when, clear = grid(frame, f"w{k}", boolean=True), grid(frame, f"c{k}", boolean=True)
            suppressed = grid(supp, f"s{k}", boolean=True)
            val, thr = grid(frame, f"v{k}", boolean=False), grid(frame, f"t{k}", boolean=False)
            for a_order, asset in enumerate(c.assets):
                col = asset_pos[asset]
                w_col = when[:, col]
                candidates = np.flatnonzero(w_col & ~suppressed[:, col])
                st = engine.tracker.state(c.rule.id, asset)
                pos = 0
                while pos < len(candidates):
                    i = int(candidates[pos])
                    while i < n_min:
                        now = from_us(int(starts[i]) + MINUTE_US)
                        obs = Observation(bool(w_col[i]), bool(clear[i, col]), bool(suppressed[i, col]))
                        ev = engine._step(c.rule, asset, now, obs, val[i, col], thr[i, col])
                        if ev is not None:
                            found.append((i, g, k, a_order, ev))
                        if st.phase is Phase.IDLE:
                            break
                        i += 1
                    pos = int(np.searchsorted(candidates, i, side="right"))
    found.sort(key=lambda x: x[:4])
    return [ev for *_, ev in found]
