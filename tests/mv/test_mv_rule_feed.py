"""The daemon feeds each mill's live M&V baseline deviation to the rule engine (docs/kpis.md §8).

``mill.specific_power.above_baseline``: kWh/t over the last hour > EnB prediction x 1.10, i.e.
``baseline_deviation_pct`` > 10. The baseline is docs/kpis.md §7 example 3 (one day per example month),
fitted from stored samples exactly as ``kilnwatch baseline fit`` does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mv_helpers import EX3_E, EX3_P, constant_samples

from agent import mv_store, storage
from agent.config import parse_config
from agent.pipeline import Agent

SITE = "plant1"


def _config() -> Any:
    return parse_config(
        {
            "agent": {
                "site": SITE,
                "db_path": "unused.duckdb",
            },  # the tests hand the agent an in-memory connection
            "sources": [
                {
                    "name": "plc1",
                    "type": "modbus",
                    "host": "127.0.0.1",
                    "tags": [
                        {"name": "rawmill1.power_kw", "register": 0},
                        {"name": "rawmill1.feed_tph", "register": 2},
                    ],
                }
            ],
            "assets": [
                {
                    "id": "rawmill1",
                    "type": "raw_mill",
                    "power_kw": "rawmill1.power_kw",
                    "feed_tph": "rawmill1.feed_tph",
                    "rated_power_kw": 12_000.0,
                    "nominal_feed_tph": 9_000.0,
                }
            ],
        }
    )


@pytest.mark.asyncio
async def test_last_hour_20_pct_above_the_baseline_is_fed_to_the_engine_and_alerts() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    con = storage.connect(":memory:")
    agent = Agent(_config(), connectors=[], con=con)
    # 12 baseline days of example 3 (E MWh and P kt per day), ending two days ago
    day, step = timedelta(days=1), timedelta(minutes=10)
    t0 = datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(days=14)
    power = [e * 1000 / 24 for e in EX3_E]
    feed = [p * 1000 / 24 for p in EX3_P]
    storage.insert_samples(con, SITE, constant_samples("rawmill1.power_kw", t0, power, day, step))
    storage.insert_samples(con, SITE, constant_samples("rawmill1.feed_tph", t0, feed, day, step))
    b, _ = mv_store.fit_from_db(
        con,
        site=SITE,
        asset="rawmill1",
        target="power_kw",
        drivers=["feed_tph"],
        start=t0,
        end=t0 + 12 * day,
        granularity="day",
    )
    mv_store.store_baseline(con, b)
    assert b.intercept == pytest.approx(830.7e3, rel=1e-3)  # docs/kpis.md §7 example 3: 830.7 MWh
    assert b.coefficients[0] == pytest.approx(15.34, rel=1e-3)  # 15.34 kWh/t
    # last hour: 8,000 t/h (= 192 kt per day-equivalent), drawing 20 % more than predicted.
    # Hand calculation: expected per day = 830.7e3 + 15.34 x 192e3 = 3,776e3 kWh -> 157.3 MW;
    # the mill draws 1.2 x that, so the deviation is +20.0 %.
    expected_day = b.intercept + b.coefficients[0] * 8000 * 24
    hour_start = now - timedelta(hours=1)
    storage.insert_samples(
        con,
        SITE,
        constant_samples(
            "rawmill1.feed_tph", hour_start, [8000.0], timedelta(hours=1), timedelta(seconds=10)
        ),
    )
    storage.insert_samples(
        con,
        SITE,
        constant_samples(
            "rawmill1.power_kw",
            hour_start,
            [1.2 * expected_day / 24],
            timedelta(hours=1),
            timedelta(seconds=10),
        ),
    )
    agent._start_engine()
    await agent.evaluate(now)
    dev = agent.view.latest_kpis["rawmill1"]["baseline_deviation_pct"]
    assert dev[1] == "%" and dev[0] == pytest.approx(20.0, abs=0.05)
    # the rule runs on the fed value: pending now, firing once `for` = 15 min has passed
    await agent.evaluate(now + timedelta(minutes=15, seconds=10))
    firing = [e for e in agent.view.open_alerts.values() if e.rule == "mill.specific_power.above_baseline"]
    assert len(firing) == 1 and firing[0].value == pytest.approx(20.0, abs=0.05)
    stored = con.execute(
        "SELECT state, threshold FROM alerts WHERE rule = 'mill.specific_power.above_baseline'"
    ).fetchall()
    assert stored == [("firing", 10.0)]


@pytest.mark.asyncio
async def test_mill_without_a_baseline_reads_null_and_never_alerts() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    con = storage.connect(":memory:")
    agent = Agent(_config(), connectors=[], con=con)
    agent._start_engine()
    await agent.evaluate(now)
    await agent.evaluate(now + timedelta(minutes=30))
    assert "baseline_deviation_pct" not in agent.view.latest_kpis.get("rawmill1", {})
    assert not [e for e in agent.view.open_alerts.values() if e.rule == "mill.specific_power.above_baseline"]
