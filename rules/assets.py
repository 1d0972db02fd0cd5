"""The asset model: what each signal means to the KPIs (``[[assets]]`` in the config file).

The rules own this model because only the KPI library and the rule engine interpret it; the agent's
configuration (agent/config.py) composes it into the file schema. :class:`RuleSettings` is the
small, agent-independent view of a site that the KPI library and the rule engine take
(docs/architecture.md, "Import directions"). Keys and meanings: docs/configuration.md; formulas:
docs/kpis.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field, model_validator

from common.models import StrictModel
from rules.constants import CURRENT_WINDOW_SECS

AssetType = Literal["kiln", "raw_mill", "coal_mill", "cement_mill", "whr", "plant"]

#: Default direct CO2 factor of a fuel by type, kg CO2/GJ NCV (docs/kpis.md §4, IPCC 2006 Table 2.2).
FUEL_CO2_KG_PER_GJ: dict[str, float] = {
    "bituminous_coal": 94.6,
    "petcoke": 97.5,
    "natural_gas": 56.1,
    "diesel": 74.1,
    "fuel_oil": 77.4,
    "lignite": 101.0,
}

TagList = str | list[str]

#: Roles that name tags (summed when a list), by asset type (docs/configuration.md, ``[[assets]]``).
TAG_ROLES: dict[str, tuple[str, ...]] = {
    "kiln": (
        "kiln_feed_tph",
        "fuel_tph",
        "fuel_ncv_tag",
        "power_kw",
        "ph_exit_temp_c",
        "ph_exit_o2_pct",
        "kiln_inlet_o2_pct",
        "kiln_inlet_co_pct",
        "clinker_temp_c",
        "secondary_air_temp_c",
        "tertiary_air_temp_c",
    ),
    "raw_mill": ("feed_tph", "power_kw", "running"),
    "coal_mill": ("feed_tph", "power_kw", "running"),
    "cement_mill": ("feed_tph", "power_kw", "fineness_blaine_cm2_per_g", "running"),
    "whr": ("generator_kw", "aux_kw", "aqc_inlet_temp_c", "sp_inlet_temp_c"),
    "plant": ("power_kw", "compressor_kw", "production_running"),
}


def as_tag_list(role: TagList | None) -> list[str]:
    """A role names one tag or a list of tags that are summed."""
    if role is None:
        return []
    return [role] if isinstance(role, str) else list(role)


class Asset(StrictModel):
    """One plant section and the tags behind each of its signal roles."""

    #: Unique id; used in KPI rows, rule globs and MQTT topics.
    id: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    #: Plant section type; decides which roles and KPIs apply.
    type: AssetType
    # kiln
    #: t kiln feed per t clinker (raw meal factor); needed to derive clinker from kiln_feed_tph.
    feed_to_clinker: float | None = Field(default=None, gt=0.5, lt=3.0)
    #: Kiln feed (raw meal) weigher(s), t/h; clinker = feed / feed_to_clinker.
    kiln_feed_tph: TagList | None = None
    #: Fuel feeders (main burner, calciner), t/h; summed into the heat input.
    fuel_tph: TagList | None = None
    #: Net calorific value of the fuel, MJ/kg as fired (or fuel_ncv_tag for a lab value).
    fuel_ncv_mj_per_kg: float | None = Field(default=None, gt=0, lt=60)
    #: Tag carrying the fuel's NCV in MJ/kg (a lab value), instead of fuel_ncv_mj_per_kg.
    fuel_ncv_tag: str | None = None
    #: Fuel type for the default CO2 factor when fuel_co2_kg_per_gj is not given.
    fuel_type: str = "bituminous_coal"
    #: Direct CO2 factor of the fuel; unset = the default of fuel_type (docs/kpis.md §4).
    fuel_co2_kg_per_gj: float | None = Field(default=None, ge=0, lt=200)
    #: Calcination CO2 per t clinker (default 525 kg/t, docs/kpis.md §4), unless CaO/MgO are given.
    calcination_co2_kg_per_t: float = Field(default=525.0, ge=0, lt=1000)
    #: CaO content of the clinker, %: calcination CO2 from the composition (docs/kpis.md §4).
    clinker_cao_pct: float | None = Field(default=None, ge=0, le=100)
    #: MgO content of the clinker, % (with clinker_cao_pct).
    clinker_mgo_pct: float | None = Field(default=None, ge=0, le=100)
    #: Preheater exit gas temperature (averaged over the tags), °C.
    ph_exit_temp_c: TagList | None = None
    #: Preheater exit O2, % (with kiln_inlet_o2_pct: preheater false air, docs/kpis.md §8).
    ph_exit_o2_pct: TagList | None = None
    #: Kiln inlet O2, %.
    kiln_inlet_o2_pct: TagList | None = None
    #: Kiln inlet CO, % (incomplete combustion alarm).
    kiln_inlet_co_pct: TagList | None = None
    #: Clinker temperature at the cooler exit, °C.
    clinker_temp_c: TagList | None = None
    #: Secondary air temperature, °C (cooler recuperation).
    secondary_air_temp_c: TagList | None = None
    #: Tertiary air temperature, °C.
    tertiary_air_temp_c: TagList | None = None
    #: Design feed rate; the built-in rules scale minimum-production checks from it.
    nominal_feed_tph: float | None = Field(default=None, gt=0)
    #: Target specific heat the built-in rules compare against.
    target_specific_heat_kcal_per_kg: float | None = Field(default=None, gt=0)
    #: Design preheater exit temperature the built-in rules compare against.
    design_ph_exit_temp_c: float | None = None
    # all
    #: Electrical drives of the asset (main drive, fans, separator), kW; summed.
    power_kw: TagList | None = None
    # mills
    #: Mill feed weigher(s), t/h: the mill's own product for kWh/t.
    feed_tph: TagList | None = None
    #: Run signal(s) (1 = running); the max over the tags.
    running: TagList | None = None
    #: Product fineness (Blaine), cm²/g (cement mills).
    fineness_blaine_cm2_per_g: TagList | None = None
    #: Installed drive power; idle-running checks compare against it.
    rated_power_kw: float | None = Field(default=None, gt=0)
    # whr (and raw/coal mills: the kiln they feed, when a site has more than one)
    #: WHR generator output, kW (gross generation).
    generator_kw: TagList | None = None
    #: WHR auxiliaries (pumps, cooling tower fans), kW; net = generator - aux.
    aux_kw: TagList | None = None
    #: AQC (cooler) boiler inlet gas temperature, °C.
    aqc_inlet_temp_c: TagList | None = None
    #: SP boiler inlet gas temperature, °C.
    sp_inlet_temp_c: TagList | None = None
    #: The kiln asset a WHR unit is credited to, or a raw/coal mill feeds (needed with several kilns).
    kiln: str | None = None
    # plant
    #: Compressed-air compressors, kW (plant asset).
    compressor_kw: TagList | None = None
    #: Plant-wide production flag: compressed-air waste is judged while it is 0.
    production_running: TagList | None = None

    @model_validator(mode="after")
    def _roles_fit_type(self) -> Asset:
        allowed = set(TAG_ROLES[self.type])
        given = {r for rs in TAG_ROLES.values() for r in rs if getattr(self, r) is not None}
        wrong = sorted(given - allowed)
        if wrong:
            raise ValueError(f"role(s) {', '.join(wrong)} do not apply to an asset of type {self.type!r}")
        if self.type == "kiln":
            if self.kiln_feed_tph is not None and self.feed_to_clinker is None:
                raise ValueError("feed_to_clinker is needed to derive clinker from kiln_feed_tph")
            if self.fuel_tph is not None and self.fuel_ncv_mj_per_kg is None and self.fuel_ncv_tag is None:
                raise ValueError("fuel_tph needs fuel_ncv_mj_per_kg or fuel_ncv_tag")
            if self.fuel_co2_kg_per_gj is None and self.fuel_type not in FUEL_CO2_KG_PER_GJ:
                raise ValueError(
                    f"unknown fuel_type {self.fuel_type!r}: give fuel_co2_kg_per_gj or one of "
                    + ", ".join(sorted(FUEL_CO2_KG_PER_GJ))
                )
        if self.type == "whr" and self.kiln is None:
            raise ValueError("a whr asset names the kiln its clinker is credited to: kiln = '...'")
        return self

    def role_tags(self, role: str) -> list[str]:
        """Tags behind a role, empty when the role is not configured."""
        value = getattr(self, role, None)
        return as_tag_list(value) if role in TAG_ROLES[self.type] else []

    def roles(self) -> dict[str, list[str]]:
        """Every configured tag role of this asset."""
        return {r: self.role_tags(r) for r in TAG_ROLES[self.type] if self.role_tags(r)}

    @property
    def co2_kg_per_gj(self) -> float:
        if self.fuel_co2_kg_per_gj is not None:
            return self.fuel_co2_kg_per_gj
        return FUEL_CO2_KG_PER_GJ[self.fuel_type]


def asset_problems(assets: Sequence[Asset], tag_names: Iterable[str]) -> list[str]:
    """Cross-references the single-asset validation cannot see: one line per problem, key path first.

    Duplicate ids, roles naming tags no source defines, and WHR units credited to a non-kiln.
    """
    known = set(tag_names)
    problems: list[str] = []
    ids = [a.id for a in assets]
    kilns = {a.id for a in assets if a.type == "kiln"}
    for i, a in enumerate(assets):
        if ids.count(a.id) > 1 and ids.index(a.id) != i:
            problems.append(f"assets[{i}].id: duplicate asset id {a.id!r}")
        for role, tags in a.roles().items():
            problems.extend(f"assets[{i}].{role}: unknown tag {t!r}" for t in tags if t not in known)
        if a.fuel_ncv_tag is not None and a.fuel_ncv_tag not in known:
            problems.append(f"assets[{i}].fuel_ncv_tag: unknown tag {a.fuel_ncv_tag!r}")
        if a.type == "whr" and a.kiln is not None and a.kiln not in kilns:
            problems.append(f"assets[{i}].kiln: {a.kiln!r} is not a kiln asset")
    return problems


@dataclass(frozen=True)
class RuleSettings:
    """What the KPI library and the rule engine need to know about a site, and nothing more.

    Built by the agent from its configuration (``Config.rule_settings()``) or directly in tests and
    benchmarks; it keeps ``rules/`` independent of the agent's file schema.
    """

    site: str
    assets: tuple[Asset, ...]
    #: Engineering unit of every configured tag (units of pass-through KPIs and rule messages).
    tag_units: Mapping[str, str] = field(default_factory=dict)
    #: Net WHR generation off comprehensive electricity (docs/kpis.md §3).
    net_whr_in_comprehensive_power: bool = True
    #: Site altitude and pressure: GB 16780 grade-3 correction above 1500 m (docs/kpis.md §3).
    altitude_m: float = 0.0
    site_pressure_pa: float | None = None
    #: A good sample older than this is reported as ``stale`` by the rule engine.
    stale_after_secs: float = 30.0
    #: Extra rule packs, loaded after the built-in pack (same id = override).
    rule_files: tuple[str, ...] = ()
    #: Current values (MQTT ``kpi``, terminal, rules without ``window``) are over the raw samples of
    #: [now - this, now); the caller keeps at least this many seconds of raw samples in the window.
    current_window_secs: int = CURRENT_WINDOW_SECS

