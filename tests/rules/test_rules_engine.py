"""RuleEngine.tick: windows emitted once after they close, current values, alerts, restart."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from rules_support import (
    EXAMPLE1_KILN,
    EXAMPLE1_VALUES,
    T0,
    frame,
    kpi_value,
    make_config,
    samples,
    tick_through,
)

from rules import engine as engine_module
from rules.alerts import AlertEvent
from rules.constants import ALLOWED_LATENESS_SECS
from rules.engine import RuleEngine
from rules.history import evaluate_history
from rules.kpi import compute_kpis
from rules.packs import load_rules, parse_rule_pack

KILN = {**EXAMPLE1_KILN, "target_specific_heat_kcal_per_kg": 850.0}
MILL = {
    "id": "cm1",
    "type": "cement_mill",
    "feed_tph": "cm1.feed_tph",
    "power_kw": "cm1.power_kw",
    "rated_power_kw": 5000.0,
    "nominal_feed_tph": 150.0,
}
MILL_ON = {"cm1.feed_tph": 148.0, "cm1.power_kw": 4630.0}
MILL_EMPTY = {"cm1.feed_tph": 0.2, "cm1.power_kw": 4000.0}  # < 5 % of nominal feed, 80 % rated power


def mill_engine() -> RuleEngine:
    return RuleEngine(make_config([MILL]).rule_settings())


def test_each_window_is_emitted_once_after_it_closes_with_ts_at_its_start() -> None:
    engine = mill_engine()
    data = samples(MILL_ON, seconds=20 * 60, every=5)
    end = T0 + timedelta(minutes=20)
    rows, _, results = tick_through(engine, data, start=T0 + timedelta(seconds=10), end=end, every_secs=10)
    one = rows.filter(pl.col("window_secs") == 60, pl.col("kpi") == "feed_tph")
    assert one["ts"].to_list() == [T0 + timedelta(minutes=m) for m in range(19)]  # [19, 20) not closed yet
    assert rows.select("ts", "asset", "kpi", "window_secs").is_duplicated().sum() == 0
    fifteen = rows.filter(pl.col("window_secs") == 900)
    assert set(fifteen["ts"].to_list()) == {T0}
    # a window appears only at the first tick at or after its end + the allowed lateness
    now = T0 + timedelta(seconds=10)
    for r in results:
        for ts, w in r.kpi_rows.select("ts", "window_secs").unique().iter_rows():
            assert ts + timedelta(seconds=w + ALLOWED_LATENESS_SECS) <= now
            assert now - timedelta(seconds=10) < ts + timedelta(seconds=w + ALLOWED_LATENESS_SECS)
        now += timedelta(seconds=10)


def test_a_final_tick_closes_the_windows_that_ended_without_the_lateness_grace() -> None:
    """A clean stop 2 s after a minute boundary: the last minute is not lost to the 5 s grace."""
    data = samples(MILL_ON, seconds=62, every=1)  # the sources stop at T0 + 62 s
    stop = T0 + timedelta(seconds=62)
    assert stop < T0 + timedelta(seconds=60 + ALLOWED_LATENESS_SECS)
    engine = mill_engine()
    engine.tick(data.filter(pl.col("ts") < T0 + timedelta(seconds=30)), T0 + timedelta(seconds=30))
    assert engine.tick(data, stop).kpi_rows.height == 0  # within the grace: an ordinary tick waits
    final = engine.tick(data, stop, final=True).kpi_rows
    # the minute [T0, T0 + 60 s) closes; [60 s, 62 s) stays open
    assert set(final.select("ts", "window_secs").unique().iter_rows()) == {(T0, 60)}
    waited = mill_engine().tick(data, T0 + timedelta(seconds=60 + ALLOWED_LATENESS_SECS)).kpi_rows
    assert_frame_equal(final.sort("asset", "kpi"), waited.sort("asset", "kpi"))  # what a later tick gives
    assert engine.tick(data, stop + timedelta(seconds=10)).kpi_rows.height == 0  # never emitted twice


def test_emitted_rows_equal_the_batch_computation() -> None:
    engine = RuleEngine(make_config([KILN, MILL]).rule_settings())
    data = pl.concat(
        [
            samples({**EXAMPLE1_VALUES, **MILL_ON}, seconds=600, every=5),
            samples(
                {**EXAMPLE1_VALUES, **MILL_EMPTY}, start=T0 + timedelta(seconds=600), seconds=1320, every=5
            ),
        ]
    )
    rows, _, _ = tick_through(engine, data, start=T0, end=T0 + timedelta(minutes=33), every_secs=30)
    for w in (60, 900):
        got = rows.filter(pl.col("window_secs") == w).sort("ts", "asset", "kpi")
        want = compute_kpis(engine.settings, data, w).sort("ts", "asset", "kpi")
        want = want.filter(pl.col("ts") <= got["ts"].max())
        assert_frame_equal(got, want, check_exact=False, rel_tol=1e-9)


def test_latest_holds_the_current_minute_and_units() -> None:
    engine = RuleEngine(make_config([KILN]).rule_settings())
    data = samples(EXAMPLE1_VALUES, seconds=120, every=5)
    result = engine.tick(data, T0 + timedelta(seconds=120))
    value, unit = result.latest["kiln1"]["specific_heat_kcal_per_kg_clinker"]
    assert value == pytest.approx(902.3067, rel=1e-6) and unit == "kcal/kg"
    clinker, unit = result.latest["kiln1"]["clinker_tph"]
    assert clinker == pytest.approx(112.5) and unit == "t/h"
    assert "kiln1" in result.grades and "fails grade 3" in str(result.grades["kiln1"])


FEED_HIGH = """
[[rule]]
id = "test.feed_high"
asset_type = "cement_mill"
when = "feed_tph > 100"
for = "0s"
"""


def _step_latency(current_window_secs: int | None, *, step_at: int = 303, every_secs: int = 10) -> float:
    """Data-time seconds from a feed step 50 -> 150 t/h (threshold 100, halfway) to the alert firing."""
    rules, _, problems = parse_rule_pack(FEED_HIGH, "test.toml")
    assert not problems
    agent = {} if current_window_secs is None else {"current_window_secs": current_window_secs}
    engine = RuleEngine(make_config([MILL], **agent).rule_settings(), rules)
    before = samples({"cm1.feed_tph": 50.0, "cm1.power_kw": 4000.0}, seconds=step_at)
    after = samples(
        {"cm1.feed_tph": 150.0, "cm1.power_kw": 4000.0}, start=T0 + timedelta(seconds=step_at), seconds=300
    )
    _, events, _ = tick_through(
        engine,
        pl.concat([before, after]),
        start=T0 + timedelta(seconds=60),
        end=T0 + timedelta(seconds=600),
        every_secs=every_secs,
        keep_secs=300,
    )
    assert [e.state for e in events] == ["firing"]
    return (events[0].ts - (T0 + timedelta(seconds=step_at))).total_seconds()


def test_current_window_secs_sets_how_soon_a_step_change_fires_a_rule_without_window() -> None:
    """docs/rules.md "Alert latency": a rule without ``window`` sees a step after f x current_window
    (f = where the threshold lies within the step, 0.5 here), then waits for the next tick (< E),
    then ``for``: latency in [f W + for, f W + for + E + sample period)."""
    short, default, explicit_60 = _step_latency(10), _step_latency(None), _step_latency(60)
    assert 5 <= short < 5 + 10 + 1
    assert 30 <= default < 30 + 10 + 1  # the 60 s default is unchanged
    assert explicit_60 == default
    # exactly: the step at 303 s; ticks every 10 s from 60 s; the first tick with more than half of
    # the window after the step is 310 s (7 of 10 samples) and 340 s (37 of 60)
    assert (short, default) == (7.0, 37.0)
    assert _step_latency(10, every_secs=2) == 7.0  # 308 s holds exactly half: mean 100 is not > 100


def test_latest_follows_the_current_window() -> None:
    engine = RuleEngine(make_config([MILL], current_window_secs=10).rule_settings())
    before = samples({"cm1.feed_tph": 50.0}, seconds=55)
    after = samples({"cm1.feed_tph": 150.0}, start=T0 + timedelta(seconds=55), seconds=5)
    result = engine.tick(pl.concat([before, after]), T0 + timedelta(seconds=60))
    assert result.latest["cm1"]["feed_tph"][0] == pytest.approx(100.0)  # [50 s, 60 s): half each
    default = RuleEngine(make_config([MILL]).rule_settings())
    result = default.tick(pl.concat([before, after]), T0 + timedelta(seconds=60))
    assert result.latest["cm1"]["feed_tph"][0] == pytest.approx((55 * 50 + 5 * 150) / 60)


def test_a_tag_silent_for_longer_than_stale_after_counts_as_no_data() -> None:
    engine = RuleEngine(make_config([MILL], stale_after_secs=20).rule_settings())
    fresh = samples({"cm1.power_kw": 4630.0}, seconds=60, every=5)
    old_feed = samples({"cm1.feed_tph": 148.0}, seconds=30, every=5)  # last good feed sample at 25 s
    result = engine.tick(pl.concat([fresh, old_feed]).sort("ts"), T0 + timedelta(seconds=60))
    assert result.latest["cm1"]["feed_tph"][0] is None
    assert result.latest["cm1"]["power_kw"][0] == pytest.approx(4630.0)


def test_rows_out_of_order_within_the_disorder_allowance_all_count() -> None:
    engine = mill_engine()
    a = samples({"cm1.feed_tph": 148.0}, seconds=120, every=5)
    b = samples({"cm1.power_kw": 4630.0}, seconds=120, every=5)
    # source b's frames arrive 3 s late: interleave chunks so rows are not strictly time-ordered
    chunks = []
    for s in range(0, 120, 10):
        chunks.append(
            a.filter(pl.col("ts") >= T0 + timedelta(seconds=s), pl.col("ts") < T0 + timedelta(seconds=s + 10))
        )
        chunks.append(
            b.filter(
                pl.col("ts") >= T0 + timedelta(seconds=s - 3), pl.col("ts") < T0 + timedelta(seconds=s + 7)
            )
        )
    window = pl.concat(chunks)
    rows = []
    for k in range(1, 14):
        now = T0 + timedelta(seconds=10 * k)
        rows.append(engine.tick(window.filter(pl.col("ts") < now - timedelta(seconds=3)), now).kpi_rows)
    out = pl.concat(rows)
    first = kpi_value(out, "cm1", "power_kw", ts=T0)
    assert first["value"] == pytest.approx(4630.0) and first["good_fraction"] == 1.0
    assert kpi_value(out, "cm1", "feed_tph", ts=T0)["value"] == pytest.approx(148.0)


def test_mill_running_empty_fires_after_ten_minutes_and_resolves_with_the_same_id() -> None:
    engine = mill_engine()
    data = pl.concat(
        [
            samples(MILL_ON, seconds=300, every=5),
            samples(MILL_EMPTY, start=T0 + timedelta(seconds=300), seconds=900, every=5),
            samples(MILL_ON, start=T0 + timedelta(seconds=1200), seconds=300, every=5),
        ]
    )
    _, all_events, _ = tick_through(engine, data, start=T0, end=T0 + timedelta(seconds=1500), every_secs=10)
    events = [e for e in all_events if e.rule == "mill.running_empty"]
    assert [e.state for e in events] == ["firing", "resolved"]
    fired, resolved = events
    # the 1-min mean is below 7.5 t/h from about 360 s on; + 10 min
    assert T0 + timedelta(seconds=360 + 600) <= fired.ts <= T0 + timedelta(seconds=360 + 600 + 20)
    assert fired.alert_id == f"p1:cm1:mill.running_empty:{fired.started_at:%Y%m%dT%H%M%SZ}"
    assert resolved.alert_id == fired.alert_id and resolved.resolved_at == resolved.ts
    assert fired.severity == "warning" and fired.unit == "t/h"
    # threshold = min_product_tph = max(1 t/h, 5 % of the 150 t/h nominal feed)
    assert fired.value == pytest.approx(0.2) and fired.threshold == pytest.approx(7.5)
    assert fired.message.startswith("Mill running empty: feed 0.2 t/h (< 7.5)")
    # the rolling-hour kWh/t rule is suppressed while the mill has no feed: one alert, not two
    assert [e for e in all_events if e.rule != "mill.running_empty"] == []


def test_restart_restores_the_open_episode_without_firing_again() -> None:
    data = samples(MILL_EMPTY, seconds=1500, every=5)
    first = RuleEngine(
        make_config([MILL]).rule_settings(),
        [r for r in load_rules(make_config([MILL]).rule_settings()) if r.id == "mill.running_empty"],
    )
    _, events, _ = tick_through(first, data, start=T0, end=T0 + timedelta(seconds=900), every_secs=20)
    assert [e.state for e in events] == ["firing"]
    open_alerts = first.open_alerts()
    assert [a.alert_id for a in open_alerts] == [events[0].alert_id]

    second = RuleEngine(make_config([MILL]).rule_settings(), first.rules)
    second.restore(open_alerts)
    _, again, _ = tick_through(
        second, data, start=T0 + timedelta(seconds=900), end=T0 + timedelta(seconds=1500), every_secs=20
    )
    assert again == []  # the episode continues, nothing is published twice
    assert [a.alert_id for a in second.open_alerts()] == [events[0].alert_id]

    recovered = samples(MILL_ON, start=T0 + timedelta(seconds=1500), seconds=120, every=5)
    _, later, _ = tick_through(
        second,
        pl.concat([data, recovered]),
        start=T0 + timedelta(seconds=1510),
        end=T0 + timedelta(seconds=1620),
        every_secs=10,
    )
    assert [(e.state, e.alert_id) for e in later] == [("resolved", events[0].alert_id)]


def test_restored_alert_of_a_removed_rule_is_resolved_once() -> None:
    engine = mill_engine()
    ghost = AlertEvent(
        alert_id="p1:cm1:old.rule:20260101T000000Z",
        site="p1",
        asset="cm1",
        rule="old.rule",
        severity="info",
        state="firing",
        value=1.0,
        threshold=0.5,
        unit="",
        started_at=T0 - timedelta(days=4),
        ts=T0 - timedelta(days=4),
        message="x",
    )
    engine.restore([ghost])
    r1 = engine.tick(samples(MILL_ON, seconds=10), T0 + timedelta(seconds=10))
    r2 = engine.tick(samples(MILL_ON, seconds=20), T0 + timedelta(seconds=20))
    assert [(e.alert_id, e.state) for e in r1.events] == [(ghost.alert_id, "resolved")]
    assert r2.events == []


def test_suppression_resolves_while_the_kiln_is_stopped() -> None:
    kiln = {**KILN, "target_specific_heat_kcal_per_kg": 800.0}
    engine = RuleEngine(make_config([kiln]).rule_settings())
    stop = {**EXAMPLE1_VALUES, "kiln1.feed_tph": 50.0}  # 25 % of nominal feed: start-up, suppressed
    data = pl.concat(
        [
            samples(EXAMPLE1_VALUES, seconds=2400, every=10),
            samples(stop, start=T0 + timedelta(seconds=2400), seconds=300, every=10),
        ]
    )
    _, events, _ = tick_through(engine, data, start=T0, end=T0 + timedelta(seconds=2700), every_secs=30)
    by_rule = [(e.rule, e.state) for e in events]
    assert ("kiln.specific_heat.high", "firing") in by_rule
    assert ("kiln.specific_heat.high", "resolved") in by_rule
    fired = next(e for e in events if e.rule == "kiln.specific_heat.high")
    assert fired.ts - T0 >= timedelta(minutes=30)  # its `for`
    assert fired.threshold == pytest.approx(800 * 1.03)


def test_same_inputs_give_the_same_outputs() -> None:
    data = pl.concat(
        [
            samples(MILL_ON, seconds=300, every=5),
            samples(MILL_EMPTY, start=T0 + timedelta(seconds=300), seconds=900, every=5),
        ]
    )
    runs = []
    for _ in range(2):
        rows, events, _ = tick_through(
            mill_engine(), data, start=T0, end=T0 + timedelta(seconds=1200), every_secs=30
        )
        runs.append((rows, events))
    assert_frame_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]


def test_evaluate_history_matches_batch_kpis_and_fires_like_the_live_engine() -> None:
    cfg = make_config([MILL])
    inefficient = {"cm1.feed_tph": 100.0, "cm1.power_kw": 5000.0}  # 50 kWh/t > 40 x 1.10 (rolling hour)
    data = pl.concat(
        [
            samples(MILL_ON, seconds=300, every=5),
            samples(inefficient, start=T0 + timedelta(seconds=300), seconds=2700, every=5),
            samples(MILL_EMPTY, start=T0 + timedelta(seconds=3000), seconds=900, every=5),
        ]
    )
    hist = evaluate_history(cfg.rule_settings(), data, load_rules(cfg.rule_settings()))
    for w in (60, 900, 3600):
        assert_frame_equal(
            hist.kpi_rows.filter(pl.col("window_secs") == w),
            compute_kpis(cfg.rule_settings(), data, w),
            check_exact=False,
            rel_tol=1e-9,
        )
    got = [(e.rule, e.state) for e in hist.events]
    assert got == [
        ("mill.specific_power.high", "firing"),  # rolling hour above 44 kWh/t for 15 min
        ("mill.specific_power.high", "resolved"),  # suppressed: no feed
        ("mill.running_empty", "firing"),
    ]
    # live ticks on minute boundaries fire the same episodes, within a minute
    _, live, _ = tick_through(
        RuleEngine(cfg.rule_settings()), data, start=T0, end=T0 + timedelta(seconds=3900), every_secs=60
    )
    assert [(e.rule, e.state) for e in live] == got
    for a, b in zip(live, hist.events, strict=True):
        assert abs(a.ts - b.ts) <= timedelta(minutes=1)


def test_empty_window_and_no_assets_are_harmless() -> None:
    engine = RuleEngine(make_config([]).rule_settings())
    result = engine.tick(frame([]), T0)
    assert result.kpi_rows.height == 0 and result.events == [] and result.latest == {}
    engine = mill_engine()
    result = engine.tick(frame([]), T0 + timedelta(minutes=5))
    assert result.latest["cm1"]["feed_tph"] == (None, "t/h")


def test_a_first_tick_handed_history_emits_every_closed_window_once() -> None:
    engine = mill_engine()
    data = samples(MILL_ON, seconds=20 * 60, every=5)
    first = engine.tick(data, T0 + timedelta(minutes=20))
    want = compute_kpis(engine.settings, data, 60).filter(pl.col("ts") < T0 + timedelta(minutes=19))
    got = first.kpi_rows.filter(pl.col("window_secs") == 60)
    assert_frame_equal(got.sort("ts", "kpi"), want.sort("ts", "kpi"), check_exact=False, rel_tol=1e-9)
    assert first.kpi_rows.filter(pl.col("window_secs") == 900)["ts"].unique().to_list() == [T0]
    again = engine.tick(data, T0 + timedelta(minutes=20, seconds=10))
    # only the minute that closed in between (19:00-20:00 closes at 20:05), nothing twice
    assert again.kpi_rows["ts"].unique().to_list() == [T0 + timedelta(minutes=19)]


def test_a_big_first_slab_folded_in_pieces_gives_the_same_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Statistics add up: counting the new rows in pieces (bounded memory) changes nothing."""
    data = samples(MILL_ON, seconds=20 * 60, every=5).sample(fraction=1.0, shuffle=True, seed=5)
    data = data.sort("ts")  # a window is time-ordered; pieces still cut minutes in the middle
    whole = mill_engine().tick(data, T0 + timedelta(minutes=20))
    monkeypatch.setattr(engine_module, "_INGEST_PIECE_ROWS", 37)
    pieces = mill_engine().tick(data, T0 + timedelta(minutes=20))
    assert whole.kpi_rows.height > 0
    assert_frame_equal(pieces.kpi_rows, whole.kpi_rows, check_exact=False, rel_tol=1e-12)


def test_baseline_rule_fires_on_the_fed_deviation_after_its_for_and_resolves_below_clear() -> None:
    """docs/kpis.md §8 mill inefficiency: kWh/t > EnB prediction x 1.10 <=> baseline_deviation_pct > 10.

    The deviation comes from the M&V store (``set_external``), not from samples: 18 % above the
    baseline fires after ``for`` = 15 min, 7 % (between clear 5 and when 10) holds it, 3 % resolves.
    """
    engine = mill_engine()
    data = samples(MILL_ON, seconds=35 * 60, every=5)
    feed = {5: 18.0, 25: 7.0, 30: 3.0}  # minute -> deviation fed from then on
    events: list[AlertEvent] = []
    latest: dict[str, tuple[float | None, str]] = {}
    for k in range(6, 6 * 35 + 1):  # a tick every 10 s
        now = T0 + timedelta(seconds=10 * k)
        if k % 6 == 0 and k // 6 in feed:
            engine.set_external("baseline_deviation_pct", {"cm1": feed[k // 6], "not_an_asset": 1.0})
        r = engine.tick(data.filter(pl.col("ts") < now), now)
        events += [e for e in r.events if e.rule == "mill.specific_power.above_baseline"]
        latest = r.latest.get("cm1", {})
    assert [(e.state, e.ts - T0) for e in events] == [
        ("firing", timedelta(minutes=20)),  # first seen > 10 at minute 5, held for 15 min
        ("resolved", timedelta(minutes=30)),  # 7 % at minute 25 is inside the hysteresis
    ]
    fired, resolved = events
    assert fired.value == 18.0 and fired.threshold == 10.0 and fired.unit == "%"
    assert "18.0 % above the M&V baseline" in fired.message
    assert resolved.value == 3.0
    assert latest["baseline_deviation_pct"] == (3.0, "%")


def test_external_values_are_replaced_as_a_whole_and_unknown_names_rejected() -> None:
    engine = mill_engine()
    data = samples(MILL_ON, seconds=120, every=5)
    engine.set_external("baseline_deviation_pct", {"cm1": 12.0})
    first = engine.tick(data, T0 + timedelta(seconds=120))
    assert first.latest["cm1"]["baseline_deviation_pct"] == (12.0, "%")
    engine.set_external("baseline_deviation_pct", {"cm1": float("nan")})  # not finite -> NULL
    second = engine.tick(data, T0 + timedelta(seconds=130))
    assert "baseline_deviation_pct" not in second.latest["cm1"]
    with pytest.raises(ValueError, match="not an external name"):
        engine.set_external("specific_power_kwh_per_t", {"cm1": 1.0})


def test_history_of_enum_tags_equals_history_of_string_tags() -> None:
    """The dictionary-code fast path (how a backfill reads ``samples``) changes nothing but speed.

    Includes a tag no role uses and a bad sample, and spans two hours so 15-min and hourly windows
    come from coarsened minutes.
    """
    cfg = make_config([MILL, KILN])
    inefficient = {"cm1.feed_tph": 100.0, "cm1.power_kw": 5000.0, **EXAMPLE1_VALUES}
    data = pl.concat(
        [
            samples({**MILL_ON, **EXAMPLE1_VALUES, "other.tag": 1.0}, seconds=1800, every=5),
            samples(inefficient, start=T0 + timedelta(seconds=1800), seconds=5400, every=5),
        ]
    )
    data = data.with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(pl.lit("bad")).otherwise(pl.col("quality")).alias("quality")
    )
    tags = sorted(set(data["tag"].to_list()))
    as_enum = data.with_columns(
        pl.col("tag").cast(pl.Enum(tags[::-1])),  # category order differs from the model's
        pl.col("quality").cast(pl.Enum(["good", "stale", "bad", "comm_error"])),
    )
    plain, fast = evaluate_history(cfg.rule_settings(), data), evaluate_history(cfg.rule_settings(), as_enum)
    # rows out of time order take the group-by path instead of the per-minute bincount
    shuffled = evaluate_history(cfg.rule_settings(), as_enum.sample(fraction=1.0, shuffle=True, seed=3))
    assert fast.kpi_rows.height > 0 and {60, 900, 3600} <= set(fast.kpi_rows["window_secs"].to_list())
    for other in (plain, shuffled):
        assert_frame_equal(fast.kpi_rows, other.kpi_rows, check_exact=False, rel_tol=1e-12)
        assert [(e.rule, e.asset, e.state, e.ts) for e in fast.events] == [
            (e.rule, e.asset, e.state, e.ts) for e in other.events
        ]
    assert any(e.rule == "mill.specific_power.high" for e in fast.events)
