"""Rule packs (docs/rules.md): the built-in cement pack, site overrides and load-time errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from rules_support import EXAMPLE1_KILN, make_config

from rules.engine import RuleEngine
from rules.packs import RulePackError, load_rules, parse_rule_pack, render_message

BUILTIN_IDS = {
    "kiln.specific_heat.high",
    "kiln.ph_exit_temp.high",
    "kiln.false_air.high",
    "kiln.false_air.critical",
    "kiln.co.high",
    "kiln.loss.excess_air",
    "kiln.loss.exit_gas_temp",
    "kiln.loss.clinker_temp",
    "cooler.clinker_temp.high",
    "cooler.secondary_air.low",
    "cooler.tertiary_air.low",
    "mill.running_empty",
    "mill.idle_running",
    "mill.specific_power.high",
    "mill.specific_power.above_baseline",
    "whr.net_generation.low",
    "plant.compressed_air.leak",
}


def write(tmp_path: Path, text: str, name: str = "site.toml") -> str:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


def test_builtin_pack_loads_and_covers_domain_section_8() -> None:
    rules = load_rules(make_config([EXAMPLE1_KILN]).rule_settings())
    assert {r.id for r in rules} == BUILTIN_IDS
    by_id = {r.id: r for r in rules}
    shc = by_id["kiln.specific_heat.high"]
    assert shc.for_secs == 1800 and shc.window_secs == 3600  # docs/kpis.md §8: rolling 60 min, 30 min
    assert shc.suppress_when is not None and "nominal_feed_tph" in shc.suppress_when.names
    assert by_id["kiln.false_air.critical"].severity == "critical"
    assert by_id["mill.running_empty"].for_secs == 600
    assert all(r.source == "<built-in>/cement.toml" for r in rules)


def test_site_file_replaces_a_builtin_rule_by_id(tmp_path: Path) -> None:
    f = write(
        tmp_path,
        """
[[rule]]
id = "kiln.co.high"
asset = "kiln1"
when = "kiln_inlet_co_pct > 0.3"
for = "2m"
severity = "critical"
""",
    )
    rules = load_rules(make_config([EXAMPLE1_KILN], rule_files=[f]).rule_settings())
    co = [r for r in rules if r.id == "kiln.co.high"]
    assert len(co) == 1
    assert co[0].severity == "critical" and co[0].for_secs == 120 and co[0].source == f
    assert co[0].clear is None  # replaced as a whole, not merged


def test_enabled_false_disables_a_builtin_rule(tmp_path: Path) -> None:
    f = write(tmp_path, '[[rule]]\nid = "kiln.co.high"\nenabled = false\n')
    rules = load_rules(make_config([EXAMPLE1_KILN], rule_files=[f]).rule_settings())
    assert "kiln.co.high" not in {r.id for r in rules}
    assert len(rules) == len(BUILTIN_IDS) - 1


def test_unknown_name_fails_at_load_with_file_rule_and_name(tmp_path: Path) -> None:
    f = write(tmp_path, '[[rule]]\nid = "my.rule"\nwhen = "shc_kcal > 800 and clinker_tph > 10"\n')
    with pytest.raises(RulePackError) as err:
        load_rules(make_config([EXAMPLE1_KILN], rule_files=[f]).rule_settings())
    assert err.value.problems == [f"{f}: rule 'my.rule': unknown name 'shc_kcal'"]


def test_name_of_another_asset_type_is_reported(tmp_path: Path) -> None:
    f = write(tmp_path, '[[rule]]\nid = "x"\nasset_type = "kiln"\nwhen = "feed_tph < 1"\n')
    with pytest.raises(RulePackError) as err:
        load_rules(make_config([EXAMPLE1_KILN], rule_files=[f]).rule_settings())
    assert "name 'feed_tph' does not apply to kiln assets" in err.value.problems[0]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('id = "a"\nwhen = "x >"', "when: unexpected 'end of text' at column 4"),
        ('id = "a"\nwhen = "clinker_tph > 1"\nfor = "10 minutes"', "for: '10 minutes' is not a duration"),
        (
            'id = "a"\nwhen = "clinker_tph > 1"\nseverity = "high"',
            "severity must be one of info, warning, critical",
        ),
        ('id = "a"\nwhen = "clinker_tph > 1"\nmesage = "x"', "unknown key 'mesage' (typo?)"),
        ('id = "a"\nwhen = "clinker_tph > 1"\nmessage = "{value.real}"', "message field {value.real}"),
        ('id = "a"\nwhen = "clinker_tph > 1"\nmessage = "{value:.q}"', "bad message template"),
        ('id = "a"\nwhen = "clinker_tph > 1"\nasset_type = "silo"', "asset_type must be one or a list of"),
        ('id = "a b"\nwhen = "clinker_tph > 1"', "id must be a text"),
        ('id = "a"', "'when' is required"),
        ('id = "a"\nwhen = "clinker_tph + 1"', "must compare something"),
    ],
)
def test_bad_rules_give_one_line_per_problem(tmp_path: Path, body: str, fragment: str) -> None:
    f = write(tmp_path, f"[[rule]]\n{body}\n")
    with pytest.raises(RulePackError) as err:
        load_rules(make_config([EXAMPLE1_KILN], rule_files=[f]).rule_settings())
    assert any(fragment in p for p in err.value.problems), err.value.problems
    assert all(p.startswith(f"{f}: ") for p in err.value.problems)


def test_file_level_problems(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.toml")
    broken = write(tmp_path, "[[rule]\n", "broken.toml")
    dup = write(
        tmp_path,
        '[[rule]]\nid = "a"\nwhen = "clinker_tph > 1"\n[[rule]]\nid = "a"\nwhen = "clinker_tph > 2"\n[rules]\n',
        "dup.toml",
    )
    with pytest.raises(RulePackError) as err:
        load_rules(make_config([EXAMPLE1_KILN], rule_files=[missing, broken, dup]).rule_settings())
    text = "\n".join(err.value.problems)
    assert f"{missing}: cannot read" in text
    assert f"{broken}: not valid TOML" in text
    assert f"{dup}: rule 'a': id declared twice in this file" in text
    assert f"{dup}: unknown top-level key 'rules'" in text


def test_mill_linked_to_a_non_kiln_is_a_load_problem() -> None:
    cfg = make_config(
        [
            EXAMPLE1_KILN,
            {"id": "rm1", "type": "raw_mill", "feed_tph": "rm1.feed", "power_kw": "rm1.kw", "kiln": "cm1"},
        ]
    )
    with pytest.raises(RulePackError, match=r"assets\[1\].kiln: 'cm1' is not a kiln asset"):
        load_rules(cfg.rule_settings())


def test_message_template_formats_missing_values_as_na() -> None:
    assert (
        render_message("{value:.0f} > {threshold:.1f} {unit}", value=None, threshold=2, unit="%")
        == "n/a > 2.0 %"
    )


def test_rule_reads_only_names_the_asset_has() -> None:
    """A kiln without a CO analyser is not checked by the CO rule (and nothing fails)."""
    cfg = make_config([EXAMPLE1_KILN])
    engine = RuleEngine(cfg.rule_settings())
    active = {c.rule.id for cs in engine._groups.values() for c in cs}
    assert "kiln.false_air.high" in active
    assert "kiln.co.high" not in active  # no kiln_inlet_co_pct role
    assert "kiln.specific_heat.high" not in active  # no target_specific_heat_kcal_per_kg


def test_parse_rule_pack_reports_without_raising() -> None:
    rules, disabled, problems = parse_rule_pack('[[rule]]\nid = "x"\nenabled = false\n', "p.toml")
    assert (rules, disabled, problems) == ([], ["x"], [])
