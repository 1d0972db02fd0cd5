"""``steady_state_flag``'s memory: no stop and no low-feed minute in the 2 h before a window.

The kiln heat balance (docs/kpis.md §10) holds only in steady operation: after a stop, a start or a
feed cut the refractory and the material store or release heat for hours, and the loss split's
remainder absorbs it. A window's own feed (``kiln_arrays``: feed at least 80 % of nominal) is not
enough; this tracker also requires that no 1-min window of the asset was unsteady (flag 0, or no
good data, e.g. a stopped kiln) from 2 h before the window's start to its end.

Pure and deterministic, like the rest of ``rules/``: it only sees the KPI rows the engine closes,
and the stored flags the agent hands it at start (:meth:`SteadyTracker.seed`), so a restart just
after a stop still denies the 2 h. Time nobody observed (the agent down) denies nothing: a stop
then is only seen if the kiln was still below 80 % feed when the agent came back.
"""

from __future__ import annotations

from collections import deque

import polars as pl

#: No unsteady minute this long before a window (docs/kpis.md §10.5, "no stop or start in the last 2 h").
HOLD_US = 2 * 3600 * 1_000_000
MINUTE_US = 60 * 1_000_000
FLAG = "steady_state_flag"


class SteadyTracker:
    """Per asset: the ends (µs) of the recent unsteady 1-min windows."""

    def __init__(self) -> None:
        self._unsteady: dict[str, deque[int]] = {}

    def seed(self, asset: str, unsteady_ends_us: list[int]) -> None:
        """Stored history: the ends of the asset's unsteady 1-min windows of the last hours."""
        self._unsteady[asset] = deque(sorted(unsteady_ends_us))

    def apply(self, rows: pl.DataFrame) -> pl.DataFrame:
        """``rows`` (the engine's KPI rows of one tick) with every flag of 1 that the 2-h rule denies set to 0."""
        if rows.height == 0 or FLAG not in rows.get_column("kpi").unique().to_list():
            return rows
        is_flag = pl.col("kpi") == FLAG
        flags = rows.filter(is_flag).with_row_index("_i")
        # minutes first, in time order: larger windows closing at the same tick see all of them
        minutes = flags.filter(pl.col("window_secs") == 60).sort("ts")
        for asset, ts, value in minutes.select("asset", pl.col("ts").dt.epoch("us"), "value").iter_rows():
            if value != 1.0:
                self._unsteady.setdefault(asset, deque()).append(ts + MINUTE_US)
        denied: list[int] = []
        for i, asset, start, secs, value in flags.select(
            "_i", "asset", pl.col("ts").dt.epoch("us"), "window_secs", "value"
        ).iter_rows():
            if value == 1.0 and not self._steady(asset, start, start + secs * 1_000_000):
                denied.append(i)
        latest = max((ts for ts in minutes.get_column("ts").dt.epoch("us").to_list()), default=None)
        self._forget(latest)
        if not denied:
            return rows
        fixed = flags.with_columns(
            pl.when(pl.col("_i").is_in(denied)).then(0.0).otherwise(pl.col("value")).alias("value")
        ).drop("_i")
        return pl.concat([rows.filter(~is_flag), fixed.select(rows.columns)], how="vertical")

    def _steady(self, asset: str, start: int, end: int) -> bool:
        return not any(start - HOLD_US < e <= end for e in self._unsteady.get(asset, ()))

    def _forget(self, latest: int | None) -> None:
        """Unsteady minutes older than any window still to close can matter (3 h: an hour plus 2 h)."""
        if latest is None:
            return
        for ends in self._unsteady.values():
            while ends and ends[0] < latest - HOLD_US - 3600 * 1_000_000:
                ends.popleft()
