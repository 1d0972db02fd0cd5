"""Test data for the M&V and auditor tests: docs/kpis.md §7 worked example 3 and hand-made series."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import duckdb
import polars as pl

from agent import storage

# docs/kpis.md worked example 3: raw-mill electricity (MWh) vs raw meal (kt), 12 baseline months,
# then 3 reporting months.
EX3_P = [180, 195, 170, 210, 205, 188, 176, 199, 215, 183, 192, 201]
EX3_E = [3630.0, 3787.5, 3460.0, 4035.0, 4007.5, 3669.0, 3543.0, 3874.5, 4167.5, 3611.5, 3781.0, 3900.5]
EX3_REP_P = [190, 205, 185]
EX3_REP_E = [3640.0, 3795.0, 3560.0]

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SAMPLE_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Datetime("us", "UTC"),
    "tag": pl.String(),
    "value": pl.Float64(),
    "quality": pl.String(),
}


def constant_samples(
    tag: str, start: datetime, values_per_period: Sequence[float], period: timedelta, step: timedelta
) -> pl.DataFrame:
    """A tag holding ``values_per_period[i]`` throughout period i, sampled every ``step``."""
    per = int(period / step)
    ts: list[datetime] = []
    vals: list[float] = []
    for i, v in enumerate(values_per_period):
        p0 = start + i * period
        ts.extend(p0 + j * step for j in range(per))
        vals.extend([float(v)] * per)
    n = len(ts)
    return pl.DataFrame(
        {"ts": ts, "tag": [tag] * n, "value": vals, "quality": ["good"] * n}, schema=SAMPLE_SCHEMA
    )


def example3_daily_db(
    con: duckdb.DuckDBPyConnection, *, site: str = "plant1", asset: str = "rawmill1"
) -> None:
    """Example 3 as 15 days (12 baseline + 3 reporting) of 10-min samples from a historian.

    One day carries one example month: power (kW) = E MWh x 1000 / 24 h and feed (t/h) = P kt x
    1000 / 24 h, so the daily integrals are E x 1000 kWh and P x 1000 t.
    """
    energy = [e * 1000 / 24 for e in EX3_E + EX3_REP_E]
    feed = [p * 1000 / 24 for p in EX3_P + EX3_REP_P]
    day, step = timedelta(days=1), timedelta(minutes=10)
    storage.insert_samples(con, site, constant_samples(f"{asset}.power_kw", T0, energy, day, step))
    storage.insert_samples(con, site, constant_samples(f"{asset}.feed_tph", T0, feed, day, step))


def month_starts(start: datetime, n: int) -> list[datetime]:
    out = [start]
    for _ in range(n):
        s = out[-1]
        out.append(s.replace(year=s.year + s.month // 12, month=s.month % 12 + 1))
    return out


def example3_monthly_kpi_db(
    con: duckdb.DuckDBPyConnection, *, site: str = "plant1", asset: str = "rawmill1"
) -> None:
    """Example 3 as 15 calendar months of hourly KPI rows (window 3600 s), power_kw and feed_tph."""
    starts = month_starts(T0, 15)
    energy = EX3_E + EX3_REP_E
    feed = EX3_P + EX3_REP_P
    rows: dict[str, list[object]] = {
        k: [] for k in ("ts", "site", "asset", "kpi", "value", "unit", "window_secs")
    }
    for i in range(15):
        hours = int((starts[i + 1] - starts[i]) / timedelta(hours=1))
        for h in range(hours):
            t = starts[i] + timedelta(hours=h)
            for kpi, v, unit in (
                ("power_kw", energy[i] * 1000 / hours, "kW"),
                ("feed_tph", feed[i] * 1000 / hours, "t/h"),
            ):
                rows["ts"].append(t)
                rows["site"].append(site)
                rows["asset"].append(asset)
                rows["kpi"].append(kpi)
                rows["value"].append(v)
                rows["unit"].append(unit)
                rows["window_secs"].append(3600)
    frame = pl.DataFrame(
        rows,
        schema={
            "ts": pl.Datetime("us", "UTC"),
            "site": pl.String,
            "asset": pl.String,
            "kpi": pl.String,
            "value": pl.Float64,
            "unit": pl.String,
            "window_secs": pl.Int32,
        },
    )
    storage.insert_frame(con, "kpi", frame)


def kpi_rows(rows: Sequence[tuple[datetime, str, str, str, float | None, str, int]]) -> pl.DataFrame:
    """KPI table rows from (ts, site, asset, kpi, value, unit, window_secs) tuples."""
    return pl.DataFrame(
        [list(r) for r in rows],
        schema={
            "ts": pl.Datetime("us", "UTC"),
            "site": pl.String,
            "asset": pl.String,
            "kpi": pl.String,
            "value": pl.Float64,
            "unit": pl.String,
            "window_secs": pl.Int32,
        },
        orient="row",
    )
