"""Property tests: whatever the PLCs send, a KPI is a finite number or NULL with a reason."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rules_support import T0, frame, make_config, role_tags

from rules.constants import MAX_ABS_KPI_VALUE
from rules.kpi import compute_kpis

ASSETS: list[dict[str, Any]] = [
    {
        "id": "kiln1",
        "type": "kiln",
        "feed_to_clinker": 1.6,
        "kiln_feed_tph": "kiln1.feed",
        "fuel_tph": ["kiln1.coal_a", "kiln1.coal_b"],
        "fuel_ncv_tag": "lab.ncv",
        "power_kw": "kiln1.kw",
        "ph_exit_o2_pct": "kiln1.o2_out",
        "kiln_inlet_o2_pct": "kiln1.o2_in",
        "nominal_feed_tph": 300.0,
    },
    {"id": "rm1", "type": "raw_mill", "feed_tph": "rm1.feed", "power_kw": ["rm1.kw", "rm1.fan"]},
    {"id": "coal1", "type": "coal_mill", "feed_tph": "coal1.feed", "power_kw": "coal1.kw"},
    {
        "id": "cm1",
        "type": "cement_mill",
        "feed_tph": "cm1.feed",
        "power_kw": "cm1.kw",
        "fineness_blaine_cm2_per_g": "cm1.blaine",
    },
    {"id": "whr1", "type": "whr", "generator_kw": "whr1.gen", "aux_kw": "whr1.aux", "kiln": "kiln1"},
    {"id": "plant", "type": "plant", "power_kw": "plant.kw", "compressor_kw": "plant.comp"},
]
CFG = make_config(ASSETS, extra_tags=["lab.ncv"])
TAGS = [*role_tags(ASSETS), "lab.ncv"]

values = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-300, -1e-300, 1e308, -1e308, 21.0, 20.999, 1.0]),
    st.floats(-1e4, 1e4),
)
qualities = st.sampled_from(["good", "good", "good", "stale", "bad", "comm_error"])


@st.composite
def sample_sets(draw: st.DrawFn) -> pl.DataFrame:
    rows = []
    n = draw(st.integers(1, 40))
    for _ in range(n):
        tag = draw(st.sampled_from(TAGS))
        sec = draw(st.integers(0, 179))
        rows.append((T0 + timedelta(seconds=sec), tag, draw(values), draw(qualities)))
    return frame(rows)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=sample_sets(), window=st.sampled_from([60, 900]))
def test_no_kpi_is_ever_inf_nan_or_huge(data: pl.DataFrame, window: int) -> None:
    rows = compute_kpis(CFG.rule_settings(), data, window)
    assert rows.height > 0
    for v, reason, gf in rows.select("value", "reason", "good_fraction").iter_rows():
        if v is None:
            assert reason is not None, "a NULL KPI always says why"
        else:
            assert math.isfinite(v) and abs(v) <= MAX_ABS_KPI_VALUE
            assert reason in (None, "partial data")
        assert gf is not None and 0.0 <= gf <= 1.0


@settings(max_examples=60, deadline=None)
@given(
    feed=st.floats(0.0, 600.0),
    coal=st.floats(0.0, 40.0),
    ncv=st.floats(15.0, 35.0),
    kw=st.floats(0.0, 20_000.0),
)
def test_specific_heat_is_heat_over_clinker_whenever_the_kiln_runs(
    feed: float, coal: float, ncv: float, kw: float
) -> None:
    """Formula property (docs/kpis.md §1): SHC x clinker = heat input; NULL exactly when the kiln is stopped."""
    vals = {
        "kiln1.feed": feed,
        "kiln1.coal_a": coal / 2,
        "kiln1.coal_b": coal / 2,
        "lab.ncv": ncv,
        "kiln1.kw": kw,
        "kiln1.o2_out": 3.0,
        "kiln1.o2_in": 2.0,
    }
    data = frame([(T0, t, v, "good") for t, v in vals.items()])
    rows = compute_kpis(CFG.rule_settings(), data, 60).filter(pl.col("asset") == "kiln1")
    got = dict(zip(rows["kpi"], rows["value"], strict=True))
    clinker = feed / 1.6
    assert got["clinker_tph"] == clinker
    stopped = clinker < max(1.0, 0.05 * 300 / 1.6)
    if stopped:
        assert got["specific_heat_mj_per_t_clinker"] is None
    else:
        assert abs(
            got["specific_heat_mj_per_t_clinker"] * clinker - got["heat_input_gj_per_h"] * 1000
        ) <= 1e-6 * (1 + got["heat_input_gj_per_h"] * 1000)
