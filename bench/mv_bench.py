"""M&V and auditor-view benchmark.

1. Baseline fit, one year of hourly periods with three drivers: the OLS + statistics alone
   (``rules.mv.fit_baseline`` on 8,760 rows) and end to end from the database
   (``agent.mv_store.fit_from_db`` aggregating a year of 1-min KPI rows into hours).
2. Each auditor view over a year of 1-min KPIs (10 KPIs x 3 assets = 15.8M rows, in a DuckDB file
   after a checkpoint, i.e. compressed as on a gateway): full result
   fetched to Arrow, and a typical filtered query (one asset, one month). Baseline for the ratios:
   a naive hourly ``avg() GROUP BY`` over the same table in the same run.

Targets (issue): fit < 1 s, each view < 0.5 s.

    .venv/bin/python bench/mv_bench.py            # one year
    .venv/bin/python bench/mv_bench.py --quick    # 30 days, for a smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

# bench/ holds scripts, not packages: keep it off the import path so that a script named like a
# package (say, a rules.py) cannot shadow it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from agent import mv_store, storage  # noqa: E402
from agent.views import create_views  # noqa: E402
from rules.mv import fit_baseline  # noqa: E402

START = datetime(2026, 1, 1, tzinfo=UTC)
KPIS = (
    "clinker_tph",
    "heat_input_gj_per_h",
    "specific_heat_mj_per_t_clinker",
    "specific_heat_kcal_per_kg_clinker",
    "specific_power_kwh_per_t",
    "clinker_energy_kgce_per_t",
    "co2_kg_per_t_clinker",
    "whr_kwh_per_t_clinker",
    "power_kw",
    "preheater_false_air_pct",
)
ASSETS = ("kiln1", "kiln2", "kiln3")


MINIMA: dict[int, float] = {}


def timeit(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``repeat`` runs after one warm-up (the minimum is kept in MINIMA)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    MINIMA[id(fn)] = min(times)
    return round(statistics.median(times), 4)


def build_db(days: int, path: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A site database with ``days`` of 1-min KPI rows for 10 KPIs x 3 kiln assets."""
    con = storage.connect(path)
    minutes = days * 1440
    for a_i, asset in enumerate(ASSETS):
        con.execute("INSERT INTO assets VALUES ('plant1', ?, 'kiln', '{}', NULL)", [asset])
        for k_i, kpi in enumerate(KPIS):
            # a daily cycle plus noise, one row per minute (window 60 s)
            con.execute(
                f"""INSERT INTO kpi (ts, site, asset, kpi, value, unit, window_secs)
                SELECT ?::TIMESTAMPTZ + to_minutes(i), 'plant1', ?, ?,
                    100 + {k_i} * 10 + 10 * sin(i / 1440.0 * 6.283 + {a_i}) + random(), '', 60
                FROM range({minutes}) t(i)""",
                [START, asset, kpi],
            )
    con.execute("CHECKPOINT")  # compressed on-disk storage, as on a gateway
    return con


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="30 days instead of 365")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    days = 30 if args.quick else 365
    results: dict[str, float | int | str] = {"days": days}

    # 1a. pure fit: a year of hourly periods, three drivers
    rng = np.random.default_rng(1)
    n = days * 24
    x = rng.normal(size=(n, 3)) * [20, 300, 1.5] + [200, 3500, 8]
    y = 800 + x @ np.array([15.0, 0.2, 30.0]) + rng.normal(scale=40, size=n)
    frame = pl.DataFrame(
        {
            "ts": [START + timedelta(hours=i) for i in range(n)],
            "power_kw": y,
            "feed_tph": x[:, 0],
            "blaine_cm2_per_g": x[:, 1],
            "moisture_pct": x[:, 2],
        }
    )
    results["fit_pure_s"] = timeit(
        lambda: fit_baseline(
            frame,
            target="power_kw",
            drivers=["feed_tph", "blaine_cm2_per_g", "moisture_pct"],
            site="plant1",
            asset="cm1",
            granularity="hour",
        ),
        args.repeat,
    )

    # 2. views over a year of 1-min KPI rows
    tmp = tempfile.TemporaryDirectory()
    t0 = time.perf_counter()
    con = build_db(days, f"{tmp.name}/site.duckdb")
    results["build_s"] = time.perf_counter() - t0
    create_views(con)
    row = con.execute("SELECT count(*) FROM kpi").fetchone()
    results["kpi_rows"] = int(row[0]) if row else 0

    # 1b. end-to-end fit from the database (hourly periods from 1-min KPI rows, three drivers)
    results["fit_from_db_s"] = timeit(
        lambda: mv_store.fit_from_db(
            con,
            site="plant1",
            asset="kiln1",
            target="power_kw",
            drivers=["clinker_tph", "preheater_false_air_pct", "heat_input_gj_per_h"],
            start=START,
            end=START + timedelta(days=days),
            granularity="hour",
        ),
        max(1, args.repeat // 2),
    )

    def fetch(sql: str) -> Callable[[], object]:
        return lambda: con.sql(sql).to_arrow_table()

    # baselines: a plain hourly mean per site/asset/kpi (no finest-window choice), bucketed by
    # integer arithmetic on the stored microseconds as the views do, and with time_bucket()
    naive = (
        "SELECT site, asset, kpi, epoch_us(ts) // 3600000000 AS h, avg(value) AS value FROM kpi GROUP BY ALL"
    )
    naive_fn = fetch(naive)
    results["naive_hourly_full_s"] = timeit(naive_fn, args.repeat)
    results["naive_hourly_full_min_s"] = round(MINIMA[id(naive_fn)], 4)
    tb = "SELECT site, asset, kpi, time_bucket(INTERVAL 1 hour, ts) AS h, avg(value) AS value FROM kpi GROUP BY ALL"
    results["naive_time_bucket_full_s"] = timeit(fetch(tb), args.repeat)
    month = (START + timedelta(days=min(days, 31) - 1)).isoformat()
    for view, where in (
        ("v_kpi_hourly", f"asset = 'kiln2' AND hour >= '{START.isoformat()}' AND hour < '{month}'"),
        ("v_kpi_daily", f"asset = 'kiln2' AND day >= '{START.date()}' AND day < '{month[:10]}'"),
        (
            "v_shift_report",
            f"asset = 'kiln2' AND shift_start >= '{START.isoformat()}' AND shift_start < '{month}'",
        ),
        ("v_energy_grade", f"asset = 'kiln2' AND day >= '{START.date()}' AND day < '{month[:10]}'"),
    ):
        full = fetch(f"SELECT * FROM {view}")
        results[f"{view}_full_s"] = timeit(full, args.repeat)
        results[f"{view}_full_min_s"] = round(MINIMA[id(full)], 4)
        results[f"{view}_rows"] = con.sql(f"SELECT count(*) FROM {view}").fetchall()[0][0]
        results[f"{view}_month_s"] = timeit(fetch(f"SELECT * FROM {view} WHERE {where}"), args.repeat)
    base = float(results["naive_hourly_full_s"])
    for view in ("v_kpi_hourly", "v_kpi_daily", "v_shift_report", "v_energy_grade"):
        results[f"{view}_vs_naive"] = round(float(results[f"{view}_full_s"]) / base, 2)
    con.close()
    tmp.cleanup()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
