"""Auditor views over the ``kpi`` and ``alerts`` tables (docs/auditors.md).

``v_kpi_hourly`` averages, per site/asset/KPI and UTC hour, the rows of the *finest* KPI window
stored for that hour (1-min rows when present, else 15-min, else 1-h), so the same number comes out
whether or not short windows have been pruned; ``v_kpi_daily`` is the mean of a day's hourly values. ``v_shift_report`` does
the same per shift (shift starts from ``[agent] shifts``, UTC) and adds alert counts.
``v_energy_grade`` is :func:`rules.grades.energy_grade_view_sql`.

All buckets are computed in UTC from the stored epoch microseconds (integer arithmetic, which is
also 2-3x faster than ``time_bucket`` over millions of rows), so a DuckDB client running in another
time zone sees the same rows. Views are re-created with
``CREATE OR REPLACE``, so calling :func:`create_views` on every start is safe.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import duckdb

from rules.grades import energy_grade_view_sql

log = logging.getLogger(__name__)

DEFAULT_SHIFTS: tuple[str, ...] = ("06:00", "14:00", "22:00")

#: KPIs pivoted into ``v_shift_report`` (docs/kpis.md names); absent KPIs are NULL for an asset.
SHIFT_KPIS: tuple[str, ...] = (
    "clinker_tph",
    "specific_heat_kcal_per_kg_clinker",
    "specific_power_kwh_per_t",
    "clinker_energy_kgce_per_t",
    "co2_kg_per_t_clinker",
    "whr_kwh_per_t_clinker",
    "whr_net_kw",
    "preheater_false_air_pct",
    "feed_tph",
)

VIEW_NAMES: tuple[str, ...] = ("v_kpi_hourly", "v_kpi_daily", "v_shift_report", "v_energy_grade")


#: UTC hour and minute numbers from the stored microseconds (time-zone independent).
_HOUR_NO = "(epoch_us(ts) // 3600000000)"
_US_PER_MIN = 60_000_000


def kpi_hourly_sql() -> str:
    """Mean of the finest stored window per site/asset/kpi/hour, with counts and coverage."""
    return f"""
CREATE OR REPLACE VIEW v_kpi_hourly AS
WITH g AS (
    SELECT site, asset, kpi, {_HOUR_NO} AS h, window_secs,
        avg(value) AS value, min(value) AS min_value, max(value) AS max_value,
        count(value) AS n_values, count(*) AS n_rows, any_value(unit) AS unit
    FROM kpi
    WHERE window_secs <= 3600
    GROUP BY site, asset, kpi, h, window_secs
)
SELECT site, asset, kpi, to_timestamp(h * 3600) AS hour, value, unit, min_value, max_value, n_values, n_rows,
    window_secs, least(1.0, n_values * greatest(window_secs, 1) / 3600.0) AS coverage
FROM g
QUALIFY row_number() OVER (PARTITION BY site, asset, kpi, h ORDER BY window_secs) = 1
"""


def kpi_daily_sql() -> str:
    """Daily means of the hourly values: each covered hour weighs the same, whatever its window."""
    return """
CREATE OR REPLACE VIEW v_kpi_daily AS
SELECT site, asset, kpi, DATE '1970-01-01' + CAST(epoch_us(hour) // 86400000000 AS INTEGER) AS day,
    avg(value) AS value, any_value(unit) AS unit, min(min_value) AS min_value, max(max_value) AS max_value,
    sum(n_values) AS n_values, sum(n_rows) AS n_rows, count(value) AS n_hours,
    min(window_secs) AS window_secs, sum(coverage) / 24.0 AS coverage
FROM v_kpi_hourly
GROUP BY site, asset, kpi, day
"""


def parse_shifts(shifts: Sequence[str]) -> list[int]:
    """Shift starts as sorted minutes after midnight UTC; ``ValueError`` on anything but HH:MM."""
    out: list[int] = []
    for s in shifts:
        hh, sep, mm = s.partition(":")
        if not (sep and hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60 and len(mm) == 2):
            raise ValueError(f"shift start {s!r} is not HH:MM")
        out.append(int(hh) * 60 + int(mm))
    if not out:
        raise ValueError("at least one shift start is needed")
    if len(set(out)) != len(out):
        raise ValueError("shift starts must be distinct")
    return sorted(out)


def _shift_exprs(tm: str, starts: Sequence[int]) -> tuple[str, str]:
    """SQL for (shift number, shift day number) of ``tm`` = minutes since the epoch (UTC).

    A shift day begins at the first shift start; time before it belongs to the previous day's last
    shift (06:00/14:00/22:00: 03:00 on the 24th is the 22:00 shift of the 23rd). The day number
    counts days since 1970-01-01.
    """
    m = f"({tm} % 1440)"
    whens = " ".join(f"WHEN {m} >= {s} THEN {i + 1}" for i, s in reversed(list(enumerate(starts))))
    shift_no = f"CASE {whens} ELSE {len(starts)} END"
    shift_day = f"(({tm} - {starts[0]}) // 1440)"
    return shift_no, shift_day


def shift_report_sql(shifts: Sequence[str] = DEFAULT_SHIFTS) -> str:
    """``v_shift_report``: per site/asset/shift key KPI means (finest window) and alert counts."""
    starts = parse_shifts(shifts)
    labels = "[" + ", ".join(f"'{s // 60:02d}:{s % 60:02d}'" for s in starts) + "]"
    offsets = "[" + ", ".join(str(s) for s in starts) + "]"
    lengths = [((starts[(i + 1) % len(starts)] - s) % 1440) or 1440 for i, s in enumerate(starts)]
    shortest_secs = min(lengths) * 60
    k_no, k_day = _shift_exprs("tm", starts)
    kpi_list = ", ".join(f"'{k}'" for k in SHIFT_KPIS)
    pivots = ",\n        ".join(f"max(value) FILTER (WHERE kpi = '{k}') AS {k}" for k in SHIFT_KPIS)
    return f"""
CREATE OR REPLACE VIEW v_shift_report AS
WITH k AS (
    SELECT site, asset, kpi, value, window_secs, epoch_us(ts) // {_US_PER_MIN} AS tm
    FROM kpi
    WHERE window_secs <= {shortest_secs} AND kpi IN ({kpi_list})
),
g AS (
    SELECT site, asset, {k_day} AS sd, {k_no} AS shift_no, kpi, window_secs,
        avg(value) AS value, count(value) AS n
    FROM k GROUP BY site, asset, sd, shift_no, kpi, window_secs
),
best AS (
    SELECT * FROM g
    QUALIFY row_number() OVER (PARTITION BY site, asset, sd, shift_no, kpi ORDER BY window_secs) = 1
),
wide AS (
    SELECT site, asset, sd, shift_no,
        {pivots},
        sum(n) AS n_values
    FROM best GROUP BY site, asset, sd, shift_no
),
a0 AS (
    SELECT site, asset, severity, epoch_us(started_at) // {_US_PER_MIN} AS tm FROM alerts
),
al AS (
    SELECT site, asset, {k_day} AS sd, {k_no} AS shift_no,
        count(*) AS alerts,
        count(*) FILTER (WHERE severity = 'critical') AS critical_alerts
    FROM a0 GROUP BY ALL
)
SELECT site, asset, DATE '1970-01-01' + CAST(sd AS INTEGER) AS shift_day, shift_no,
    ({labels})[shift_no] AS shift,
    to_timestamp((sd * 1440 + ({offsets})[shift_no]) * 60) AS shift_start,
    {", ".join(SHIFT_KPIS)},
    coalesce(n_values, 0) AS n_values,
    coalesce(alerts, 0) AS alerts,
    coalesce(critical_alerts, 0) AS critical_alerts
FROM wide FULL OUTER JOIN al USING (site, asset, sd, shift_no)
"""


def create_views(
    con: duckdb.DuckDBPyConnection, *, shifts: Sequence[str] = DEFAULT_SHIFTS, temporary: bool = False
) -> None:
    """(Re)create the auditor views; idempotent. ``shifts`` are UTC shift start times (HH:MM).

    ``temporary`` creates them for this connection only, which also works on a database opened
    read-only (a snapshot, or a file copied from the gateway).
    """
    for sql in (kpi_hourly_sql(), kpi_daily_sql(), shift_report_sql(shifts), energy_grade_view_sql()):
        if temporary:
            sql = sql.replace("CREATE OR REPLACE VIEW", "CREATE OR REPLACE TEMP VIEW", 1)
        con.execute(sql)
    log.debug("auditor views created (shifts %s)", ", ".join(shifts))


def ensure_views(con: duckdb.DuckDBPyConnection, *, shifts: Sequence[str] = DEFAULT_SHIFTS) -> None:
    """Create the views when any is missing: stored when the database is writable, else temporary."""
    rows = con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    if set(VIEW_NAMES) <= {r[0] for r in rows}:
        return
    try:
        create_views(con, shifts=shifts)
    except duckdb.Error:
        create_views(con, shifts=shifts, temporary=True)
