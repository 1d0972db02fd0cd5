"""Helpers for the rule-engine tests: compact configs and sample frames."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from agent.config import Config, parse_config
from connectors.base import SAMPLE_SCHEMA
from rules.assets import TAG_ROLES

T0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)


def role_tags(assets: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every tag named by an asset role (in order of appearance)."""
    roles = {r for rs in TAG_ROLES.values() for r in rs}
    out: list[str] = []
    for a in assets:
        for key, value in a.items():
            if key not in roles:
                continue
            for t in [value] if isinstance(value, str) else value:
                if t not in out:
                    out.append(t)
        for fuel in a.get("fuels") or ():
            tph = fuel["tph"]
            for t in [*([tph] if isinstance(tph, str) else tph), *([fuel["ncv_tag"]] if "ncv_tag" in fuel else [])]:
                if t not in out:
                    out.append(t)
    return out


def make_config(
    assets: Sequence[Mapping[str, Any]],
    *,
    site: str = "p1",
    extra_tags: Sequence[str] = (),
    **agent: Any,
) -> Config:
    """A valid config: one Modbus source holding every role tag (plus ``extra_tags``)."""
    tags = role_tags(assets) + [t for t in extra_tags if t not in role_tags(assets)]
    return parse_config(
        {
            "agent": {"site": site, **agent},
            "sources": [
                {
                    "name": "plc",
                    "type": "modbus",
                    "host": "127.0.0.1",
                    "tags": [{"name": t, "register": 2 * i} for i, t in enumerate(tags)],
                }
            ]
            if tags
            else [],
            "assets": list(assets),
        }
    )


#: docs/kpis.md worked example 1: feed 180 t/h, F 1.6, coal 17 t/h at 25 MJ/kg, 55 kWh/t clinker electricity.
EXAMPLE1_KILN: dict[str, Any] = {
    "id": "kiln1",
    "type": "kiln",
    "feed_to_clinker": 1.6,
    "kiln_feed_tph": "kiln1.feed_tph",
    "fuel_tph": ["kiln1.main_burner_coal_tph", "kiln1.calciner_coal_tph"],
    "fuel_ncv_mj_per_kg": 25.0,
    "power_kw": ["kiln1.main_drive_kw", "kiln1.id_fan_kw"],
    "ph_exit_o2_pct": "kiln1.ph_exit_o2_pct",
    "kiln_inlet_o2_pct": "kiln1.kiln_inlet_o2_pct",
    "nominal_feed_tph": 200.0,
}
EXAMPLE1_VALUES: dict[str, float] = {
    "kiln1.feed_tph": 180.0,
    "kiln1.main_burner_coal_tph": 7.0,
    "kiln1.calciner_coal_tph": 10.0,
    "kiln1.main_drive_kw": 500.0,
    "kiln1.id_fan_kw": 55.0 * 112.5 - 500.0,  # 55 kWh/t x 112.5 t/h in total
    "kiln1.ph_exit_o2_pct": 4.8,  # docs/kpis.md worked example 2: false air 15.43 %
    "kiln1.kiln_inlet_o2_pct": 2.3,
}


def samples(
    values: Mapping[str, float | None] | Sequence[tuple[str, float | None]],
    *,
    start: datetime = T0,
    seconds: int = 60,
    every: int = 1,
    quality: str | Mapping[str, str] = "good",
) -> pl.DataFrame:
    """Constant signals sampled every ``every`` seconds over [start, start + seconds)."""
    items = list(values.items()) if isinstance(values, Mapping) else list(values)
    rows: list[tuple[datetime, str, float | None, str]] = []
    for s in range(0, seconds, every):
        ts = start + timedelta(seconds=s)
        for tag, v in items:
            q = quality if isinstance(quality, str) else quality.get(tag, "good")
            rows.append((ts, tag, v, q))
    return frame(rows)


def frame(rows: Sequence[tuple[datetime, str, float | None, str]]) -> pl.DataFrame:
    """A SAMPLE_SCHEMA frame from (ts, tag, value, quality) rows."""
    return pl.DataFrame(rows, schema=SAMPLE_SCHEMA, orient="row")


def kpi_value(
    rows: pl.DataFrame, asset: str, kpi: str, window_secs: int = 60, ts: datetime | None = None
) -> Any:
    """The value of one KPI row (the first window when ``ts`` is None)."""
    sel = rows.filter(pl.col("asset") == asset, pl.col("kpi") == kpi, pl.col("window_secs") == window_secs)
    if ts is not None:
        sel = sel.filter(pl.col("ts") == ts)
    assert sel.height >= 1, f"no {kpi} row for {asset}"
    return sel.row(0, named=True)


def tick_through(
    engine: Any,
    data: pl.DataFrame,
    *,
    start: datetime,
    end: datetime,
    every_secs: float,
    keep_secs: int = 900,
) -> tuple[pl.DataFrame, list[Any], list[Any]]:
    """Tick ``engine`` from ``start`` to ``end`` with the samples seen so far; (kpi rows, events, results)."""
    rows: list[pl.DataFrame] = []
    events: list[Any] = []
    results: list[Any] = []
    data = data.sort("ts", maintain_order=True)
    ts = data.get_column("ts")
    now = start
    while now <= end:
        lo = int(ts.search_sorted(now - timedelta(seconds=keep_secs), side="left"))  # type: ignore[arg-type]
        hi = int(ts.search_sorted(now, side="left"))  # type: ignore[arg-type]
        window = data.slice(lo, hi - lo)
        result = engine.tick(window, now)
        rows.append(result.kpi_rows)
        events.extend(result.events)
        results.append(result)
        now += timedelta(seconds=every_secs)
    out = pl.concat(rows, how="vertical") if rows else pl.DataFrame()
    return out, events, results
