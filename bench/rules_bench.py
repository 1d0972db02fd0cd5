"""Benchmark of the rule engine: the full cement pack over a day of 1 Hz data, and per tick.

    .venv/bin/python bench/rules_bench.py            # 24 h x 500 tags (43.2 M samples), ticks at 10,000 tags
    .venv/bin/python bench/rules_bench.py --quick    # 2 h x 500 tags, ticks at 2,000 tags

Three measurements:

1. **Full pack** (:func:`rules.history.evaluate_history`): 1-min, 15-min and hourly KPIs plus every
   rule of the built-in pack evaluated at each minute, over ``--hours`` of 1 Hz samples. Run in a
   fresh child process that reads the samples from an Arrow IPC file, so its peak RSS is data +
   evaluation.
   Measured twice: ``tag``/``quality`` as Enum (how a backfill reads them from DuckDB) and as String.
2. **Per-row Python baseline**: the same pack written the straightforward way - every sample visited
   in a Python loop, accumulated per minute, KPIs and conditions computed in Python per asset - on a
   slice, extrapolated to the whole range. Its 1-min KPIs are compared with the vectorised ones.
3. **Per tick** (:meth:`rules.engine.RuleEngine.tick`) at ``--tick-tags`` tags after an hour of
   warm-up, as the agent calls it every ``evaluate_every_secs`` = 10 s.

Medians of ``--repeat`` runs; the machine and load are printed with the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.config import Config, parse_config
from rules.asset_model import AssetModel
from rules.constants import KGCE_PER_KWH, KJ_PER_KCAL, MJ_PER_KGCE
from rules.engine import RuleEngine
from rules.expr import evaluate_scalar
from rules.history import evaluate_history
from rules.packs import Rule, load_rules
from rules.state import AlertState, Observation, step

START = datetime(2026, 3, 2, tzinfo=UTC)
QUALITIES = ["good", "stale", "bad", "comm_error"]

# One kiln line: (asset suffix, asset type, {role: [signal, ...]}, {signal: typical value}).
_LINE: tuple[tuple[str, str, dict[str, list[str]], dict[str, float]], ...] = (
    (
        "kiln",
        "kiln",
        {
            "kiln_feed_tph": ["feed_tph"],
            "fuel_tph": ["main_burner_coal_tph", "calciner_coal_tph"],
            "power_kw": ["main_drive_kw", "id_fan_kw", "cooler_fans_kw"],
            "ph_exit_temp_c": ["ph_exit_temp_c"],
            "ph_exit_o2_pct": ["ph_exit_o2_pct"],
            "kiln_inlet_o2_pct": ["kiln_inlet_o2_pct"],
            "kiln_inlet_co_pct": ["kiln_inlet_co_pct"],
            "clinker_temp_c": ["clinker_temp_c"],
            "secondary_air_temp_c": ["secondary_air_temp_c"],
            "tertiary_air_temp_c": ["tertiary_air_temp_c"],
        },
        {
            "feed_tph": 330.0,
            "main_burner_coal_tph": 8.0,
            "calciner_coal_tph": 12.3,
            "main_drive_kw": 480.0,
            "id_fan_kw": 2300.0,
            "cooler_fans_kw": 1700.0,
            "ph_exit_temp_c": 320.0,
            "ph_exit_o2_pct": 3.1,
            "kiln_inlet_o2_pct": 2.3,
            "kiln_inlet_co_pct": 0.03,
            "clinker_temp_c": 115.0,
            "secondary_air_temp_c": 1030.0,
            "tertiary_air_temp_c": 860.0,
        },
    ),
    (
        "raw",
        "raw_mill",
        {"feed_tph": ["feed_tph"], "power_kw": ["main_drive_kw", "fan_kw", "separator_kw"]},
        {"feed_tph": 415.0, "main_drive_kw": 3700.0, "fan_kw": 2450.0, "separator_kw": 200.0},
    ),
    (
        "coal",
        "coal_mill",
        {"feed_tph": ["feed_tph"], "power_kw": ["main_drive_kw", "fan_kw"]},
        {"feed_tph": 28.0, "main_drive_kw": 470.0, "fan_kw": 120.0},
    ),
    (
        "cm",
        "cement_mill",
        {
            "feed_tph": ["feed_tph"],
            "power_kw": ["main_drive_kw", "separator_kw", "fan_kw"],
            "fineness_blaine_cm2_per_g": ["blaine_cm2_per_g"],
        },
        {
            "feed_tph": 140.0,
            "main_drive_kw": 4000.0,
            "separator_kw": 170.0,
            "fan_kw": 560.0,
            "blaine_cm2_per_g": 3400.0,
        },
    ),
    (
        "whr",
        "whr",
        {"generator_kw": ["generator_kw"], "aux_kw": ["aux_kw"]},
        {"generator_kw": 7800.0, "aux_kw": 800.0},
    ),
)
_PARAMS: dict[str, dict[str, Any]] = {
    "kiln": {
        "feed_to_clinker": 1.6,
        "fuel_ncv_mj_per_kg": 25.0,
        "nominal_feed_tph": 330.0,
        "target_specific_heat_kcal_per_kg": 735.0,
        "design_ph_exit_temp_c": 320.0,
        "rated_power_kw": 6000.0,
    },
    "raw_mill": {"rated_power_kw": 7500.0},
    "coal_mill": {"rated_power_kw": 800.0},
    "cement_mill": {"rated_power_kw": 5600.0},
    "whr": {},
}


def use_fuels() -> None:
    """Switch the kiln lines to three listed fuels with a loss split and a clinker feeder (``--fuels``).

    The kiln fires coal (two feeders), RDF and sawdust (docs/kpis.md §9) and has the design state of
    the loss attribution (docs/kpis.md §10) and prices (§11), so every KPI added with them is on; the
    cement mill gets a clinker feeder. Three more tags per line; the per-row baseline does not know
    fuels, so run with ``--skip baseline``.
    """
    global _LINE
    kiln_suffix, kind, roles, values = _LINE[0]
    roles = {k: v for k, v in roles.items() if k != "fuel_tph"}
    values = {
        **values,
        "main_burner_coal_tph": 7.0,
        "calciner_coal_tph": 10.2,
        "rdf_tph": 6.5,
        "biomass_tph": 2.5,
    }
    cm_suffix, cm_kind, cm_roles, cm_values = _LINE[3]
    cm_roles = {**cm_roles, "clinker_feed_tph": ["clinker_feeder_tph"]}
    cm_values = {**cm_values, "clinker_feeder_tph": 105.0}
    _LINE = (
        (kiln_suffix, kind, roles, values),
        *_LINE[1:3],
        (cm_suffix, cm_kind, cm_roles, cm_values),
        *_LINE[4:],
    )
    kiln = {k: v for k, v in _PARAMS["kiln"].items() if k != "fuel_ncv_mj_per_kg"}
    kiln.update(design_ph_exit_o2_pct=3.1, design_clinker_temp_c=115.0)
    _PARAMS["kiln"] = kiln
    _PARAMS["cement_mill"] = {**_PARAMS["cement_mill"], "mic_moisture_pct": 2.0}


def _fuels_of(aid: str) -> list[dict[str, Any]]:
    """The three listed fuels of kiln ``aid`` (``--fuels``)."""
    return [
        {
            "name": "coal",
            "category": "fossil",
            "tph": [f"{aid}.main_burner_coal_tph", f"{aid}.calciner_coal_tph"],
            "ncv_mj_per_kg": 25.0,
            "co2_kg_per_gj": 96.0,
            "price_per_gj": 29.1,
            "marginal": True,
        },
        {
            "name": "rdf",
            "category": "alternative_fossil",
            "tph": f"{aid}.rdf_tph",
            "ncv_mj_per_kg": 16.0,
            "co2_kg_per_gj": 88.0,
            "biogenic_fraction": 0.45,
        },
        {"name": "biomass", "category": "biomass", "tph": f"{aid}.biomass_tph", "ncv_mj_per_kg": 12.0},
    ]


def build_config(n_tags: int) -> tuple[Config, list[str], np.ndarray]:
    """A site of kiln lines whose role tags add up to about ``n_tags`` (rest: unreferenced filler)."""
    per_line = sum(len(v) for _, _, _, v in _LINE)
    lines = max(1, (n_tags - 3) // per_line)
    tags: list[str] = []
    base: list[float] = []
    assets: list[dict[str, Any]] = []
    for i in range(1, lines + 1):
        for suffix, kind, roles, values in _LINE:
            aid = f"{suffix}{i}"
            for sig, v in values.items():
                tags.append(f"{aid}.{sig}")
                base.append(v)
            a: dict[str, Any] = {"id": aid, "type": kind, **_PARAMS[kind]}
            for role, sigs in roles.items():
                names = [f"{aid}.{s}" for s in sigs]
                a[role] = names[0] if len(names) == 1 else names
            if kind in ("raw_mill", "coal_mill", "whr") or (
                kind == "cement_mill" and "clinker_feed_tph" in roles
            ):
                a["kiln"] = f"kiln{i}"
            if kind == "kiln" and "fuel_tph" not in roles:
                a["fuels"] = _fuels_of(aid)
            assets.append(a)
    for sig, v in (
        ("incomer_kw", 25_000.0 * lines),
        ("compressor_kw", 800.0 * lines),
        ("production_running", 1.0),
    ):
        tags.append(f"plant.{sig}")
        base.append(v)
    assets.append(
        {
            "id": "plant",
            "type": "plant",
            "power_kw": "plant.incomer_kw",
            "compressor_kw": "plant.compressor_kw",
            "production_running": "plant.production_running",
        }
    )
    i = 0
    while len(tags) < n_tags:
        tags.append(f"misc.filler_{i}")
        base.append(50.0)
        i += 1
    sources = []
    for s in range(0, len(tags), 10_000):
        chunk = tags[s : s + 10_000]
        sources.append(
            {
                "name": f"plc{s // 10_000}",
                "type": "modbus",
                "host": "127.0.0.1",
                "tags": [{"name": t, "register": 2 * j} for j, t in enumerate(chunk)],
            }
        )
    agent: dict[str, Any] = {"site": "bench", "currency": "CNY", "grid_co2_kg_per_kwh": 0.5306}
    cfg = parse_config({"agent": agent, "sources": sources, "assets": assets})
    return cfg, tags, np.asarray(base)


def make_samples(
    tags: list[str], base: np.ndarray, start: datetime, seconds: int, *, seed: int = 1, enum: bool = True
) -> pl.DataFrame:
    """Time-major 1 Hz samples: every tag each second, 1 % noise, 0.1 % bad, one false-air leak."""
    rng = np.random.default_rng(seed)
    n = len(tags)
    t0 = int(start.timestamp()) * 1_000_000
    ts = np.repeat(t0 + np.arange(seconds, dtype=np.int64) * 1_000_000, n)
    codes = np.tile(np.arange(n, dtype=np.uint32), seconds)
    value = np.tile(base, seconds)
    value *= 1.0 + 0.01 * rng.standard_normal(value.shape[0])
    # line 1 develops a preheater leak after a third of the range (false air ~17 %)
    leak = tags.index("kiln1.ph_exit_o2_pct")
    third = seconds // 3 * n
    value[third + leak :: n] = 5.3
    qcode = np.asarray(rng.random(value.shape[0]) < 0.001).astype(np.uint8) * 2  # 2 = "bad"
    value[qcode == 2] = np.nan
    frame = pl.DataFrame(
        {
            "ts": pl.Series("ts", ts).cast(pl.Datetime("us", "UTC")),
            "tag": _codes_to(codes, tags),
            "value": pl.Series("value", value, nan_to_null=True),
            "quality": _codes_to(qcode, QUALITIES),
        }
    )
    if not enum:
        frame = frame.with_columns(pl.col("tag").cast(pl.String), pl.col("quality").cast(pl.String))
    return frame


def _codes_to(codes: np.ndarray, cats: list[str]) -> pl.Series:
    """Enum series from physical codes without materialising strings (a dictionary-encoded arrow array)."""
    import pyarrow as pa

    arr = pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.uint32)), pa.array(cats, pa.large_string()))
    return pl.Series(arr).cast(pl.Enum(cats))


def rss_mb() -> float:
    """High-water mark of this process's resident memory."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssSampler:
    """Largest resident set seen every 5 ms while the block runs (the evaluation's own peak)."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, current_rss_mb())
            self._stop.wait(0.005)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, current_rss_mb())


# ------------------------------------------------------------------------------ full pack (child)
def child_full(path: str, n_tags: int, enum: bool) -> dict[str, Any]:
    cfg, _, _ = build_config(n_tags)
    rules = load_rules(cfg.rule_settings())
    frame = pl.read_ipc(path)  # Arrow IPC keeps the Enum types
    if not enum:
        frame = frame.with_columns(pl.col("tag").cast(pl.String), pl.col("quality").cast(pl.String))
    data_mb = frame.estimated_size() / 2**20
    rss_loaded = current_rss_mb()
    sampler = RssSampler()
    with sampler:
        t, cpu = time.perf_counter(), time.process_time()
        result = evaluate_history(cfg.rule_settings(), frame, rules)
        secs, cpu = time.perf_counter() - t, time.process_time() - cpu
    return {
        "secs": secs,
        "cpu_secs": cpu,
        "rows": frame.height,
        "data_mb": data_mb,
        "rss_loaded_mb": rss_loaded,
        "peak_rss_mb": sampler.peak_mb,
        "load_peak_rss_mb": rss_mb(),
        "kpi_rows": result.kpi_rows.height,
        "events": len(result.events),
    }


def run_full(path: Path, n_tags: int, enum: bool, repeat: int) -> dict[str, Any]:
    runs = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, __file__, "--child-full", str(path), "--tags", str(n_tags)]
            + (["--child-enum"] if enum else [])
            + (["--fuels"] if _LINE[0][2].get("fuel_tph") is None else []),
            check=True,
            capture_output=True,
            text=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = dict(runs[0])
    best["secs"] = statistics.median(r["secs"] for r in runs)
    best["best_secs"] = min(r["secs"] for r in runs)
    best["cpu_secs"] = statistics.median(r["cpu_secs"] for r in runs)
    best["peak_rss_mb"] = statistics.median(r["peak_rss_mb"] for r in runs)
    best["rss_loaded_mb"] = statistics.median(r["rss_loaded_mb"] for r in runs)
    best["load_peak_rss_mb"] = statistics.median(r["load_peak_rss_mb"] for r in runs)
    best["runs"] = [round(r["secs"], 3) for r in runs]
    return best


# ------------------------------------------------------------------------------ per-row baseline
class PerRowPack:
    """The pack evaluated the straightforward way: a Python loop over samples, dicts per minute."""

    def __init__(self, cfg: Config, rules: list[Rule]) -> None:
        self.cfg = cfg
        self.model = AssetModel.build(cfg.rule_settings())
        self.assets = list(cfg.assets)
        self.rules = rules
        self.minute: dict[str, list[float]] = {}
        self.history: deque[dict[str, list[float]]] = deque(maxlen=60)
        self.states: dict[tuple[str, str], AlertState] = {}
        self.kpis: dict[tuple[int, str, str], float | None] = {}
        self.events = 0
        self.current: int | None = None

    def run(self, rows: Iterator[tuple[datetime, str, float | None, str]], *, final: bool = True) -> None:
        current = self.current
        for ts, tag, value, quality in rows:
            m = int(ts.timestamp()) // 60
            if m != current:
                if current is not None:
                    self.close_minute(current)
                current = m
            acc = self.minute.get(tag)
            if acc is None:
                acc = self.minute[tag] = [0.0, 0.0, 0.0]
            acc[2] += 1
            if quality == "good" and value is not None and math.isfinite(value):
                acc[0] += value
                acc[1] += 1
        self.current = current
        if final and current is not None:
            self.close_minute(current)

    def roles(self, stats: dict[str, list[float]]) -> dict[str, dict[str, float | None]]:
        out: dict[str, dict[str, float | None]] = {}
        for a in self.assets:
            vals: dict[str, float | None] = {}
            for role, tags in a.roles().items():
                means = [stats[t][0] / stats[t][1] if t in stats and stats[t][1] else None for t in tags]
                if any(v is None for v in means):
                    vals[role] = None
                elif role.endswith(("_tph", "_kw")):
                    vals[role] = sum(v for v in means if v is not None)
                else:
                    vals[role] = sum(v for v in means if v is not None) / len(means)
            out[a.id] = vals
        return out

    def compute(self, stats: dict[str, list[float]]) -> dict[str, dict[str, float | None]]:
        roles = self.roles(stats)
        kp: dict[str, dict[str, float | None]] = {}
        by_id = {a.id: a for a in self.assets}
        for a in self.assets:
            r, k = roles[a.id], {}
            if a.type == "kiln":
                f = a.feed_to_clinker or 1.0
                feed, fuel, power = r.get("kiln_feed_tph"), r.get("fuel_tph"), r.get("power_kw")
                cl = feed / f if feed is not None else None
                nominal = (a.nominal_feed_tph or 0.0) / f
                on = cl is not None and cl >= max(1.0, 0.05 * nominal)
                k["clinker_tph"] = cl
                heat = fuel * (a.fuel_ncv_mj_per_kg or 0.0) if fuel is not None else None
                k["heat_input_gj_per_h"] = heat
                shc = heat * 1000.0 / cl if on and heat is not None and cl else None
                k["specific_heat_mj_per_t_clinker"] = shc
                k["specific_heat_kcal_per_kg_clinker"] = shc / KJ_PER_KCAL if shc is not None else None
                k["clinker_coal_kgce_per_t"] = shc / MJ_PER_KGCE if shc is not None else None
                k["co2_kg_per_t_clinker"] = (
                    a.calcination_co2_kg_per_t + shc / 1000.0 * a.co2_kg_per_gj if shc else None
                )
                k["specific_power_kwh_per_t"] = power / cl if on and power is not None and cl else None
                k["power_kw"] = power
                o2o, o2i = r.get("ph_exit_o2_pct"), r.get("kiln_inlet_o2_pct")
                fa = (o2o - o2i) / (21.0 - o2o) * 100.0 if o2o is not None and o2i is not None else None
                k["preheater_false_air_pct"] = fa
                total = power / cl if on and power is not None and cl else None
                for b in self.assets:
                    if total is None or b.kiln != a.id:
                        continue
                    rb = roles[b.id]
                    if b.type == "raw_mill" and rb.get("feed_tph") and rb.get("power_kw") is not None:
                        total += (rb["power_kw"] or 0.0) / (rb["feed_tph"] or 1.0) * f  # type: ignore[operator]
                    elif b.type == "coal_mill" and rb.get("feed_tph") and rb.get("power_kw") is not None:
                        total += (
                            (rb["power_kw"] or 0.0) / (rb["feed_tph"] or 1.0) * (fuel or 0.0) / (cl or 1.0)
                        )  # type: ignore[operator]
                    elif (
                        b.type == "whr"
                        and rb.get("generator_kw") is not None
                        and rb.get("aux_kw") is not None
                    ):
                        total -= ((rb["generator_kw"] or 0.0) - (rb["aux_kw"] or 0.0)) / (cl or 1.0)
                k["clinker_power_kwh_per_t"] = total
                coal = k["clinker_coal_kgce_per_t"]
                k["clinker_energy_kgce_per_t"] = (
                    coal + total * KGCE_PER_KWH if coal is not None and total is not None else None
                )
            elif a.type in ("raw_mill", "coal_mill", "cement_mill"):
                feed, power = r.get("feed_tph"), r.get("power_kw")
                k["specific_power_kwh_per_t"] = (
                    power / feed if feed and feed >= 1.0 and power is not None else None
                )
                k["power_kw"], k["feed_tph"] = power, feed
                if a.type == "cement_mill":
                    k["fineness_blaine_cm2_per_g"] = r.get("fineness_blaine_cm2_per_g")
            elif a.type == "whr":
                gen, aux = r.get("generator_kw"), r.get("aux_kw")
                kiln = by_id[a.kiln or ""]
                kf = roles[kiln.id].get("kiln_feed_tph")
                kcl = kf / (kiln.feed_to_clinker or 1.0) if kf is not None else None
                net = gen - aux if gen is not None and aux is not None else None
                k["whr_net_kw"] = net
                k["whr_kwh_per_t_clinker"] = gen / kcl if gen is not None and kcl else None
                k["whr_net_kwh_per_t_clinker"] = net / kcl if net is not None and kcl else None
                r["kiln_feed_tph"], r["clinker_tph"] = kf, kcl
                r["nominal_feed_tph"] = kiln.nominal_feed_tph
            elif a.type == "plant":
                p, c = r.get("power_kw"), r.get("compressor_kw")
                k["power_kw"] = p
                k["compressor_share_pct"] = c / p * 100.0 if c is not None and p else None
            kp[a.id] = {**r, **k}
        return kp

    def close_minute(self, m: int) -> None:
        stats, self.minute = self.minute, {}
        self.history.append(stats)
        current = self.compute(stats)
        for aid, vals in current.items():
            for name, v in vals.items():
                self.kpis[(m, aid, name)] = v
        hourly: dict[str, list[float]] = {}
        for h in self.history:  # rolling 60 min for the windowed rules
            for tag, (s, g, n) in h.items():
                acc = hourly.setdefault(tag, [0.0, 0.0, 0.0])
                acc[0] += s
                acc[1] += g
                acc[2] += n
        rolling = self.compute(hourly)
        now = datetime.fromtimestamp((m + 1) * 60, tz=UTC)
        for rule in self.rules:
            frame = rolling if rule.window_secs and rule.window_secs > 60 else current
            for a in self.assets:
                if not rule.applies_to(a.id, a.type):
                    continue
                names: dict[str, float | None] = {**frame[a.id], **_params(a)}
                now_names: dict[str, float | None] = {**current[a.id], **_params(a)}
                when = evaluate_scalar(rule.when.tree, names)
                clear = evaluate_scalar(rule.clear.tree, names) if rule.clear else when is not True
                supp = evaluate_scalar(rule.suppress_when.tree, now_names) if rule.suppress_when else False
                st = self.states.setdefault((rule.id, a.id), AlertState())
                obs = Observation(when is True, clear if clear is None else bool(clear), bool(supp))
                if step(st, now, obs, rule.for_secs) is not None:
                    self.events += 1


def _params(a: Any) -> dict[str, float | None]:
    nominal = a.nominal_feed_tph
    clinker = nominal / a.feed_to_clinker if nominal and a.feed_to_clinker else None
    base = clinker if a.type == "kiln" else nominal
    return {
        "nominal_feed_tph": nominal,
        "nominal_clinker_tph": clinker,
        "target_specific_heat_kcal_per_kg": a.target_specific_heat_kcal_per_kg,
        "design_ph_exit_temp_c": a.design_ph_exit_temp_c,
        "rated_power_kw": a.rated_power_kw,
        "typical_specific_power_kwh_per_t": {"raw_mill": 26.0, "coal_mill": 40.0, "cement_mill": 40.0}.get(
            a.type
        ),
        "min_product_tph": max(1.0, 0.05 * (base or 0.0)),
        "production_running": None,
    }


def run_baseline(cfg: Config, frame: pl.DataFrame, warm_until: datetime) -> tuple[float, int, PerRowPack]:
    """Time the per-row pack on the rows from ``warm_until`` on, after it has seen the rows before.

    The warm-up fills its rolling hour, so the timed part pays the steady-state cost per minute.
    """
    rules = load_rules(cfg.rule_settings())
    pack = PerRowPack(cfg, rules)
    rows = frame.select("ts", pl.col("tag").cast(pl.String), "value", pl.col("quality").cast(pl.String))
    warm = rows.filter(pl.col("ts") < warm_until)
    timed = rows.filter(pl.col("ts") >= warm_until)
    pack.run(warm.iter_rows(), final=False)
    t = time.perf_counter()
    pack.run(timed.iter_rows())
    return time.perf_counter() - t, timed.height, pack


def compare(pack: PerRowPack, kpis: pl.DataFrame) -> tuple[int, float]:
    """Number of 1-min KPI values compared and the largest relative difference."""
    worst, n = 0.0, 0
    one = kpis.filter(pl.col("window_secs") == 60, pl.col("value").is_not_null())
    for ts, asset, kpi, value in one.select("ts", "asset", "kpi", "value").iter_rows():
        ref = pack.kpis.get((int(ts.timestamp()) // 60, asset, kpi))
        if ref is None:
            continue
        n += 1
        worst = max(worst, abs(value - ref) / max(abs(ref), 1e-9))
    return n, worst


# ------------------------------------------------------------------------------ per tick
def run_ticks(
    n_tags: int,
    warm_minutes: int,
    measure_minutes: int,
    every_secs: int,
    window_minutes: int = 3,
    *,
    string_tags: bool = False,
    freeze: bool = True,
) -> dict[str, Any]:
    """Tick every ``every_secs`` after a warm-up; the window is built as the agent builds it.

    The agent hands the engine its window with ``tag`` already as the engine's Enum
    (``RuleEngine.tag_dtype``); ``string_tags`` measures the engine casting plain strings instead.
    Every tick counts in the median and p95, including those that close 1-min/15-min/hourly windows.
    """
    cfg, tags, base = build_config(n_tags)
    engine = RuleEngine(cfg.rule_settings())
    model = engine.model
    if freeze:
        gc.collect()
        gc.freeze()  # as the agent does once it has started (agent.pipeline.Agent.run)
    keep = [t for t in tags if t in model.tags]  # the agent keeps only rule-relevant tags in the window
    keep_base = base[[tags.index(t) for t in keep]]
    chunks: deque[pl.DataFrame] = deque()
    chunk_secs = every_secs
    window_secs = window_minutes * 60
    times: list[float] = []
    boundary: list[float] = []
    t = START
    total = (warm_minutes + measure_minutes) * 60
    for seed, k in enumerate(range(0, total, chunk_secs), start=1):
        chunk = make_samples(keep, keep_base, t, chunk_secs, seed=seed, enum=False)
        if not string_tags:
            chunk = chunk.with_columns(pl.col("tag").cast(engine.tag_dtype))
        chunks.append(chunk)
        while len(chunks) > window_secs // chunk_secs:
            chunks.popleft()
        t = START + timedelta(seconds=k + chunk_secs)
        window = pl.concat(list(chunks), how="vertical", rechunk=True)
        t0 = time.perf_counter()
        result = engine.tick(window, t)
        dt = time.perf_counter() - t0
        if k >= warm_minutes * 60:
            times.append(dt)
            if result.kpi_rows.height:
                boundary.append(dt)
    ordered = sorted(times)
    return {
        "tags": n_tags,
        "role_tags": len(keep),
        "assets": len(cfg.assets),
        "rules_pairs": sum(len(c.assets) for cs in engine._groups.values() for c in cs),
        "window_rows": window.height,
        "median_ms": 1e3 * statistics.median(times),
        "p95_ms": 1e3 * ordered[int(0.95 * (len(ordered) - 1))],
        "max_ms": 1e3 * ordered[-1],
        "boundary_median_ms": 1e3 * statistics.median(boundary) if boundary else float("nan"),
        "boundary_max_ms": 1e3 * max(boundary) if boundary else float("nan"),
        "ticks": len(times),
        "closing_ticks": len(boundary),
        "tag_type": "String" if string_tags else "Enum",
    }


# ------------------------------------------------------------------------------ main
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2 h of data, 2,000 tags per tick: a minute or two")
    p.add_argument("--tags", type=int, default=500)
    p.add_argument("--hours", type=float, default=None)
    p.add_argument("--tick-tags", type=int, default=None)
    p.add_argument("--baseline-minutes", type=int, default=None)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument(
        "--tick-window-minutes", type=int, default=3, help="minutes of samples handed to each tick"
    )
    p.add_argument(
        "--tick-string-tags", action="store_true", help="hand ticks plain String tags (the engine casts them)"
    )
    p.add_argument("--no-gc-freeze", action="store_true", help="leave start-up objects to the cyclic GC")
    p.add_argument("--child-full", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-enum", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--skip", default="", help="comma list of full,baseline,tick to skip")
    p.add_argument(
        "--fuels", action="store_true", help="kilns with three listed fuels, loss split and money KPIs on"
    )
    args = p.parse_args()
    if args.fuels:
        use_fuels()
    if args.child_full:
        print(json.dumps(child_full(args.child_full, args.tags, args.child_enum)))
        return
    hours = args.hours if args.hours is not None else (2.0 if args.quick else 24.0)
    tick_tags = args.tick_tags if args.tick_tags is not None else (2_000 if args.quick else 10_000)
    base_minutes = args.baseline_minutes if args.baseline_minutes is not None else (5 if args.quick else 15)
    repeat = 1 if args.quick else args.repeat
    skip = set(args.skip.split(","))
    load = os.getloadavg()
    print(
        f"# rules bench: {platform.python_version()}, polars {pl.__version__}, {os.cpu_count()} cores, load {load[0]:.2f}"
    )
    cfg, tags, base = build_config(args.tags)
    seconds = int(hours * 3600)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kw-bench-") as tmp:
        path = Path(tmp) / "samples.arrow"
        t = time.perf_counter()
        frame = make_samples(tags, base, START, seconds)
        gen = time.perf_counter() - t
        frame.write_ipc(path, compression="uncompressed")
        n = frame.height
        print(f"data: {n:,} samples ({hours:g} h x {len(tags)} tags at 1 Hz), generated in {gen:.1f} s")
        del frame
        if "full" not in skip:
            for enum in (True, False):
                r = run_full(path, args.tags, enum, repeat)
                key = "enum" if enum else "string"
                out[f"full_{key}"] = r
                print(
                    f"full pack ({key} tag/quality): median {r['secs']:.2f} s {r['runs']} "
                    f"(best {r['best_secs']:.2f} s, {r['cpu_secs']:.2f} CPU-s on 2 cores), "
                    f"{r['rows'] / r['secs'] / 1e6:.1f} M samples/s; RSS {r['rss_loaded_mb']:.0f} MB with the "
                    f"data loaded ({r['data_mb']:.0f} MB of it the frame), peak during evaluation "
                    f"{r['peak_rss_mb']:.0f} MB, process high-water mark {r['load_peak_rss_mb']:.0f} MB "
                    "(includes reading the file); "
                    f"{r['kpi_rows']:,} KPI rows, {r['events']} alert events"
                )
        if "baseline" not in skip:
            warm_minutes = 10 if args.quick else 60
            sl = make_samples(tags, base, START, (warm_minutes + base_minutes) * 60, seed=7)
            secs, timed_rows, pack = run_baseline(cfg, sl, START + timedelta(minutes=warm_minutes))
            t = time.perf_counter()
            vec = evaluate_history(cfg.rule_settings(), sl)
            vsecs = time.perf_counter() - t
            nvals, worst = compare(pack, vec.kpi_rows)
            per_sample = secs / timed_rows
            extrapolated = per_sample * n
            out["baseline"] = {"slice_rows": timed_rows, "secs": secs, "extrapolated_secs": extrapolated}
            print(
                f"per-row Python: {timed_rows:,} samples ({base_minutes} min after a {warm_minutes}-min warm-up) "
                f"in {secs:.2f} s = {per_sample * 1e6:.2f} us/sample -> {extrapolated:.0f} s extrapolated to "
                f"{n:,}; vectorised over the whole slice ({sl.height:,} samples) {vsecs:.2f} s; "
                f"{nvals:,} 1-min KPI values agree to {worst:.1e} (max relative difference)"
            )
            for key in ("full_enum", "full_string"):
                if key in out:
                    r = out[key]
                    print(
                        f"  ratio per-row / vectorised ({key}): {extrapolated / r['secs']:.0f}x on the median, "
                        f"{extrapolated / r['best_secs']:.0f}x on the best run"
                    )
        for tick_n in [] if "tick" in skip else sorted({tick_tags, tick_tags // 5}, reverse=True):
            warm = 10 if args.quick else 62
            r = run_ticks(
                tick_n,
                warm,
                5 if args.quick else 10,
                10,
                args.tick_window_minutes,
                string_tags=args.tick_string_tags,
                freeze=not args.no_gc_freeze,
            )
            out[f"tick_{tick_n}"] = r
            print(
                f"per tick at {r['tags']:,} tags ({r['role_tags']:,} role tags, {r['assets']} assets, "
                f"{r['rules_pairs']} rule/asset pairs, window {r['window_rows']:,} rows, tag as "
                f"{r['tag_type']}): all {r['ticks']} ticks median {r['median_ms']:.1f} ms, p95 "
                f"{r['p95_ms']:.1f} ms, max {r['max_ms']:.1f} ms; the {r['closing_ticks']} ticks that "
                f"close windows: median {r['boundary_median_ms']:.1f} ms, max {r['boundary_max_ms']:.1f} ms"
            )
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
