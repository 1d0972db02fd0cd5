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


#: A day is graded only when the indicator has a value in at least this share of the UTC day
#: (the asset produced and its data was good); docs/kpis.md §3 "Daily grades".
MIN_GRADE_COVERAGE = 0.8

#: (view column, KPI it is computed from, GB16780_LIMITS key, short name) per asset type graded by the view.
_VIEW_INDICATORS: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "kiln": (
        (
            "clinker_energy_kgce_per_t",
            "clinker_energy_kgce_per_t",
            "clinker_energy_kgce_per_t",
            "clinker_energy",
        ),
        ("clinker_coal_kgce_per_t", "clinker_coal_kgce_per_t", "clinker_coal_kgce_per_t", "clinker_coal"),
        ("clinker_power_kwh_per_t", "clinker_power_kwh_per_t", "clinker_power_kwh_per_t", "clinker_power"),
    ),
    "cement_mill": (
        (
            "cement_preparation_kwh_per_t",
            "specific_power_kwh_per_t",
            "cement_preparation_kwh_per_t",
            "cement_preparation",
        ),
    ),
}

#: Production KPI (t/h) that weighs an asset type's daily values.
_PRODUCTION_KPI: dict[str, str] = {"kiln": "clinker_tph", "cement_mill": "feed_tph"}


def _sql_list(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _case_sql(col: str, indicator: str) -> str:
    g1, g2, g3 = GB16780_LIMITS[indicator]
    return (
        f"CASE WHEN {col} IS NULL THEN NULL WHEN {col} <= {g1} THEN 1 "
        f"WHEN {col} <= {g2} THEN 2 WHEN {col} <= {g3} THEN 3 ELSE NULL END"
    )


def _graded_sql(col: str, cov: str, indicator: str) -> str:
    """The grade, only for a covered day with a positive value."""
    return f"CASE WHEN {cov} >= {MIN_GRADE_COVERAGE} AND {col} > 0 THEN {_case_sql(col, indicator)} END"


def _reason_sql(col: str, cov: str, indicator: str) -> str:
    """Why ``col`` has no grade (NULL when it has one or the asset has no such indicator)."""
    g3 = GB16780_LIMITS[indicator][2]
    pct = round(MIN_GRADE_COVERAGE * 100)
    return (
        f"CASE WHEN {cov} IS NULL THEN NULL "
        f"WHEN {cov} < {MIN_GRADE_COVERAGE} THEN printf('coverage %.0f %% < {pct} %%', 100 * {cov}) "
        f"WHEN {col} < 0 THEN 'negative value (WHR credit exceeds consumption)' "
        f"WHEN {col} = 0 THEN 'zero value' "
        f"WHEN {col} > {g3} THEN 'fails grade 3' END"
    )


def energy_grade_view_sql() -> str:
    """``v_energy_grade``: GB 16780-2021 grade per clinker line (and cement mill) per UTC day.

    Per hour the finest stored KPI window (1 min, else 15 min, else 1 h) is used. A day's value is
    production-weighted over the windows that have one: sum(value x t/h x window) / sum(t/h x
    window), i.e. the day's energy over the day's production (clinker t/h for a kiln, feed t/h for
    a cement mill, same ts and window). ``*_coverage`` is the share of the UTC day covered by those
    windows. A grade is given only when coverage >= :data:`MIN_GRADE_COVERAGE` and the value is
    > 0 (net WHR credit can drive clinker power negative while the raw mill is stopped); ``reason``
    says why a day's indicator has no grade ('coverage 42 % < 80 %', 'negative value (WHR credit
    exceeds consumption)', 'fails grade 3'). docs/kpis.md §3, docs/auditors.md.
    """
    kpi_list = _sql_list(sorted({k for ind in _VIEW_INDICATORS.values() for _, k, _, _ in ind}))
    wanted = " OR ".join(
        f"(a.type = '{t}' AND k.kpi IN ({_sql_list([_PRODUCTION_KPI[t], *(i[1] for i in inds)])}))"
        for t, inds in _VIEW_INDICATORS.items()
    )
    prod_case = " ".join(f"WHEN a.type = '{t}' THEN '{k}'" for t, k in _PRODUCTION_KPI.items())
    ok = "value IS NOT NULL AND tph > 0"
    pivots: list[str] = []
    for t, inds in _VIEW_INDICATORS.items():
        for col, kpi, _, _ in inds:
            cond = f"asset_type = '{t}' AND kpi = '{kpi}'"
            pivots.append(f"max(value) FILTER (WHERE {cond}) AS {col}")
            pivots.append(f"max(coverage) FILTER (WHERE {cond}) AS {col}_cov")
    out_cols: list[str] = []
    reasons: list[str] = []
    for inds in _VIEW_INDICATORS.values():
        for col, _, ind, short in inds:
            cov = f"{col}_cov"
            out_cols.append(col)
            out_cols.append(f"{_graded_sql(col, cov, ind)} AS {short}_grade")
            reasons.append(f"'{short}: ' || ({_reason_sql(col, cov, ind)})")
    cov_cols = {t: [f"{c}_cov" for c, _, _, _ in inds] for t, inds in _VIEW_INDICATORS.items()}
    coverage = (
        f"CASE WHEN asset_type = 'kiln' THEN greatest({', '.join(cov_cols['kiln'])}) "
        f"ELSE {cov_cols['cement_mill'][0]} END"
    )
    pct = round(MIN_GRADE_COVERAGE * 100)
    reason = (
        f"CASE WHEN coverage < {MIN_GRADE_COVERAGE} THEN printf('coverage %.0f %% < {pct} %%', 100 * coverage) "
        f"ELSE nullif(concat_ws('; ', {', '.join(reasons)}), '') END"
    )
    return f"""
CREATE OR REPLACE VIEW v_energy_grade AS
WITH src AS (
    SELECT k.site, k.asset, a.type AS asset_type, k.ts, k.kpi, k.value, k.window_secs,
        epoch_us(k.ts) // 3600000000 AS h,  -- UTC hour number
        CASE {prod_case} END AS prod_kpi
    FROM kpi k JOIN assets a ON a.site = k.site AND a.asset = k.asset
    WHERE k.window_secs BETWEEN 60 AND 3600 AND ({wanted})
),
prod AS (
    SELECT site, asset, ts, window_secs, value AS tph FROM src WHERE kpi = prod_kpi
),
ind AS (
    SELECT s.site, s.asset, s.asset_type, s.h, s.kpi, s.window_secs, s.value, p.tph
    FROM src s LEFT JOIN prod p USING (site, asset, ts, window_secs)
    WHERE s.kpi IN ({kpi_list})
    QUALIFY s.window_secs = min(s.window_secs) OVER (PARTITION BY s.site, s.asset, s.kpi, s.h)
),
daily AS (
    SELECT site, asset, asset_type, h // 24 AS day, kpi,
        sum(value * tph * window_secs) FILTER (WHERE {ok})
            / sum(tph * window_secs) FILTER (WHERE {ok}) AS value,
        least(1.0, coalesce(sum(window_secs) FILTER (WHERE {ok}), 0) / 86400.0) AS coverage,
        count(value) AS n_values
    FROM ind GROUP BY ALL
),
wide AS (
    SELECT site, asset, asset_type, day,
        {("," + chr(10) + "        ").join(pivots)},
        sum(n_values) AS n_rows
    FROM daily GROUP BY ALL
),
graded AS (
    SELECT *, {coverage} AS coverage FROM wide
)
SELECT site, asset, asset_type, DATE '1970-01-01' + CAST(day AS INTEGER) AS day,
    {("," + chr(10) + "    ").join(out_cols)},
    CAST(n_rows AS BIGINT) AS n_rows, coverage, {reason} AS reason
FROM graded
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
