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

#: Default direct CO2 factor of a fuel by type, kg CO2/GJ NCV, for the single-fuel keys
#: (``fuel_type``; docs/kpis.md §4, IPCC 2006 Table 2.2). Kept as they were so that a single-fuel
#: configuration gives the same numbers as before fuels could be listed.
FUEL_CO2_KG_PER_GJ: dict[str, float] = {
    "bituminous_coal": 94.6,
    "petcoke": 97.5,
    "natural_gas": 56.1,
    "diesel": 74.1,
    "fuel_oil": 77.4,
    "lignite": 101.0,
}

FuelCategory = Literal["fossil", "alternative_fossil", "biomass"]

#: Defaults of a listed fuel by ``fuel_type`` (docs/kpis.md §9.1: CSI/GCCA protocol fuel categories,
#: emission factors on total carbon and biogenic carbon shares): (category, kg CO2/GJ, biogenic share).
#: Used only when the fuel's own value is not configured, and then reported as a default.
FUEL_DEFAULTS: dict[str, tuple[FuelCategory, float, float]] = {
    "coal": ("fossil", 96.0, 0.0),
    "petcoke": ("fossil", 92.8, 0.0),
    "heavy_fuel_oil": ("fossil", 77.4, 0.0),
    "diesel": ("fossil", 74.1, 0.0),
    "natural_gas": ("fossil", 56.1, 0.0),
    "lignite": ("fossil", 101.0, 0.0),
    "shale": ("fossil", 107.0, 0.0),
    "waste_oil": ("alternative_fossil", 74.0, 0.0),
    "tyres": ("alternative_fossil", 85.0, 0.20),
    "plastics": ("alternative_fossil", 75.0, 0.0),
    "solvents": ("alternative_fossil", 74.0, 0.0),
    "mixed_industrial_waste": ("alternative_fossil", 83.0, 0.0),
    "other_fossil_waste": ("alternative_fossil", 80.0, 0.0),
    "wood": ("biomass", 110.0, 1.0),
    "sawdust": ("biomass", 110.0, 1.0),
    "paper": ("biomass", 110.0, 1.0),
    "sewage_sludge": ("biomass", 110.0, 1.0),
    "agricultural_waste": ("biomass", 110.0, 1.0),
    "animal_meal": ("biomass", 89.0, 1.0),
}
#: Defaults by category when neither the value nor a known ``fuel_type`` is given (docs/kpis.md §9.1):
#: coal for fossil, "other fossil wastes" for alternative fossil, solid biomass for biomass.
CATEGORY_DEFAULTS: dict[str, tuple[float, float]] = {
    "fossil": (96.0, 0.0),
    "alternative_fossil": (80.0, 0.0),
    "biomass": (110.0, 1.0),
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
        "ph_exit_co_pct",
        "clinker_temp_c",
        "secondary_air_temp_c",
        "tertiary_air_temp_c",
    ),
    "raw_mill": ("feed_tph", "power_kw", "running"),
    "coal_mill": ("feed_tph", "power_kw", "running"),
    "cement_mill": ("feed_tph", "power_kw", "fineness_blaine_cm2_per_g", "running", "clinker_feed_tph"),
    "whr": ("generator_kw", "aux_kw", "aqc_inlet_temp_c", "sp_inlet_temp_c"),
    "plant": ("power_kw", "compressor_kw", "production_running"),
}


def as_tag_list(role: TagList | None) -> list[str]:
    """A role names one tag or a list of tags that are summed."""
    if role is None:
        return []
    return [role] if isinstance(role, str) else list(role)


class FuelAnalysis(StrictModel):
    """As-fired ultimate analysis of a fuel, mass %: flue gas from its composition (docs/kpis.md §10)."""

    #: Carbon, % of the fuel as fired.
    c_pct: float = Field(ge=0, le=100)
    #: Hydrogen, %.
    h_pct: float = Field(ge=0, le=100)
    #: Oxygen, %.
    o_pct: float = Field(default=0.0, ge=0, le=100)
    #: Nitrogen, %.
    n_pct: float = Field(default=0.0, ge=0, le=100)
    #: Sulphur, %.
    s_pct: float = Field(default=0.0, ge=0, le=100)
    #: Moisture (total water as fired), %.
    moisture_pct: float = Field(default=0.0, ge=0, le=100)

    @model_validator(mode="after")
    def _adds_up(self) -> FuelAnalysis:
        total = self.c_pct + self.h_pct + self.o_pct + self.n_pct + self.s_pct + self.moisture_pct
        if total > 100.0 + 1e-9:
            raise ValueError(f"c, h, o, n, s and moisture add up to {total:g} % (more than 100 %)")
        return self


class Fuel(StrictModel):
    """One fuel fired in a kiln (``[[assets.fuels]]``): its feeders and what a tonne of it means.

    The CSI/GCCA protocol reports fuels by category, each with its own NCV, emission factor and
    biogenic carbon share (docs/kpis.md §9): summing unlike fuels under one NCV would give a wrong
    heat input and a wrong CO2 figure.
    """

    #: Unique within the kiln; names the KPI ``fuel_<name>_gj_per_h``.
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)
    #: CSI protocol category: fossil | alternative_fossil (incl. mixed wastes) | biomass.
    category: FuelCategory
    #: Feeder(s) of this fuel, t/h as fired; a list is summed.
    tph: TagList
    #: Net calorific value as fired, MJ/kg (= GJ/t), on the same basis as the weighed mass.
    ncv_mj_per_kg: float | None = Field(default=None, gt=0, lt=60)
    #: Tag carrying the NCV in MJ/kg (a lab value), instead of ncv_mj_per_kg.
    ncv_tag: str | None = None
    #: Kind of fuel (coal, petcoke, tyres, wood, ...): picks the default co2_kg_per_gj and
    #: biogenic_fraction of docs/kpis.md §9.1 when those are not given.
    fuel_type: str | None = None
    #: CO2 factor on total carbon, kg CO2/GJ NCV; unset = the default of fuel_type, else of category.
    co2_kg_per_gj: float | None = Field(default=None, ge=0, lt=200)
    #: Share of the fuel's carbon that is biogenic, 0..1; unset = the default (biomass 1, tyres 0.2,
    #: others 0). Its CO2 is a memo item, in neither gross nor net CO2.
    biogenic_fraction: float | None = Field(default=None, ge=0, le=1)
    #: Price per GJ (in [agent] currency), for the money KPIs of the marginal fuel.
    price_per_gj: float | None = Field(default=None, ge=0)
    #: The fuel the kiln controller trims: deviations from target are priced and CO2-rated with it.
    #: Unset on every fuel = the first fossil fuel (or the only fuel).
    marginal: bool = False
    #: Ground in the kiln's coal mill (its t/h enters the coal-mill share of clinker power,
    #: docs/kpis.md §2); unset = true for solid fossil fuels (category fossil, not gas or oil).
    coal_mill: bool | None = None
    #: As-fired ultimate analysis for the flue-gas volume; unset = reference coal per MJ (docs/kpis.md §10).
    analysis: FuelAnalysis | None = None

    @model_validator(mode="after")
    def _needs_ncv(self) -> Fuel:
        if self.ncv_mj_per_kg is None and self.ncv_tag is None:
            raise ValueError("a fuel needs ncv_mj_per_kg or ncv_tag")
        if self.ncv_mj_per_kg is not None and self.ncv_tag is not None:
            raise ValueError("give ncv_mj_per_kg or ncv_tag, not both")
        if self.fuel_type is not None and self.fuel_type not in FUEL_DEFAULTS:
            raise ValueError(
                f"unknown fuel_type {self.fuel_type!r}: one of {', '.join(sorted(FUEL_DEFAULTS))}, "
                "or leave it out and give co2_kg_per_gj and biogenic_fraction"
            )
        return self

    def _default(self) -> tuple[float, float]:
        if self.fuel_type is not None:
            _, ef, b = FUEL_DEFAULTS[self.fuel_type]
            return ef, b
        return CATEGORY_DEFAULTS[self.category]

    @property
    def co2_factor(self) -> float:
        """kg CO2 per GJ on total carbon: configured, else the fuel type's or category's default."""
        return self.co2_kg_per_gj if self.co2_kg_per_gj is not None else self._default()[0]

    @property
    def biogenic(self) -> float:
        """Biogenic share of the carbon, 0..1: configured, else the default."""
        return self.biogenic_fraction if self.biogenic_fraction is not None else self._default()[1]

    @property
    def ground_in_coal_mill(self) -> bool:
        if self.coal_mill is not None:
            return self.coal_mill
        return self.category == "fossil" and self.fuel_type not in ("natural_gas", "diesel", "heavy_fuel_oil")

    def defaults_used(self) -> list[str]:
        """Keys whose value is a default, not the plant's (check-config shows them as notes)."""
        out = []
        if self.co2_kg_per_gj is None:
            out.append(f"co2_kg_per_gj = {self.co2_factor:g}")
        if self.biogenic_fraction is None and self.category != "fossil":  # fossil carbon is fossil
            out.append(f"biogenic_fraction = {self.biogenic:g}")
        return out


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
    #: Kiln inlet CO, % (incomplete combustion alarm; an upper bound of the CO loss, docs/kpis.md §10).
    kiln_inlet_co_pct: TagList | None = None
    #: Preheater exit CO, % (same basis as ph_exit_o2_pct): the CO loss itself (docs/kpis.md §10).
    ph_exit_co_pct: TagList | None = None
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
    #: Design preheater exit temperature: the built-in rules compare against it, and with
    #: design_ph_exit_o2_pct and design_clinker_temp_c it is the reference state of the loss
    #: attribution (docs/kpis.md §10), whose design specific heat is target_specific_heat_kcal_per_kg.
    design_ph_exit_temp_c: float | None = Field(default=None, gt=0, lt=1000)
    #: Design preheater exit O2, % on the o2_basis (loss attribution reference state).
    design_ph_exit_o2_pct: float | None = Field(default=None, ge=0, lt=20.9)
    #: Design clinker temperature at the cooler exit, °C (loss attribution reference state).
    design_clinker_temp_c: float | None = Field(default=None, gt=0, lt=1000)
    #: Basis of the O2 analysers (design and measured alike): ``dry`` for extractive (cooled, dried
    #: sample) analysers, ``wet`` for in-situ zirconia probes (docs/kpis.md §10).
    o2_basis: Literal["dry", "wet"] = "dry"
    #: Ambient temperature, °C: the reference of the exit-gas and clinker sensible heat.
    ambient_temp_c: float = Field(default=20.0, ge=-50, le=60)
    #: Share of the fuel fired at the kiln burner (the rest in the calciner): sizes the kiln-inlet
    #: gas for the CO loss upper bound when only kiln-inlet CO is measured (docs/kpis.md §10).
    kiln_burner_fuel_share: float = Field(default=0.40, gt=0, le=1)
    #: The fuels fired (``[[assets.fuels]]``), instead of fuel_tph / fuel_ncv_* (docs/kpis.md §9).
    fuels: list[Fuel] | None = None
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
    #: Clinker feeder(s) of a cement mill, t/h: the clinker factor (docs/kpis.md §9).
    clinker_feed_tph: TagList | None = None
    #: Moisture of the mill's non-clinker components (gypsum, limestone, slag, ...), % of their wet
    #: mass: the clinker factor is on a dry basis (docs/kpis.md §9).
    mic_moisture_pct: float | None = Field(default=None, ge=0, lt=100)
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
    #: The kiln asset a WHR unit is credited to, a raw/coal mill feeds, or whose clinker a cement
    #: mill grinds (needed with several kilns).
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
            if self.fuels is not None:
                single = [
                    k
                    for k in ("fuel_tph", "fuel_ncv_mj_per_kg", "fuel_ncv_tag", "fuel_co2_kg_per_gj")
                    if getattr(self, k) is not None
                ]
                if single:
                    raise ValueError(
                        f"{', '.join(single)}: give the fuels as [[assets.fuels]] or with the"
                        " single-fuel keys, not both"
                    )
                if not self.fuels:
                    raise ValueError("fuels is empty: list at least one [[assets.fuels]] or leave it out")
                if sum(f.marginal for f in self.fuels) > 1:
                    raise ValueError("more than one fuel has marginal = true (the kiln trims one fuel)")
            if self.fuel_co2_kg_per_gj is None and self.fuel_type not in FUEL_CO2_KG_PER_GJ:
                raise ValueError(
                    f"unknown fuel_type {self.fuel_type!r}: give fuel_co2_kg_per_gj or one of "
                    + ", ".join(sorted(FUEL_CO2_KG_PER_GJ))
                )
        elif self.fuels is not None:
            raise ValueError(f"fuels apply to a kiln, not to an asset of type {self.type!r}")
        if self.mic_moisture_pct is not None and self.type != "cement_mill":
            raise ValueError("mic_moisture_pct applies to a cement_mill")
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

    def fuel_list(self) -> tuple[Fuel, ...]:
        """The kiln's fuels: the listed ones, or the single-fuel keys as one fossil fuel named ``fuel``.

        One code path computes heat input and CO2 for both layouts, so a single-fuel configuration
        gives the numbers it always gave (docs/kpis.md §9).
        """
        if self.type != "kiln":
            return ()
        if self.fuels is not None:
            return tuple(self.fuels)
        if self.fuel_tph is None:
            return ()
        return (
            Fuel(
                name="fuel",
                category="fossil",
                tph=self.fuel_tph,
                ncv_mj_per_kg=self.fuel_ncv_mj_per_kg,
                ncv_tag=self.fuel_ncv_tag,
                co2_kg_per_gj=self.co2_kg_per_gj,
                biogenic_fraction=0.0,
                marginal=True,
                coal_mill=True,
            ),
        )

    def marginal_fuel(self) -> Fuel | None:
        """The fuel deviations are priced with: the one marked marginal, else the first fossil fuel,
        else the first fuel (docs/kpis.md §11)."""
        fuels = self.fuel_list()
        for f in fuels:
            if f.marginal:
                return f
        return next((f for f in fuels if f.category == "fossil"), fuels[0] if fuels else None)

    def all_tags(self) -> list[str]:
        """Every tag this asset reads: its roles, the NCV tag and each fuel's feeders and NCV tag."""
        out = [t for tags in self.roles().values() for t in tags]
        if self.fuel_ncv_tag is not None:
            out.append(self.fuel_ncv_tag)
        for f in self.fuels or ():
            out += as_tag_list(f.tph)
            if f.ncv_tag is not None:
                out.append(f.ncv_tag)
        return list(dict.fromkeys(out))

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
            twice = sorted({t for t in tags if tags.count(t) > 1})
            problems.extend(
                f"assets[{i}].{role}: tag {t!r} listed twice (it would count twice)" for t in twice
            )
        if a.fuel_ncv_tag is not None and a.fuel_ncv_tag not in known:
            problems.append(f"assets[{i}].fuel_ncv_tag: unknown tag {a.fuel_ncv_tag!r}")
        names: dict[str, int] = {}
        for j, f in enumerate(a.fuels or ()):
            at = f"assets[{i}].fuels[{j}]"
            if f.name in names:
                problems.append(f"{at}.name: duplicate fuel name {f.name!r} (also fuels[{names[f.name]}])")
            names.setdefault(f.name, j)
            tph = as_tag_list(f.tph)
            problems.extend(f"{at}.tph: unknown tag {t!r}" for t in tph if t not in known)
            problems.extend(
                f"{at}.tph: tag {t!r} listed twice (it would count twice)"
                for t in sorted({t for t in tph if tph.count(t) > 1})
            )
            if f.ncv_tag is not None and f.ncv_tag not in known:
                problems.append(f"{at}.ncv_tag: unknown tag {f.ncv_tag!r}")
        if a.type in ("whr", "cement_mill") and a.kiln is not None and a.kiln not in kilns:
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
    #: Money label of the cost KPIs (``excess_fuel_cost_per_h`` in ``{currency}/h``; docs/kpis.md §11).
    currency: str = ""
    #: Indirect CO2 of purchased electricity, kg/kWh (docs/kpis.md §11); None = no power CO2 KPIs.
    grid_co2_kg_per_kwh: float | None = None
    #: Electricity price per kWh; None = no power cost KPIs.
    electricity_price_per_kwh: float | None = None
