"""``steady_state_flag`` remembers the last 2 h (rules/steady.py, docs/kpis.md §10.5): a window is steady
only when its feed is at least 80 % of nominal *and* no 1-min window of the kiln was unsteady (below
80 % feed, stopped, no good data) from 2 h before its start to its end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from rules.steady import SteadyTracker

T0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


def rows(flags: list[tuple[datetime, int, float | None]], asset: str = "kiln1") -> pl.DataFrame:
    """KPI rows as the engine closes them: (window start, window seconds, flag value)."""
    return pl.DataFrame(
        {
            "ts": [t for t, _, _ in flags],
            "site": "plant1",
            "asset": asset,
            "kpi": "steady_state_flag",
            "value": [v for _, _, v in flags],
            "unit": "flag",
            "window_secs": [w for _, w, _ in flags],
            "good_fraction": 1.0,
            "reason": None,
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC"), "reason": pl.String},
    )


def flags_after(tracker: SteadyTracker, frame: pl.DataFrame) -> list[float | None]:
    return tracker.apply(frame).sort("window_secs", "ts").get_column("value").to_list()


def test_two_hours_after_a_stop_are_not_steady_then_they_are() -> None:
    t = SteadyTracker()
    # 06:00-06:29 steady feed, 06:30 one minute below 80 % (or stopped), then steady again
    minute = [(T0 + timedelta(minutes=m), 60, 0.0 if m == 30 else 1.0) for m in range(0, 4 * 60)]
    out = t.apply(rows(minute)).sort("ts")
    values = dict(zip(out.get_column("ts").to_list(), out.get_column("value").to_list(), strict=True))
    # before the stop: nothing unsteady was seen (time before the agent started denies nothing)
    assert values[T0 + timedelta(minutes=29)] == 1.0
    assert values[T0 + timedelta(minutes=30)] == 0.0  # the window itself
    # the unsteady minute ended 06:31: windows starting before 08:31 are denied, from 08:31 on allowed
    assert values[T0 + timedelta(hours=2, minutes=30)] == 0.0
    assert values[T0 + timedelta(hours=2, minutes=31)] == 1.0
    assert sum(v == 0.0 for v in values.values()) == 1 + 120  # the stop minute and the 2 h after


def test_larger_windows_see_unsteady_minutes_inside_and_in_the_2_hours_before() -> None:
    t = SteadyTracker()
    # the tick that closes 06:00-06:59 also closes its minutes; one of them (06:45) is unsteady
    minute = [(T0 + timedelta(minutes=m), 60, 0.0 if m == 45 else 1.0) for m in range(60)]
    hour = [(T0, 3600, 1.0)]  # the hour's mean feed is above 80 %: the window alone says steady
    quarter = [(T0 + timedelta(minutes=15 * q), 900, 1.0) for q in range(4)]
    out = t.apply(rows(minute + quarter + hour))
    h = out.filter(pl.col("window_secs") == 3600).get_column("value").to_list()
    q = out.filter(pl.col("window_secs") == 900).sort("ts").get_column("value").to_list()
    assert h == [0.0]
    # quarters before the unsteady minute (06:45 ends 06:46) are untouched; the last one is denied
    assert q == [1.0, 1.0, 1.0, 0.0]
    # the hour 08:00-08:59 closes with its last minute: 06:46 is within 2 h of 08:00, so denied
    to_0859 = [(T0 + timedelta(minutes=m), 60, 1.0) for m in range(60, 180)]
    out = t.apply(rows([*to_0859, (T0 + timedelta(hours=2), 3600, 1.0)]))
    assert out.filter(pl.col("window_secs") == 3600).get_column("value").to_list() == [0.0]
    # the quarter 08:46-09:00 starts exactly 2 h after the unsteady minute ended: steady again
    to_0900 = [(T0 + timedelta(minutes=180), 60, 1.0), (T0 + timedelta(hours=2, minutes=46), 900, 1.0)]
    out = t.apply(rows(to_0900))
    assert out.filter(pl.col("window_secs") == 900).get_column("value").to_list() == [1.0]


def test_no_data_counts_as_unsteady_and_other_assets_and_kpis_are_untouched() -> None:
    t = SteadyTracker()
    frame = pl.concat(
        [
            rows([(T0, 60, None), (T0 + timedelta(minutes=1), 60, 1.0)], asset="kiln1"),
            rows([(T0, 60, 1.0), (T0 + timedelta(minutes=1), 60, 1.0)], asset="kiln2"),
            rows([(T0, 60, 5.0)]).with_columns(pl.lit("loss_co_kcal_per_kg").alias("kpi")),
        ]
    )
    out = t.apply(frame).sort("kpi", "asset", "ts")
    assert out.height == frame.height and out.columns == frame.columns
    got = {(a, k, ts.minute): v for a, k, ts, v in out.select("asset", "kpi", "ts", "value").iter_rows()}
    assert got[("kiln1", "steady_state_flag", 1)] == 0.0  # the minute after a NULL (no good data)
    assert got[("kiln2", "steady_state_flag", 1)] == 1.0
    assert got[("kiln1", "loss_co_kcal_per_kg", 0)] == 5.0


def test_a_seeded_stop_from_before_a_restart_still_denies() -> None:
    t = SteadyTracker()
    stop_end = T0 - timedelta(minutes=30)
    t.seed("kiln1", [int(stop_end.timestamp() * 1_000_000)])
    assert flags_after(t, rows([(T0, 60, 1.0)])) == [0.0]
    assert flags_after(t, rows([(stop_end + timedelta(hours=2), 60, 1.0)])) == [1.0]
