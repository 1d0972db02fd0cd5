"""Auditor views on hand-made KPI and alert rows (docs/auditors.md)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from mv_helpers import kpi_rows

from agent import storage
from agent.views import VIEW_NAMES, create_views, ensure_views, parse_shifts

D = datetime(2026, 11, 23, tzinfo=UTC)
Row = tuple[datetime, str, str, str, float | None, str, int]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    c = storage.connect(":memory:")
    create_views(c)
    return c


def _add(
    con: duckdb.DuckDBPyConnection, rows: list[tuple[datetime, str, str, str, float | None, str, int]]
) -> None:
    storage.insert_frame(con, "kpi", kpi_rows(rows))


def _minute_rows(
    start: datetime, values: list[float], kpi: str = "clinker_tph", asset: str = "kiln1"
) -> list[Row]:
    return [(start + timedelta(minutes=i), "plant1", asset, kpi, v, "t/h", 60) for i, v in enumerate(values)]


def test_hourly_view_averages_the_finest_window_only(con: duckdb.DuckDBPyConnection) -> None:
    rows = _minute_rows(D + timedelta(hours=10), [100.0] * 30 + [110.0] * 30)
    rows.append((D + timedelta(hours=10), "plant1", "kiln1", "clinker_tph", 999.0, "t/h", 3600))
    rows.append((D + timedelta(hours=10), "plant1", "kiln1", "clinker_tph", 555.0, "t/h", 900))
    # 11:00 has only a 1-h row: the hourly view falls back to it
    rows.append((D + timedelta(hours=11), "plant1", "kiln1", "clinker_tph", 120.0, "t/h", 3600))
    _add(con, rows)
    got = con.execute(
        "SELECT hour, value, min_value, max_value, n_values, window_secs, coverage, unit FROM v_kpi_hourly ORDER BY hour"
    ).fetchall()
    assert got == [
        (D + timedelta(hours=10), 105.0, 100.0, 110.0, 60, 60, 1.0, "t/h"),
        (D + timedelta(hours=11), 120.0, 120.0, 120.0, 1, 3600, 1.0, "t/h"),
    ]


def test_null_kpi_values_count_as_rows_but_not_values(con: duckdb.DuckDBPyConnection) -> None:
    """A KPI without a meaningful denominator (kiln stopped) is stored as NULL with a reason."""
    _add(
        con,
        _minute_rows(D, [100.0] * 45)
        + [
            (D + timedelta(minutes=45 + i), "plant1", "kiln1", "clinker_tph", None, "t/h", 60)
            for i in range(15)
        ],
    )
    row = con.execute("SELECT value, n_values, n_rows, coverage FROM v_kpi_hourly").fetchone()
    assert row == (100.0, 45, 60, 0.75)


def test_daily_view_is_the_mean_of_hourly_values(con: duckdb.DuckDBPyConnection) -> None:
    # hour 0: 60 one-minute rows at 100; hour 1: a single 1-h row at 130 (short windows pruned)
    rows = _minute_rows(D, [100.0] * 60)
    rows.append((D + timedelta(hours=1), "plant1", "kiln1", "clinker_tph", 130.0, "t/h", 3600))
    rows.append((D + timedelta(days=1), "plant1", "kiln1", "clinker_tph", 90.0, "t/h", 60))
    _add(con, rows)
    got = con.execute(
        "SELECT day, value, n_values, n_hours, window_secs, round(coverage, 6) FROM v_kpi_daily ORDER BY day"
    ).fetchall()
    assert got == [
        (date(2026, 11, 23), 115.0, 61, 2, 60, round(2 / 24, 6)),
        (date(2026, 11, 24), 90.0, 1, 1, 60, round(1 / 60 / 24, 6)),
    ]


def test_views_bucket_in_utc_whatever_the_session_time_zone(con: duckdb.DuckDBPyConnection) -> None:
    _add(con, _minute_rows(D + timedelta(hours=23, minutes=30), [100.0] * 60))  # 23:30..00:29 UTC
    con.execute("SET TimeZone = 'Asia/Shanghai'")
    days = con.execute("SELECT day, n_values FROM v_kpi_daily ORDER BY day").fetchall()
    hours = con.execute("SELECT epoch(hour)::BIGINT FROM v_kpi_hourly ORDER BY hour").fetchall()
    shifts = con.execute(
        "SELECT shift_day, shift, n_values FROM v_shift_report ORDER BY shift_start"
    ).fetchall()
    assert days == [(date(2026, 11, 23), 30), (date(2026, 11, 24), 30)]
    assert [h[0] for h in hours] == [
        int((D + timedelta(hours=23)).timestamp()),
        int((D + timedelta(days=1)).timestamp()),
    ]
    assert shifts == [(date(2026, 11, 23), "22:00", 60)]


def test_shift_report_assigns_night_hours_to_the_previous_days_last_shift(
    con: duckdb.DuckDBPyConnection,
) -> None:
    rows = []
    # 05:00-05:59 on the 24th belongs to the 22:00 shift of the 23rd; 06:00-06:59 to the 06:00 shift of the 24th
    rows += _minute_rows(D + timedelta(days=1, hours=5), [100.0] * 60)
    rows += _minute_rows(D + timedelta(days=1, hours=6), [120.0] * 60)
    rows += _minute_rows(D + timedelta(days=1, hours=6), [25.0] * 60, kpi="specific_power_kwh_per_t")
    rows += _minute_rows(D + timedelta(days=1, hours=14), [130.0] * 60)
    _add(con, rows)
    con.execute(
        "INSERT INTO alerts (alert_id, site, asset, rule, severity, state, started_at) VALUES "
        "('a1', 'plant1', 'kiln1', 'r1', 'critical', 'firing', ?), "
        "('a2', 'plant1', 'kiln1', 'r2', 'warning', 'resolved', ?), "
        "('a3', 'plant1', 'cm1', 'r3', 'warning', 'resolved', ?)",
        [
            D + timedelta(days=1, hours=6, minutes=5),
            D + timedelta(days=1, hours=7),
            D + timedelta(days=1, hours=3),
        ],
    )
    got = con.execute(
        "SELECT asset, shift_day, shift_no, shift, shift_start, clinker_tph, specific_power_kwh_per_t, alerts, "
        "critical_alerts FROM v_shift_report ORDER BY shift_start, asset"
    ).fetchall()
    assert got == [
        ("cm1", date(2026, 11, 23), 3, "22:00", D + timedelta(hours=22), None, None, 1, 0),
        ("kiln1", date(2026, 11, 23), 3, "22:00", D + timedelta(hours=22), 100.0, None, 0, 0),
        ("kiln1", date(2026, 11, 24), 1, "06:00", D + timedelta(days=1, hours=6), 120.0, 25.0, 2, 1),
        ("kiln1", date(2026, 11, 24), 2, "14:00", D + timedelta(days=1, hours=14), 130.0, None, 0, 0),
    ]


def test_shift_times_come_from_the_config(con: duckdb.DuckDBPyConnection) -> None:
    create_views(con, shifts=["19:00", "07:00"])
    _add(
        con,
        _minute_rows(D + timedelta(hours=6), [100.0] * 10)
        + _minute_rows(D + timedelta(hours=7), [50.0] * 10),
    )
    got = con.execute(
        "SELECT shift_day, shift, clinker_tph FROM v_shift_report ORDER BY shift_start"
    ).fetchall()
    assert got == [(date(2026, 11, 22), "19:00", 100.0), (date(2026, 11, 23), "07:00", 50.0)]


def test_bad_shift_times_are_rejected() -> None:
    assert parse_shifts(["22:00", "06:00", "14:00"]) == [360, 840, 1320]
    for bad in (["6:0"], ["24:00"], [], ["06:00", "06:00"], ["06:00; DROP TABLE kpi"]):
        with pytest.raises(ValueError):
            parse_shifts(bad)


def _kiln_asset(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "INSERT INTO assets VALUES ('plant1', 'kiln1', 'kiln', ?, NULL)",
        [json.dumps({"id": "kiln1", "type": "kiln"})],
    )


def test_energy_grade_view_grades_a_kiln_day(con: duckdb.DuckDBPyConnection) -> None:
    _kiln_asset(con)
    _add(con, _minute_rows(D, [104.0] * 1440, kpi="clinker_energy_kgce_per_t"))
    _add(con, _minute_rows(D, [100.0] * 1470))  # clinker t/h, on to 00:29 of the next day
    rows = con.execute(
        "SELECT asset, day, clinker_energy_kgce_per_t, clinker_energy_grade, coverage, reason FROM v_energy_grade"
    ).fetchall()
    assert rows == [("kiln1", date(2026, 11, 23), 104.0, 2, 1.0, None)]  # 100 < 104 <= 107 (docs/kpis.md §3)
    # 00:00-00:29 UTC of the 24th at 118: its own UTC day, whatever the session time zone
    _add(con, _minute_rows(D + timedelta(days=1), [118.0] * 30, kpi="clinker_energy_kgce_per_t"))
    con.execute("SET TimeZone = 'Asia/Shanghai'")
    rows = con.execute(
        "SELECT day, clinker_energy_kgce_per_t, clinker_energy_grade, round(coverage, 6), reason "
        "FROM v_energy_grade ORDER BY day"
    ).fetchall()
    assert rows == [
        (date(2026, 11, 23), 104.0, 2, 1.0, None),
        (date(2026, 11, 24), 118.0, None, round(30 / 1440, 6), "coverage 2 % < 80 %"),  # 30 of 1440 min
    ]


def test_energy_grade_is_production_weighted_covered_and_positive(con: duckdb.DuckDBPyConnection) -> None:
    """Auditor issue: negative clinker power (WHR credit netted) and part days earned grade 1."""
    _kiln_asset(con)
    ce, cp = "clinker_energy_kgce_per_t", "clinker_power_kwh_per_t"
    # Day 1: 12 h at 150 t/h and 96 kgce/t, 12 h at 50 t/h and 110 kgce/t. Per tonne of clinker:
    # (150*96 + 50*110) / 200 = 99.5 -> grade 1 (<= 100); the time mean 103 would be grade 2.
    _add(con, _minute_rows(D, [150.0] * 720 + [50.0] * 720))
    _add(con, _minute_rows(D, [96.0] * 720 + [110.0] * 720, kpi=ce))
    # Day 2: produces 10 h at 104 kgce/t, stopped 14 h (clinker 0 t/h, KPI NULL 'kiln stopped'):
    # coverage 10/24 = 41.7 % < 80 %, no grade.
    d2 = D + timedelta(days=1)
    _add(con, _minute_rows(d2, [100.0] * 600 + [0.0] * 840))
    _add(con, _minute_rows(d2, [104.0] * 600 + [None] * 840, kpi=ce))  # type: ignore[list-item]
    # Day 3 (hourly rows only): WHR credit above consumption, -9 kWh/t all day: never grade 1.
    d3 = D + timedelta(days=2)
    hourly: list[Row] = []
    for h in range(24):
        t = d3 + timedelta(hours=h)
        hourly.append((t, "plant1", "kiln1", "clinker_tph", 100.0, "t/h", 3600))
        hourly.append((t, "plant1", "kiln1", cp, -9.0, "kWh/t", 3600))
        hourly.append((t, "plant1", "kiln1", ce, 104.0, "kgce/t", 3600))
    _add(con, hourly)
    rows = con.execute(
        f"SELECT day, round({ce}, 6), clinker_energy_grade, {cp}, clinker_power_grade, "
        "round(coverage, 4), reason FROM v_energy_grade ORDER BY day"
    ).fetchall()
    assert rows == [
        (date(2026, 11, 23), 99.5, 1, None, None, 1.0, None),
        (date(2026, 11, 24), 104.0, None, None, None, round(10 / 24, 4), "coverage 42 % < 80 %"),
        (
            date(2026, 11, 25),
            104.0,
            2,
            -9.0,
            None,
            1.0,
            "clinker_power: negative value (WHR credit exceeds consumption)",
        ),
    ]


def test_create_views_is_idempotent_and_ensure_views_works_read_only(tmp_path: Path) -> None:
    path = tmp_path / "x.duckdb"
    c = storage.connect(path)
    create_views(c)
    create_views(c)
    names = {r[0] for r in c.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert set(VIEW_NAMES) <= names
    c.execute("DROP VIEW v_shift_report")
    c.close()
    ro = duckdb.connect(str(path), read_only=True)
    ensure_views(ro)  # cannot store a view in a read-only file: falls back to temporary views
    assert ro.execute("SELECT count(*) FROM v_shift_report").fetchone() == (0,)
    ro.close()
