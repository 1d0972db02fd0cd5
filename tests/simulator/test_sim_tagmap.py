"""The register/node map and the pure register codec (no sockets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_support import decode_tags

from simulator.registers import RegisterCodec
from simulator.tagmap import (
    NAMESPACE_INDEX,
    build_tagmap,
    extra_tags_for,
    filler_base,
    markdown_table,
)


def test_one_line_has_a_complete_signal_set_with_domain_signals() -> None:
    tm = build_tagmap()
    assert 55 <= len(tm) <= 80
    for name in (
        "kiln1.feed_tph",
        "kiln1.main_burner_coal_tph",
        "kiln1.calciner_coal_tph",
        "kiln1.rdf_tph",
        "kiln1.biomass_tph",
        "kiln1.ph_exit_temp_c",
        "kiln1.ph_exit_o2_pct",
        "kiln1.kiln_inlet_o2_pct",
        "kiln1.kiln_inlet_co_pct",
        "kiln1.clinker_temp_c",
        "kiln1.main_drive_kw",
        "kiln1.id_fan_kw",
        "kiln1.cooler_fans_kw",
        "kiln1.burning_zone_temp_c",
        "kiln1.tertiary_air_temp_c",
        "kiln1.free_lime_pct",
        "raw_mill1.feed_tph",
        "raw_mill1.main_drive_kw",
        "raw_mill1.fan_kw",
        "raw_mill1.running",
        "coal_mill1.feed_tph",
        "cement_mill1.fineness_blaine_cm2_per_g",
        "cement_mill1.clinker_feeder_tph",
        "whr1.generator_kw",
        "whr1.aux_kw",
        "plant.incomer_kwh_total",
        "plant.compressor_kw",
        "plant.production_running",
    ):
        assert name in tm.by_name, name
    assert {t.data_type for t in tm.tags} == {"float32", "int16", "uint16", "uint32", "bool"}
    assert {t.word_order for t in tm.tags if t.data_type == "float32"} == {"big", "little"}
    assert {t.table for t in tm.tags} == {"holding", "input", "coil", "discrete"}


@pytest.mark.parametrize(("lines", "extra"), [(1, 0), (3, 50), (20, 1000)])
def test_addresses_never_overlap_and_node_ids_are_unique(lines: int, extra: int) -> None:
    tm = build_tagmap(lines=lines, extra_tags=extra)
    used: dict[tuple[str, int], str] = {}
    for t in tm.tags:
        for a in range(t.address, t.address + t.width):
            assert (t.table, a) not in used, f"{t.name} overlaps {used[(t.table, a)]}"
            used[(t.table, a)] = t.name
    assert len({t.node_id for t in tm.tags}) == len(tm)
    assert len(set(tm.names)) == len(tm)
    assert all(t.node_id.startswith(f"ns={NAMESPACE_INDEX};s=") for t in tm.tags)


def test_lines_multiply_the_plant_and_keep_line_one_addresses() -> None:
    one, three = build_tagmap(lines=1), build_tagmap(lines=3)
    per_line = len(one) - len(one.asset_tags("plant"))
    assert len(three) == len(one) + 2 * per_line
    assert three["kiln3.feed_tph"].address == one["kiln1.feed_tph"].address + 200
    for t in one.tags:
        assert (three[t.name].table, three[t.name].address) == (t.table, t.address)
    assert three["whr2.generator_kw"].node_id == "ns=2;s=WHR2.GeneratorPower"
    assert three["plant.incomer_kw"].normal == tuple(3 * x for x in one["plant.incomer_kw"].normal)


@pytest.mark.parametrize("lines", [1, 3])
def test_appended_feeders_leave_every_original_address_where_it_was(lines: int) -> None:
    """The fuel and clinker feeders came after the map was published: each line's original tags keep
    their addresses (pinned here from the published map) and the feeders sit above all of them."""
    tm = build_tagmap(lines=lines)
    for k in range(1, lines + 1):
        base = 100 * k
        published = {  # landmarks and the last original holding and input registers
            f"kiln{k}.feed_tph": base,
            f"kiln{k}.main_drive_kw": base + 6,
            f"cement_mill{k}.feed_tph": base + 33,
            f"whr{k}.generator_kwh_total": base + 54,
            f"whr{k}.main_steam_temp_c": base + 35,
        }
        assert {n: tm[n].address for n in published} == published
        appended = {
            f"kiln{k}.rdf_tph": (base + 56, "big"),
            f"kiln{k}.biomass_tph": (base + 58, "big"),
            f"cement_mill{k}.clinker_feeder_tph": (base + 60, "little"),
        }
        assert {n: (tm[n].address, tm[n].word_order) for n in appended} == appended
        for name in appended:
            t = tm[name]
            assert (t.table, t.data_type, t.unit) == ("holding", "float32", "t/h")
            originals = [
                o for o in tm.tags if o.line == k and o.table == "holding" and o.name not in appended
            ]
            assert t.address >= max(o.address + o.width for o in originals)


def test_filler_tags_reach_exactly_ten_thousand_tags() -> None:
    n = extra_tags_for(10_000)
    tm = build_tagmap(extra_tags=n)
    assert len(tm) == 10_000
    fill = [t for t in tm.tags if t.asset_type == "filler"]
    assert fill[0].address == filler_base(1) == 1000
    assert fill[-1].address == 1000 + 2 * (n - 1)
    with pytest.raises(ValueError, match="do not fit"):
        build_tagmap(extra_tags=40_000)
    with pytest.raises(ValueError):
        extra_tags_for(10)


def test_markdown_table_lists_every_real_tag() -> None:
    tm = build_tagmap(extra_tags=3)
    text = markdown_table(tm)
    assert all(f"`{t.name}`" in text for t in tm.tags if t.asset_type != "filler")
    assert "fill.v00000" not in text
    assert "`ns=2;s=WHR1.GeneratorPower`" in text


values_strategy = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(values_strategy, min_size=1, max_size=1))
def test_register_image_decodes_to_the_quantized_value(seed_values: list[float]) -> None:
    """encode -> pymodbus convert_from_registers -> x scale == quantize, for every tag and type."""
    tm = build_tagmap(lines=2, extra_tags=5)
    codec = RegisterCodec(tm)
    rng = np.random.default_rng(abs(int(seed_values[0])) % 2**32)
    values = np.empty(len(tm))
    for t in tm.tags:
        lo, hi = t.instrument or (0.0, 1.0e8 if t.counter else 1.0)
        values[t.index] = rng.uniform(lo, hi)
    q = codec.quantize(values)
    images = {table: img.astype(np.int64).tolist() for table, img in codec.encode(values).items()}
    decoded = decode_tags(tm.tags, images)
    for t in tm.tags:
        assert decoded[t.name] == q[t.index], t.name
        tolerance = max(t.scale, abs(values[t.index]) * 1e-6) if not t.is_bool else 1.0
        assert abs(q[t.index] - values[t.index]) <= tolerance, t.name


def test_quantize_saturates_integers_instead_of_wrapping() -> None:
    tm = build_tagmap()
    codec = RegisterCodec(tm)
    values = np.zeros(len(tm))
    i16 = tm["kiln1.ph_exit_temp_c"].index
    u16 = tm["cement_mill1.fineness_blaine_cm2_per_g"].index
    values[i16], values[u16] = 99_999.0, -5.0
    q = codec.quantize(values)
    assert q[i16] == pytest.approx(3276.7)
    assert q[u16] == 0.0


def test_docs_carry_the_current_map() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "simulator.md"
    assert markdown_table(build_tagmap()) in docs.read_text(encoding="utf-8"), (
        "docs/simulator.md map is stale: paste `kilnwatch simulate --print-map` into it"
    )
