"""Cement energy KPIs (docs/kpis.md §1-§5, §8) in batch: the public entry points over a sample frame.

Pipeline, all vectorised, and where each step lives:

1. tag statistics (rules/dense.py): per UTC-aligned window and tag, sum and count of ``good``
   samples, count of all samples, time of the last good sample. Only ``good`` samples with a
   finite value count.
2. the signal frame (:meth:`rules.asset_model.AssetModel.signal_frame`): one row per window per
   asset, one column per signal role (= window mean of good samples, combined over the role's
   tags), plus the asset's parameters. Rows per asset rather than one column per tag keep the
   number of Polars expressions independent of the plant size: the same ~30 KPI expressions serve
   1 or 1,000 kilns (a frame with one column per tag would need one expression per asset and KPI:
   300 ms per evaluation at 10,000 tags against under 1 ms). :func:`wide_signals` gives the
   one-column-per-tag view for display.
3. KPI columns ``<kpi>``, ``<kpi>__reason``, ``<kpi>__gf`` (rules/stages.py, applied by
   :meth:`rules.asset_model.AssetModel.kpi_frame`), including the cross-asset ones (mill power
   allocated to clinker, WHR credited to its kiln). The catalogue of names and units is
   rules/catalogue.py.
4. long rows as stored in the ``kpi`` table (:meth:`rules.asset_model.AssetModel.kpi_rows`,
   docs/auditors.md).

A KPI whose denominator is below its minimum (kiln stopped, mill idle) or whose input has no good
data is NULL with a ``reason``; it is never inf, NaN or huge.

This module holds only the batch functions (backfill, display, time conversion) that callers use
without keeping a model; the incremental evaluation is rules/engine.py. How the rules/ modules fit
together and what they may import: docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import polars as pl

from common.values import to_utc
from rules.asset_model import AssetModel
from rules.assets import RuleSettings
from rules.catalogue import empty_kpi_rows
from rules.dense import tag_stats


def window_range(first_us: int, last_us: int, window_secs: int) -> pl.Series:
    """Starts of every window from the one holding ``first_us`` to the one holding ``last_us``."""
    us = window_secs * 1_000_000
    lo, hi = first_us // us * us, last_us // us * us
    return pl.Series("window", range(lo, hi + us, us), dtype=pl.Int64)


def compute_kpis(settings: RuleSettings, samples: pl.DataFrame, window_secs: int) -> pl.DataFrame:
    """KPI rows for every window from the first to the last sample (batch and backfill).

    Pure: same columns as :attr:`rules.engine.TickResult.kpi_rows`; windows without any sample in
    between get NULL rows ("no good data"). Staleness does not apply to history.
    """
    model = AssetModel.build(settings)
    if samples.height == 0 or not model.assets:
        return empty_kpi_rows()
    ts = samples.get_column("ts").dt.epoch("us")
    lo, hi = ts.min(), ts.max()
    assert isinstance(lo, int) and isinstance(hi, int)
    stats = tag_stats(samples, window_secs)
    frame = model.evaluate(stats, window_range(lo, hi, window_secs))
    return model.kpi_rows(frame, window_secs)


def wide_signals(samples: pl.DataFrame, window_secs: int, tags: Sequence[str] | None = None) -> pl.DataFrame:
    """The tag-wide view: one row per window (``ts`` = start), one column per tag = mean of good samples."""
    stats = tag_stats(samples, window_secs).collect()
    if tags is not None:
        stats = stats.filter(pl.col("tag").is_in(list(tags)))
    long = stats.select(
        pl.col("window").cast(pl.Datetime("us", "UTC")).alias("ts"),
        "tag",
        pl.when(pl.col("n_good") > 0).then(pl.col("sum") / pl.col("n_good")).alias("mean"),
    )
    if long.height == 0:
        return pl.DataFrame(schema={"ts": pl.Datetime("us", "UTC")})
    return long.pivot(on="tag", index="ts", values="mean").sort("ts")


def to_us(ts: datetime) -> int:
    """Epoch microseconds of an aware datetime (naive means UTC)."""
    delta = to_utc(ts) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
