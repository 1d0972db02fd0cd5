"""Golden cases: ``cases/<case>/{config.toml, signals.csv, expected_kpis.csv, expected_alerts.csv}``.

Each case is replayed through ``RuleEngine.tick`` every ``agent.evaluate_every_secs`` (the agent's
cadence) over its signals; every KPI row and alert event must match the expected files. A case's
``config.toml`` says what it shows. After a deliberate change, refresh the expected files with
``KILNWATCH_UPDATE_GOLDEN=1 .venv/bin/pytest tests/rules/test_rules_golden.py`` and review the diff.
"""

from __future__ import annotations

import csv
import os
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from rules_support import tick_through

from agent.config import load_config
from connectors.base import SAMPLE_SCHEMA
from rules.engine import RuleEngine
from rules.packs import load_rules

CASES = Path(__file__).resolve().parent / "cases"
UPDATE = os.environ.get("KILNWATCH_UPDATE_GOLDEN") == "1"
KPI_COLUMNS = ["ts", "asset", "kpi", "window_secs", "value", "unit", "good_fraction", "reason"]
ALERT_COLUMNS = [
    "ts",
    "alert_id",
    "asset",
    "rule",
    "severity",
    "state",
    "value",
    "threshold",
    "unit",
    "message",
]


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.8g}"


def read_signals(path: Path) -> pl.DataFrame:
    raw = pl.read_csv(
        path, schema={"ts": pl.String, "tag": pl.String, "value": pl.Float64, "quality": pl.String}
    )
    return raw.with_columns(pl.col("ts").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC")).cast(
        SAMPLE_SCHEMA  # type: ignore[arg-type]
    )


def kpi_lines(rows: pl.DataFrame) -> list[list[str]]:
    out = []
    for r in rows.sort("ts", "window_secs", "asset", "kpi").iter_rows(named=True):
        out.append(
            [
                r["ts"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                r["asset"],
                r["kpi"],
                str(r["window_secs"]),
                _num(r["value"]),
                r["unit"],
                f"{r['good_fraction']:.4f}",
                r["reason"] or "",
            ]
        )
    return out


def alert_lines(events: list) -> list[list[str]]:  # type: ignore[type-arg]
    return [
        [
            e.ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            e.alert_id,
            e.asset,
            e.rule,
            e.severity,
            e.state,
            _num(e.value),
            _num(e.threshold),
            e.unit,
            e.message,
        ]
        for e in events
    ]


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if (p / "config.toml").exists()))
def test_golden_case(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = CASES / case
    monkeypatch.chdir(folder)  # rule_files are relative to the case
    cfg = load_config(folder / "config.toml")
    engine = RuleEngine(cfg.rule_settings(), load_rules(cfg.rule_settings()))
    signals = read_signals(folder / "signals.csv")
    period = cfg.agent.evaluate_every_secs
    first, last = signals["ts"].min(), signals["ts"].max()
    assert isinstance(first, datetime) and isinstance(last, datetime)
    rows, events, _ = tick_through(
        engine,
        signals,
        start=first + timedelta(seconds=period),
        end=last + timedelta(minutes=1),
        every_secs=period,
        keep_secs=cfg.agent.window_secs,
    )
    got_kpis, got_alerts = kpi_lines(rows), alert_lines(events)
    if UPDATE:
        write_csv(folder / "expected_kpis.csv", KPI_COLUMNS, got_kpis)
        write_csv(folder / "expected_alerts.csv", ALERT_COLUMNS, got_alerts)
    header, want_kpis = read_csv(folder / "expected_kpis.csv")
    assert header == KPI_COLUMNS
    header, want_alerts = read_csv(folder / "expected_alerts.csv")
    assert header == ALERT_COLUMNS
    assert got_alerts == want_alerts
    assert len(got_kpis) == len(want_kpis)
    for got, want in zip(got_kpis, want_kpis, strict=True):
        assert got == want, f"{case}: KPI row differs"
