"""GB 16780-2021 energy consumption grades (docs/kpis.md §3).

Grade 1 is the most stringent (advanced value), grade 3 the limit every existing line must meet.
The values are those encoded in an open-source standard-definition module ([GB-enc] in docs/kpis.md:
secondary source, the standard text itself is paywalled), so they are data here, not logic.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Upper limits of grades 1, 2, 3 per indicator (docs/kpis.md §3 table). Units in the key.
GB16780_LIMITS: dict[str, tuple[float, float, float]] = {
    "clinker_energy_kgce_per_t": (100.0, 107.0, 117.0),
    "clinker_coal_kgce_per_t": (94.0, 100.0, 109.0),
    "clinker_power_kwh_per_t": (48.0, 57.0, 61.0),
    "cement_energy_kgce_per_t": (80.0, 87.0, 94.0),
    "cement_preparation_kwh_per_t": (26.0, 29.0, 34.0),
}

#: Cement comprehensive-energy limit change per +1 %-point of clinker ratio above 75 % (docs/kpis.md §3, cl. 5.4).
CEMENT_CLINKER_RATIO_CORRECTION: tuple[float, float, float] = (1.10, 1.15, 1.20)
CEMENT_REFERENCE_CLINKER_RATIO_PCT = 75.0

#: Altitude correction of grade 3 above 1500 m: K = 1.179 - 0.211 * P/101325 (docs/kpis.md §3, cl. 5.3 eq. 1).
ALTITUDE_CORRECTION_ABOVE_M = 1500.0
STANDARD_PRESSURE_PA = 101_325.0


@dataclass(frozen=True, slots=True)
class Grade:
    indicator: str
    value: float
    grade: int | None  # 1, 2, 3, or None when the value fails grade 3
    limits: tuple[float, float, float]

    @property
    def label(self) -> str:
        return f"grade {self.grade}" if self.grade is not None else "fails grade 3"


def altitude_factor(site_pressure_pa: float) -> float:
    """K = 1.179 - 0.211 * (P_site / 101325) (docs/kpis.md §3; worked example 2: 80 kPa -> 1.012)."""
    return 1.179 - 0.211 * (site_pressure_pa / STANDARD_PRESSURE_PA)


def limits_for(
    indicator: str,
    *,
    clinker_ratio_pct: float | None = None,
    altitude_m: float = 0.0,
    site_pressure_pa: float | None = None,
) -> tuple[float, float, float]:
    """Grade limits of an indicator, with the cement clinker-ratio and altitude corrections."""
    g1, g2, g3 = GB16780_LIMITS[indicator]
    if indicator == "cement_energy_kgce_per_t" and clinker_ratio_pct is not None:
        d = clinker_ratio_pct - CEMENT_REFERENCE_CLINKER_RATIO_PCT
        c1, c2, c3 = CEMENT_CLINKER_RATIO_CORRECTION
        g1, g2, g3 = g1 + d * c1, g2 + d * c2, g3 + d * c3
    if (
        indicator == "clinker_energy_kgce_per_t"
        and altitude_m > ALTITUDE_CORRECTION_ABOVE_M
        and site_pressure_pa is not None
    ):
        g3 = g3 * altitude_factor(site_pressure_pa)
    return (g1, g2, g3)


def grade(indicator: str, value: float, **corrections: float | None) -> Grade:
    """The best grade whose limit ``value`` meets (limits are inclusive: value <= limit)."""
    limits = limits_for(indicator, **corrections)  # type: ignore[arg-type]
    g = next((i + 1 for i, lim in enumerate(limits) if value <= lim), None)
    return Grade(indicator, value, g, limits)


def _case_sql(col: str, indicator: str) -> str:
    g1, g2, g3 = GB16780_LIMITS[indicator]
    return (
        f"CASE WHEN {col} IS NULL THEN NULL WHEN {col} <= {g1} THEN 1 "
        f"WHEN {col} <= {g2} THEN 2 WHEN {col} <= {g3} THEN 3 ELSE NULL END"
    )


def energy_grade_view_sql() -> str:
    """``v_energy_grade``: GB 16780-2021 grade per clinker line (and cement mill) per UTC day.

    Daily values are production-weighted: the day's mean of the hourly (3600 s) KPI rows, or of
    the 1-min rows where no hourly rows exist. ``grade`` is NULL when the line fails grade 3.
    """
    ce = "clinker_energy_kgce_per_t"
    return f"""
CREATE OR REPLACE VIEW v_energy_grade AS
WITH src AS (
    SELECT site, asset, kpi, value, window_secs, epoch_us(ts) // 86400000000 AS day  -- UTC day number
    FROM kpi
    WHERE value IS NOT NULL
      AND kpi IN ('{ce}', 'clinker_coal_kgce_per_t', 'clinker_power_kwh_per_t', 'specific_power_kwh_per_t')
),
best AS (
    SELECT site, asset, day, min(window_secs) FILTER (WHERE window_secs >= 60) AS w
    FROM src GROUP BY ALL
),
daily AS (
    SELECT s.site, s.asset, s.day,
        avg(value) FILTER (WHERE kpi = '{ce}') AS clinker_energy_kgce_per_t,
        avg(value) FILTER (WHERE kpi = 'clinker_coal_kgce_per_t') AS clinker_coal_kgce_per_t,
        avg(value) FILTER (WHERE kpi = 'clinker_power_kwh_per_t') AS clinker_power_kwh_per_t,
        avg(value) FILTER (WHERE kpi = 'specific_power_kwh_per_t') AS specific_power_kwh_per_t,
        count(*) AS n_rows
    FROM src s JOIN best b USING (site, asset, day)
    WHERE s.window_secs = b.w
    GROUP BY ALL
)
SELECT d.site, d.asset, a.type AS asset_type, DATE '1970-01-01' + CAST(d.day AS INTEGER) AS day,
    clinker_energy_kgce_per_t,
    {_case_sql("clinker_energy_kgce_per_t", ce)} AS clinker_energy_grade,
    clinker_coal_kgce_per_t,
    {_case_sql("clinker_coal_kgce_per_t", "clinker_coal_kgce_per_t")} AS clinker_coal_grade,
    clinker_power_kwh_per_t,
    {_case_sql("clinker_power_kwh_per_t", "clinker_power_kwh_per_t")} AS clinker_power_grade,
    CASE WHEN a.type = 'cement_mill' THEN specific_power_kwh_per_t END AS cement_preparation_kwh_per_t,
    CASE WHEN a.type = 'cement_mill'
        THEN {_case_sql("specific_power_kwh_per_t", "cement_preparation_kwh_per_t")} END
        AS cement_preparation_grade,
    n_rows
FROM daily d JOIN assets a ON a.site = d.site AND a.asset = d.asset
WHERE a.type IN ('kiln', 'cement_mill')
"""


_SHORT_NAMES: dict[str, str] = {
    "clinker_energy_kgce_per_t": "energy",
    "clinker_coal_kgce_per_t": "coal",
    "clinker_power_kwh_per_t": "power",
    "cement_energy_kgce_per_t": "energy",
    "cement_preparation_kwh_per_t": "preparation",
}


@dataclass(frozen=True, slots=True)
class AssetGrades:
    """Current GB 16780-2021 grades of one kiln or cement mill (rule engine ``TickResult.grades``).

    ``window_secs`` is the KPI window the values come from (3600 = last closed hour).
    """

    asset: str
    window_secs: int
    grades: tuple[Grade, ...]

    def __str__(self) -> str:
        return ", ".join(
            f"{_SHORT_NAMES.get(g.indicator, g.indicator)} {g.value:.1f} {g.label}" for g in self.grades
        )

    def worst(self) -> int | None:
        """The weakest grade over the indicators (None when any indicator fails grade 3)."""
        if not self.grades or any(g.grade is None for g in self.grades):
            return None
        return max(g.grade for g in self.grades if g.grade is not None)
