"""The asset model: a site's configuration prepared once for KPI evaluation, and the evaluation itself.

:class:`AssetModel` owns everything static about a site's assets - which tags feed which signal role
of which asset, each asset's parameters, which kiln a mill or WHR unit belongs to, which KPIs and
names apply to each asset - and evaluates the KPI stages (rules/stages.py) on it: tag statistics
(rules/dense.py) -> signal frame -> KPI frame -> long ``kpi`` rows (docs/auditors.md).

Separate from the catalogue (rules/catalogue.py, site-independent) and from the batch entry points
(rules/kpi.py) because it is the one stateful piece: built from :class:`rules.assets.RuleSettings`
when the configuration is loaded, then reused by every tick and backfill. Cross-asset KPIs and
their links: docs/kpis.md §2, §3, §5.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import polars as pl

from rules import constants as C
from rules.assets import Asset, RuleSettings, as_tag_list
from rules.catalogue import (
    ALL_ROLES,
    EXTERNAL,
    KPIS,
    MILLS,
    NCV,
    PARAMS,
    KpiSpec,
    empty_kpi_rows,
    kpi_column,
    role_aggregation,
    unit_of,
)
from rules.dense import DenseStats, TagIndex, combine_roles
from rules.fuels import FuelSlots, fuel_kpi, ncv_role, tph_role
from rules.kiln_arrays import kiln_columns, nulls
from rules.losses import LossPlan, loss_columns, loss_plans
from rules.stages import SMALL_ENGINE, stage_a, stage_c


# ------------------------------------------------------------------------------------ build steps
def _kiln_links(assets: Sequence[Asset], by_id: dict[str, Asset]) -> tuple[dict[str, str | None], list[str]]:
    """The kiln each raw, coal and cement mill and WHR unit belongs to (None for every other asset).

    Cross-asset KPIs (mill power per t clinker, WHR per t clinker: docs/kpis.md §2, §5) group a kiln
    with its linked assets under one key, so each link is resolved once, here. A WHR unit keeps the
    ``kiln`` it names; a mill without ``kiln`` belongs to the only kiln of a one-kiln site; a mill
    naming an asset that is not a kiln is left unlinked and reported in ``problems`` (config order).
    """
    kilns = [a for a in assets if a.type == "kiln"]
    problems: list[str] = []

    def link_of(i: int, a: Asset) -> str | None:
        if a.type == "whr":
            return a.kiln
        if a.type not in ("raw_mill", "coal_mill", "cement_mill"):
            return None
        if a.kiln is not None:
            if a.kiln in by_id and by_id[a.kiln].type == "kiln":
                return a.kiln
            problems.append(f"assets[{i}].kiln: {a.kiln!r} is not a kiln asset")
            return None
        return kilns[0].id if len(kilns) == 1 else None

    links = {a.id: link_of(i, a) for i, a in enumerate(assets)}
    return links, problems


def _credited_kiln(a: Asset, by_id: dict[str, Asset], links: dict[str, str | None]) -> Asset | None:
    """The kiln a WHR unit is credited to or a cement mill grinds the clinker of (None for other
    assets and for an unknown id)."""
    return by_id.get(links[a.id] or "") if a.type in ("whr", "cement_mill") else None


def _role_map(assets: Sequence[Asset]) -> pl.DataFrame:
    """One row per (tag, asset, role): which tags feed which signal of which asset, and how they combine.

    The model's tag index and its per-role gather arrays are derived from this frame. The NCV tag
    role appears under the value's name (:data:`rules.catalogue.NCV`); a tag listed twice in one
    role counts once. Each kiln fuel's feeders and NCV tag are the slot roles of rules/fuels.py.
    """
    rm_rows: list[dict[str, object]] = []
    for a in assets:
        for role, tags in a.roles().items():
            name = NCV if role == "fuel_ncv_tag" else role
            for t in dict.fromkeys(tags):
                rm_rows.append(
                    {
                        "tag": t,
                        "asset": a.id,
                        "role": name,
                        "how": role_aggregation(name),
                        "n_tags": len(set(tags)),
                    }
                )
        for k, f in enumerate(a.fuel_list()):
            slot_roles = [(tph_role(k), as_tag_list(f.tph))]
            if f.ncv_tag is not None:
                slot_roles.append((ncv_role(k), [f.ncv_tag]))
            for name, tags in slot_roles:
                rm_rows.extend(
                    {
                        "tag": t,
                        "asset": a.id,
                        "role": name,
                        "how": role_aggregation(name),
                        "n_tags": len(set(tags)),
                    }
                    for t in dict.fromkeys(tags)
                )
    return pl.DataFrame(
        rm_rows,
        schema={
            "tag": pl.String,
            "asset": pl.String,
            "role": pl.String,
            "how": pl.String,
            "n_tags": pl.UInt32,
        },
    )


def _nominal_clinker(a: Asset) -> float | None:
    """Design clinker rate, t/h: nominal kiln feed / feed_to_clinker (docs/kpis.md §1), if both are set."""
    if a.nominal_feed_tph is not None and a.feed_to_clinker is not None:
        return a.nominal_feed_tph / a.feed_to_clinker
    return None


def _min_product(a: Asset) -> float | None:
    """Product rate below which a kiln counts as stopped or a mill as idle (None for other types).

    The larger of an absolute floor and a share of nominal (docs/kpis.md, "KPI index and common
    behaviour"): a KPI per t of product is NULL below it rather than huge.
    """
    nominal = _nominal_clinker(a) if a.type == "kiln" else a.nominal_feed_tph
    if a.type not in ("kiln", *MILLS):
        return None
    frac = C.MIN_PRODUCT_FRACTION_OF_NOMINAL * nominal if nominal is not None else 0.0
    return max(C.MIN_PRODUCT_TPH, frac)


def _calcination(a: Asset) -> float:
    """Calcination CO2, kg per t clinker: docs/kpis.md §4 composition method when the clinker analysis
    is configured, else the configured (default) factor."""
    if a.clinker_cao_pct is not None or a.clinker_mgo_pct is not None:
        return (a.clinker_cao_pct or 0.0) * C.CAO_CO2_KG_PER_T_PER_PCT + (
            a.clinker_mgo_pct or 0.0
        ) * C.MGO_CO2_KG_PER_T_PER_PCT
    return a.calcination_co2_kg_per_t


def _marginal(a: Asset, what: str) -> float | None:
    """The marginal fuel's fossil CO2 factor (kg/GJ, biogenic share excluded) or price per GJ: what a
    kiln's excess heat is rated with (docs/kpis.md §11). None when not configured."""
    f = a.marginal_fuel()
    if f is None:
        return None
    if what == "co2":
        return f.co2_factor * (1.0 - f.biogenic)
    return f.price_per_gj


def _min_feed_of(mills: list[Asset]) -> float:
    """Feed below which a kiln's linked mills count as idle (their standby power is then charged per t
    clinker as measured, docs/kpis.md §2)."""
    nominal = sum(m.nominal_feed_tph or 0.0 for m in mills)
    return max(C.MIN_PRODUCT_TPH, C.MIN_PRODUCT_FRACTION_OF_NOMINAL * nominal)


def _param_rows(
    assets: Sequence[Asset], by_id: dict[str, Asset], links: dict[str, str | None]
) -> list[dict[str, object]]:
    """One row of parameters per asset, in config order: the constant columns of the signal frame.

    Values the KPI expressions would otherwise recompute per window are derived here once: nominal
    clinker, the minimum product rate (kiln stopped / mill idle), calcination CO2 from the clinker
    analysis (docs/kpis.md §4), and for a kiln whether it has linked mills or WHR and the mills'
    minimum feed (docs/kpis.md §2). A WHR unit takes its kiln's nominal rates. Columns starting
    with ``_`` are for the stages only; the others are :data:`rules.catalogue.PARAMS`.
    """

    def linked(kiln_id: str, mill_type: str) -> list[Asset]:
        return [b for b in assets if b.type == mill_type and links[b.id] == kiln_id]

    rows: list[dict[str, object]] = []
    for a in assets:
        kiln = _credited_kiln(a, by_id, links)
        raw = linked(a.id, "raw_mill") if a.type == "kiln" else []
        coal = linked(a.id, "coal_mill") if a.type == "kiln" else []
        whrs = [b for b in assets if b.type == "whr" and b.kiln == a.id] if a.type == "kiln" else []
        nominal_feed = a.nominal_feed_tph
        if a.type == "whr" and nominal_feed is None and kiln is not None:
            nominal_feed = kiln.nominal_feed_tph
        rows.append(
            {
                "asset": a.id,
                "type": a.type,
                "_link": links[a.id],
                "feed_to_clinker": a.feed_to_clinker if a.type == "kiln" else None,
                "_ncv_const": a.fuel_ncv_mj_per_kg if a.type == "kiln" else None,
                "_ncv_from_tag": a.type == "kiln" and a.fuel_ncv_tag is not None,
                "fuel_co2_kg_per_gj": a.co2_kg_per_gj if a.type == "kiln" and a.fuels is None else None,
                "_marg_co2": _marginal(a, "co2"),
                "_marg_price": _marginal(a, "price"),
                "design_ph_exit_o2_pct": a.design_ph_exit_o2_pct,
                "design_clinker_temp_c": a.design_clinker_temp_c,
                "mic_moisture_pct": (a.mic_moisture_pct or 0.0) if a.type == "cement_mill" else None,
                "calcination_co2_kg_per_t": _calcination(a) if a.type == "kiln" else None,
                "nominal_feed_tph": nominal_feed,
                "nominal_clinker_tph": _nominal_clinker(a if kiln is None else kiln),
                "target_specific_heat_kcal_per_kg": a.target_specific_heat_kcal_per_kg,
                "design_ph_exit_temp_c": a.design_ph_exit_temp_c,
                "rated_power_kw": a.rated_power_kw,
                "typical_specific_power_kwh_per_t": C.TYPICAL_SPECIFIC_POWER_KWH_PER_T.get(a.type),
                "min_product_tph": _min_product(a),
                "_has_raw": bool(raw),
                "_has_coal": bool(coal),
                "_has_whr": bool(whrs),
                "_raw_min_feed": _min_feed_of(raw),
                "_coal_min_feed": _min_feed_of(coal),
                "_has_prod_role": a.type == "plant" and a.production_running is not None,
            }
        )
    return rows


def _params_frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    """The parameter rows with fixed column types, plus a NULL column per external name (fed later)."""
    return pl.DataFrame(
        rows,
        schema={
            "asset": pl.String,
            "type": pl.String,
            "_link": pl.String,
            "feed_to_clinker": pl.Float64,
            "_ncv_const": pl.Float64,
            "_ncv_from_tag": pl.Boolean,
            "fuel_co2_kg_per_gj": pl.Float64,
            "_marg_co2": pl.Float64,
            "_marg_price": pl.Float64,
            "design_ph_exit_o2_pct": pl.Float64,
            "design_clinker_temp_c": pl.Float64,
            "mic_moisture_pct": pl.Float64,
            "calcination_co2_kg_per_t": pl.Float64,
            "nominal_feed_tph": pl.Float64,
            "nominal_clinker_tph": pl.Float64,
            "target_specific_heat_kcal_per_kg": pl.Float64,
            "design_ph_exit_temp_c": pl.Float64,
            "rated_power_kw": pl.Float64,
            "typical_specific_power_kwh_per_t": pl.Float64,
            "min_product_tph": pl.Float64,
            "_has_raw": pl.Boolean,
            "_has_coal": pl.Boolean,
            "_has_whr": pl.Boolean,
            "_raw_min_feed": pl.Float64,
            "_coal_min_feed": pl.Float64,
            "_has_prod_role": pl.Boolean,
        },
    ).with_columns(pl.lit(None, dtype=pl.Float64).alias(n) for n in EXTERNAL)


def _asset_kpis(
    a: Asset, roles: set[str], kiln: Asset | None, prow: dict[str, object]
) -> tuple[KpiSpec, ...]:
    """The catalogue KPIs that apply to an asset, in catalogue order (docs/kpis.md, KPI index).

    A KPI applies when the asset's type is listed, the asset has every role the KPI needs (one of
    ``any_of``), every parameter it needs has a value in the asset's parameter row, and a WHR unit's
    or cement mill's kiln has every role the KPI needs from it: a KPI that could never have a value
    is not emitted. A kiln's own kWh/t also needs both its feed and its power tags.
    """
    kiln_roles = _kpi_roles(kiln) if kiln is not None else set()
    specs = tuple(
        k
        for k in KPIS
        if a.type in k.types
        and set(k.needs) <= roles
        and set(k.kiln_needs) <= kiln_roles
        and all(prow.get(p) is not None for p in k.params)
        and (not k.any_of or bool(set(k.any_of) & roles))
    )
    if a.type == "kiln" and not (a.kiln_feed_tph and a.power_kw):
        specs = tuple(k for k in specs if k.name != "specific_power_kwh_per_t")
    return specs


def _kpi_roles(a: Asset) -> set[str]:
    """Role names as the KPIs see them: the NCV tag under the value's name, and a kiln with fuels
    (listed or single) has ``fuel_tph`` and the NCV (rules/fuels.py computes both)."""
    roles = {NCV if r == "fuel_ncv_tag" else r for r in a.roles()}
    if a.type == "kiln" and a.fuel_list():
        roles |= {"fuel_tph", NCV}
    return roles


def _fuel_specs(a: Asset) -> tuple[KpiSpec, ...]:
    """One ``fuel_<name>_gj_per_h`` KPI per listed fuel of a kiln (docs/kpis.md §9)."""
    return tuple(
        KpiSpec(fuel_kpi(f.name), "GJ/h", ("kiln",), ("fuel_tph",), f"{f.name} t/h x its NCV", "§9")
        for f in a.fuels or ()
    )


def _asset_vocabulary(
    assets: Sequence[Asset],
    by_id: dict[str, Asset],
    links: dict[str, str | None],
    rows: list[dict[str, object]],
    tag_units: dict[str, str],
    site: dict[str, object],
) -> tuple[dict[str, tuple[KpiSpec, ...]], dict[str, frozenset[str]], dict[str, dict[str, str]]]:
    """Per asset: the KPIs that apply, every name a rule may read on it, and the unit of each name.

    The names are what rule packs are checked against when they load (a rule reading a name its
    asset cannot have is an error, not a silent NULL): the asset's roles, its KPIs, the parameters
    it has a value for (from its row in ``rows``), the external names, and what a WHR unit or the
    plant inherits. Units come from the catalogue, then the tag's configured unit, then the suffix.
    """
    kpis_by_asset: dict[str, tuple[KpiSpec, ...]] = {}
    available: dict[str, frozenset[str]] = {}
    units: dict[str, dict[str, str]] = {}
    for a in assets:
        roles = _kpi_roles(a)
        kiln = _credited_kiln(a, by_id, links)
        prow = next(r for r in rows if r["asset"] == a.id)
        specs = _asset_kpis(a, roles, kiln, {**prow, **site})
        if a.fuels:
            at = next(i for i, k in enumerate(specs) if k.name == "heat_input_gj_per_h") + 1
            specs = specs[:at] + _fuel_specs(a) + specs[at:]
        kpis_by_asset[a.id] = specs
        names = roles | {k.name for k in specs} | {p for p in PARAMS if prow.get(p) is not None}
        names |= set(EXTERNAL)
        if a.type == "whr" and kiln is not None and kiln.kiln_feed_tph is not None:
            names |= {"clinker_tph", "kiln_feed_tph"}
        if a.type == "plant":
            names.add("production_running")
        available[a.id] = frozenset(names)
        u = {n: unit_of(n, tag_units, a.role_tags(n)) for n in names}
        u.update({k.name: _unit(k.unit, site) for k in specs})
        if NCV in names:
            u[NCV] = "MJ/kg"
        u["excess_power_cost_per_h"] = _unit("/h", site)
        units[a.id] = u
    return kpis_by_asset, available, units


def _unit(unit: str, site: dict[str, object]) -> str:
    """A money unit is per hour in the site's currency (``CNY/h``); other units as catalogued."""
    return f"{site.get('currency') or ''}{unit}" if unit == "/h" else unit


def _applicable(
    kpis_by_asset: dict[str, tuple[KpiSpec, ...]], units: dict[str, dict[str, str]]
) -> pl.DataFrame:
    """(asset, kpi, unit) of every KPI that applies to an asset, assets in config order."""
    return pl.DataFrame(
        [(a, k.name, units[a][k.name]) for a, specs in kpis_by_asset.items() for k in specs],
        schema={"asset": pl.String, "kpi": pl.String, "unit": pl.String},
        orient="row",
    )


# ------------------------------------------------------------------------------------ the model
@dataclass(frozen=True)
class AssetModel:
    """Everything static about a site's assets, prepared once per configuration."""

    site: str
    assets: tuple[Asset, ...]
    role_map: pl.DataFrame
    params: pl.DataFrame
    kpis_by_asset: dict[str, tuple[KpiSpec, ...]]
    available: dict[str, frozenset[str]]
    tags: frozenset[str]
    roles_used: tuple[str, ...]
    units: dict[str, dict[str, str]]
    net_whr: bool
    #: Every kiln's fuels as (asset x slot) arrays (rules/fuels.py).
    fuel_slots: FuelSlots
    problems: tuple[str, ...] = ()
    #: (asset, kpi, unit) of every KPI that applies to an asset: the rows :meth:`kpi_rows` emits.
    applicable: pl.DataFrame = field(default_factory=pl.DataFrame)
    _stages: tuple[list[list[pl.Expr]], list[list[pl.Expr]]] = field(init=False, repr=False, compare=False)
    _tag_index: TagIndex = field(init=False, repr=False, compare=False)
    _kpi_names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _kpi_mask: npt.NDArray[np.bool_] = field(init=False, repr=False, compare=False)
    _kpi_units: dict[str, str] = field(init=False, repr=False, compare=False)
    _asset_index: dict[str, int] = field(init=False, repr=False, compare=False)
    _gather: dict[str, npt.NDArray[np.intp]] = field(init=False, repr=False, compare=False)
    _loss_plans: tuple[LossPlan, ...] = field(init=False, repr=False, compare=False)
    _param_arrays: dict[str, npt.NDArray[np.float64]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fuel_kpis = self.fuel_slots.fuel_kpis
        object.__setattr__(self, "_stages", (stage_a(), stage_c(self.net_whr)))
        tag_index = TagIndex.of(self.role_map.get_column("tag").to_list())
        index = tag_index.position
        object.__setattr__(self, "_tag_index", tag_index)
        # (asset x KPI) applicability in config order x catalogue order (each listed fuel's KPI after
        # the heat input): the rows kpi_rows emits
        order: list[str] = []
        for k in KPIS:
            order += [k.name, *fuel_kpis] if k.name == "heat_input_gj_per_h" else [k.name]
        present = {k.name for specs in self.kpis_by_asset.values() for k in specs}
        kpi_names = tuple(n for n in order if n in present)
        kpi_units: dict[str, str] = {}
        for a, specs in self.kpis_by_asset.items():
            for k in specs:
                kpi_units.setdefault(k.name, self.units[a][k.name])
        object.__setattr__(self, "_kpi_units", kpi_units)
        asset_ids = self.params.get_column("asset").to_list()
        mask = np.zeros((len(asset_ids), len(kpi_names)), dtype=bool)
        for i, a in enumerate(asset_ids):
            have = {k.name for k in self.kpis_by_asset.get(a, ())}
            mask[i] = [n in have for n in kpi_names]
        object.__setattr__(self, "_kpi_names", kpi_names)
        object.__setattr__(self, "_kpi_mask", mask)
        object.__setattr__(self, "_asset_index", {a: i for i, a in enumerate(asset_ids)})
        # per role: (assets x K) tag indices in params row order, -1 where an asset has fewer tags
        asset_row = {a: i for i, a in enumerate(self.params.get_column("asset").to_list())}
        members: dict[str, dict[int, list[int]]] = {}
        for tag, asset, role in self.role_map.select("tag", "asset", "role").iter_rows():
            members.setdefault(role, {}).setdefault(asset_row[asset], []).append(index[tag])
        gather: dict[str, npt.NDArray[np.intp]] = {}
        for role, by_asset in members.items():
            width = max(len(v) for v in by_asset.values())
            g = np.full((self.params.height, width), -1, dtype=np.intp)
            for row, idx in by_asset.items():
                g[row, : len(idx)] = idx
            gather[role] = g
        object.__setattr__(self, "_gather", gather)
        object.__setattr__(self, "_loss_plans", loss_plans(self.assets, self.kpis_by_asset))
        object.__setattr__(
            self,
            "_param_arrays",
            {
                c: self.params.get_column(c).cast(pl.Float64).to_numpy()
                for c in (
                    "feed_to_clinker",
                    "min_product_tph",
                    "calcination_co2_kg_per_t",
                    "target_specific_heat_kcal_per_kg",
                    "nominal_feed_tph",
                    "_marg_price",
                    "_marg_co2",
                )
            }
            | {"_is_kiln": (self.params.get_column("type") == "kiln").cast(pl.Float64).to_numpy()},
        )

    # -------------------------------------------------------------- construction
    @classmethod
    def build(cls, settings: RuleSettings) -> AssetModel:
        """The model of a site: each step below prepares once what every evaluation would otherwise redo.

        1. kiln links (:func:`_kiln_links`): which kiln each mill and WHR unit belongs to, for the
           cross-asset KPIs; a mill naming a non-kiln is a ``problems`` line;
        2. the role map (:func:`_role_map`): tag -> (asset, role), from which the tag index and
           gather arrays are made (``__post_init__``);
        3. parameter rows (:func:`_param_rows`): the constant columns of the signal frame;
        4. per asset (:func:`_asset_vocabulary`): the KPIs that apply, the names rules may read on
           it and their units.
        """
        assets = tuple(settings.assets)
        by_id = {a.id: a for a in assets}
        links, problems = _kiln_links(assets, by_id)
        role_map = _role_map(assets)
        roles_used = tuple(r for r in ALL_ROLES if r in set(role_map["role"].to_list()))
        rows = _param_rows(assets, by_id, links)
        site: dict[str, object] = {
            "currency": settings.currency,
            "grid_co2_kg_per_kwh": settings.grid_co2_kg_per_kwh,
            "electricity_price_per_kwh": settings.electricity_price_per_kwh,
        }
        kpis_by_asset, available, units = _asset_vocabulary(
            assets, by_id, links, rows, dict(settings.tag_units), site
        )
        return cls(
            site=settings.site,
            assets=assets,
            role_map=role_map,
            params=_params_frame(rows),
            kpis_by_asset=kpis_by_asset,
            available=available,
            tags=frozenset(role_map["tag"].to_list()),
            roles_used=roles_used,
            units=units,
            net_whr=settings.net_whr_in_comprehensive_power,
            fuel_slots=FuelSlots.build(assets),
            problems=tuple(problems),
            applicable=_applicable(kpis_by_asset, units),
        )

    # -------------------------------------------------------------- tag statistics (rules/dense.py)
    @property
    def tag_enum(self) -> pl.Enum:
        """The role tags as an Enum whose codes are the dense tag index (what the agent's window uses)."""
        return self._tag_index.enum

    def tag_lookup(self, dtype: pl.Enum) -> npt.NDArray[np.intp]:
        """Dense tag index of every category of an Enum tag column (-1 for tags no role uses)."""
        return self._tag_index.tag_lookup(dtype)

    def with_tag_enum(self, frame: pl.DataFrame, *, drop_unknown: bool = True) -> pl.DataFrame:
        """``frame`` with ``tag`` as :attr:`tag_enum` (:meth:`rules.dense.TagIndex.with_tag_enum`)."""
        return self._tag_index.with_tag_enum(frame, drop_unknown=drop_unknown)

    def window_stats(self, rows: pl.DataFrame, label: int) -> DenseStats:
        """Statistics of all ``rows`` as one window labelled ``label`` (a tick's raw windows)."""
        return self._tag_index.window_stats(rows, label)

    def binned_stats(self, rows: pl.DataFrame, window_secs: int | None = 60) -> DenseStats:
        """Per ``window_secs`` window of ``rows`` (:meth:`rules.dense.TagIndex.binned_stats`)."""
        return self._tag_index.binned_stats(rows, window_secs)

    def dense_minutes(self, samples: pl.DataFrame) -> DenseStats:
        """1-min statistics of a big sample frame (:meth:`rules.dense.TagIndex.dense_minutes`)."""
        return self._tag_index.dense_minutes(samples)

    def dense_stats(
        self, stats: pl.LazyFrame | pl.DataFrame, windows: Iterable[int] | pl.Series
    ) -> DenseStats:
        """Tag statistics scattered into (window x tag) arrays over the model's role tags."""
        return self._tag_index.dense_stats(stats, windows)

    # -------------------------------------------------------------- evaluation
    def signal_frame(
        self,
        stats: pl.LazyFrame | pl.DataFrame | DenseStats,
        windows: Iterable[int] | pl.Series | None = None,
        *,
        stale_before_us: int | Sequence[int] | None = None,
    ) -> pl.DataFrame:
        """One row per (window, asset): role values (window mean of good samples) and parameters.

        Tag statistics are scattered into dense (window x tag) arrays and gathered per role with
        index arrays prepared once from the config: no pivot, no join per role, and the cost grows
        with windows x assets only. ``stale_before_us`` (one value, or one per window): a tag whose
        last good sample is older counts as having no good data (evaluation time - stale_after_secs).
        """
        if isinstance(stats, DenseStats):
            d = stats
        else:
            assert windows is not None
            d = self.dense_stats(stats, windows)
        wins, n_a = d.windows, self.params.height
        n_w = len(wins)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(d.n_good > 0, d.sum / d.n_good, np.nan)
            gf = np.where(d.n_total > 0, d.n_good / d.n_total, 0.0)
        if stale_before_us is not None:
            cut = np.broadcast_to(np.asarray(stale_before_us, dtype=np.int64), (n_w,))
            mean = np.where(d.last_good >= cut[:, None], mean, np.nan)
        cols: list[pl.Series] = [pl.Series("window", np.repeat(wins, n_a), dtype=pl.Int64)]
        values: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = {}

        def combine(role: str, how: str) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
            gather = self._gather.get(role)
            return None if gather is None else combine_roles(mean, gf, gather, how)

        for role in ALL_ROLES:
            got = combine(role, role_aggregation(role))
            if got is not None:
                values[role] = got
        # fuels (rules/fuels.py): heat input, CO2 parts and per-fuel heat of every kiln; a kiln with
        # fuels takes fuel_tph (what its coal mill grinds) and a listed kiln its NCV (heat-weighted
        # mean) from them, so the single-fuel formulas read the same columns for both layouts
        fuel_cols = self.fuel_slots.columns(combine, n_w) if self.fuel_slots.n_slots else {}
        if fuel_cols:
            has, listed = self.fuel_slots.has_fuel, self.fuel_slots.listed
            heat, heat_gf = fuel_cols["_heat"]
            coal = fuel_cols["_coal_tph"][0]
            base_v, base_g = values.get(
                "fuel_tph", (np.full((n_w, n_a), np.nan), np.full((n_w, n_a), np.nan))
            )
            values["fuel_tph"] = (np.where(has, coal, base_v), np.where(has, heat_gf, base_g))
            with np.errstate(divide="ignore", invalid="ignore"):
                mix_ncv = heat / fuel_cols["_tph_total"][0]
            ncv_v, ncv_g = values.get(NCV, (np.full((n_w, n_a), np.nan), np.full((n_w, n_a), np.nan)))
            values[NCV] = (np.where(listed, mix_ncv, ncv_v), np.where(listed, heat_gf, ncv_g))
        for role in ALL_ROLES:
            if role not in values:
                none = nulls(role, n_w * n_a, pl.Float64())
                cols += [none.alias(role), none.alias(f"{role}__gf")]
                continue
            value, good = values[role]
            cols.append(pl.Series(role, value.reshape(-1), dtype=pl.Float64, nan_to_null=True))
            cols.append(pl.Series(f"{role}__gf", good.reshape(-1), dtype=pl.Float64, nan_to_null=True))
        heat, heat_gf = fuel_cols.get("_heat", (np.full((n_w, n_a), np.nan), np.full((n_w, n_a), np.nan)))
        cols.append(pl.Series("_heat", heat.reshape(-1), dtype=pl.Float64, nan_to_null=True))
        cols.append(pl.Series("_heat__gf", heat_gf.reshape(-1), dtype=pl.Float64, nan_to_null=True))
        # the §9-§11 kiln KPIs arrive finished (rules/kiln_arrays.py: cheaper than Polars expressions)
        losses = loss_columns(self._loss_plans, values, fuel_cols, (n_w, n_a))
        cols += kiln_columns(
            values, fuel_cols, losses, self._param_arrays, self.fuel_slots.fuel_kpis, (n_w, n_a)
        )
        frame = self.params.gather(np.tile(np.arange(n_a), n_w)) if n_w else self.params.clear()
        frame = frame.with_columns(cols)
        # NCV: the tag when one is configured, else the configured constant (docs/kpis.md §1); a kiln
        # with listed fuels has its mean NCV from above (its _ncv_from_tag is false, constant NULL).
        return frame.with_columns(
            pl.when(pl.col("_ncv_from_tag") | pl.col("_ncv_const").is_null())
            .then(pl.col(NCV))
            .otherwise(pl.col("_ncv_const"))
            .alias(NCV),
            pl.when(pl.col("_ncv_from_tag") | pl.col("_ncv_const").is_null())
            .then(pl.col(f"{NCV}__gf"))
            .otherwise(1.0)
            .alias(f"{NCV}__gf"),
        )

    def kpi_frame(self, signals: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
        """All KPI columns on the signal frame (see :data:`KPIS`), including cross-asset ones.

        A kiln, its linked raw/coal mills and its WHR share the key ``_key`` (the kiln id), so the
        cross-asset figures are one group-by and one join.
        """
        stage_a, stage_c = self._stages
        a = signals.lazy().with_columns(pl.coalesce("_link", "asset").alias("_key"))
        for exprs in stage_a:
            a = a.with_columns(exprs)
        t = pl.col("type")

        def linked_sum(col: str, kind: str) -> pl.Expr:
            # NULL when any linked asset lacks data: a mill without data is not a 0 kW mill
            x = pl.col(col).filter(t == kind)
            return pl.when(x.null_count() > 0).then(None).otherwise(x.sum())

        def linked_min(col: str, kind: str) -> pl.Expr:
            return pl.col(col).filter(t == kind).fill_null(0.0).min()

        def from_kiln(col: str) -> pl.Expr:
            return pl.col(col).filter(t == "kiln").first()

        # a kiln, its linked raw/coal mills and its WHR share ``_key`` (the kiln id): one pass
        linked = a.group_by("window", "_key").agg(
            linked_sum("power_kw", "raw_mill").alias("_raw_kw"),
            linked_sum("feed_tph", "raw_mill").alias("_raw_feed"),
            pl.min_horizontal(
                linked_min("power_kw__gf", "raw_mill"), linked_min("feed_tph__gf", "raw_mill")
            ).alias("_raw_gf"),
            linked_sum("power_kw", "coal_mill").alias("_coal_kw"),
            linked_sum("feed_tph", "coal_mill").alias("_coal_feed"),
            pl.min_horizontal(
                linked_min("power_kw__gf", "coal_mill"), linked_min("feed_tph__gf", "coal_mill")
            ).alias("_coal_gf"),
            linked_sum("whr_net_kw", "whr").alias("_whr_net_kw"),
            linked_min("whr_net_kw__gf", "whr").alias("_whr_gf"),
            from_kiln("_clinker_raw").alias("_k_clinker"),
            from_kiln("min_product_tph").alias("_k_min"),
            from_kiln("kiln_feed_tph").alias("_k_feed"),
            from_kiln("kiln_feed_tph__gf").alias("_k_gf"),
            from_kiln("co2_gross_kg_per_t_clinker").alias("_k_co2_gross"),
            from_kiln("co2_gross_kg_per_t_clinker__gf").alias("_k_co2_gross_gf"),
        )
        prod = (
            a.filter(t.is_in(["kiln", *MILLS]))
            .group_by("window")
            .agg(pl.col("_producing").any(ignore_nulls=False).alias("_prod"))
        )
        j = a.join(linked, on=["window", "_key"], how="left", maintain_order="left").join(
            prod, on="window", how="left", maintain_order="left"
        )
        is_whr = t == "whr"
        j = j.with_columns(
            pl.when(is_whr).then(pl.col("_k_clinker")).otherwise(pl.col("clinker_tph")).alias("clinker_tph"),
            pl.when(is_whr).then(pl.col("_k_feed")).otherwise(pl.col("kiln_feed_tph")).alias("kiln_feed_tph"),
            pl.when(t != "plant")
            .then(pl.col("production_running"))
            .when(pl.col("_has_prod_role"))
            .then(pl.col("production_running"))
            .otherwise(pl.col("_prod").cast(pl.Float64))
            .alias("production_running"),
        )
        for exprs in stage_c:
            j = j.with_columns(exprs)
        return j

    def kpi_rows(self, kpis: pl.DataFrame, window_secs: int) -> pl.DataFrame:
        """Long ``kpi`` rows (docs/auditors.md) for the KPIs that apply to each asset.

        ``kpis`` is in :meth:`evaluate` order (window-major, assets in config order), so flattening
        each row's KPI columns in catalogue order (a row-major reshape) gives rows sorted by window,
        asset and KPI with no sort; the (asset, KPI) pairs that do not apply are dropped with one
        mask. Cheaper than unpivot + sort by about 4x on a day of 1-min windows.
        """
        names = self._kpi_names
        if not names or kpis.height == 0:
            return empty_kpi_rows()
        nk = len(names)
        cols = [kpi_column(k) for k in names]
        row_asset = kpis.get_column("asset").replace_strict(self._asset_index, return_dtype=pl.Int64)
        keep = np.flatnonzero(self._kpi_mask[row_asset.to_numpy()].reshape(-1))
        row = pl.Series(keep // nk)
        k = pl.Series(keep % nk)

        def flat(suffix: str) -> pl.Series:
            # row-major (row, KPI) flattening of float columns; values are finite or NULL (never NaN)
            grid = np.column_stack([kpis.get_column(f"{c}{suffix}").to_numpy() for c in cols])
            return pl.Series(grid.reshape(-1)[keep], nan_to_null=True)

        # reasons are rare: scatter the non-null ones into an all-NULL column
        reason = nulls("reason", len(keep), pl.String())
        pos: list[npt.NDArray[np.int64]] = []
        text: list[pl.Series] = []
        out_pos = np.full(kpis.height * nk, -1, dtype=np.int64)  # flat (row, KPI) -> output row
        out_pos[keep] = np.arange(len(keep))
        for j, c in enumerate(cols):
            r = kpis.get_column(f"{c}__reason")
            nonnull = np.flatnonzero(r.is_not_null().to_numpy())
            if len(nonnull):
                at = out_pos[nonnull * nk + j]
                ok = at >= 0
                pos.append(at[ok])
                text.append(r.gather(nonnull[ok]))
        if pos:
            reason = reason.scatter(np.concatenate(pos), pl.concat(text))
        return pl.DataFrame(
            [
                kpis.get_column("window").gather(row).cast(pl.Datetime("us", "UTC")).alias("ts"),
                pl.repeat(self.site, len(keep), dtype=pl.String, eager=True).alias("site"),
                kpis.get_column("asset").gather(row),
                pl.Series("kpi", names, dtype=pl.String).gather(k),
                flat("").alias("value"),
                pl.Series("unit", [self._kpi_units[x] for x in names], dtype=pl.String).gather(k),
                pl.repeat(window_secs, len(keep), dtype=pl.Int32, eager=True).alias("window_secs"),
                flat("__gf").alias("good_fraction"),
                reason.alias("reason"),
            ]
        )

    def evaluate(
        self,
        stats: pl.LazyFrame | pl.DataFrame | DenseStats,
        windows: Iterable[int] | pl.Series | None = None,
        *,
        stale_before_us: int | Sequence[int] | None = None,
        select: Sequence[pl.Expr] | None = None,
    ) -> pl.DataFrame:
        """Signal frame + KPIs, collected: what rules read and what :meth:`kpi_rows` unpivots.

        ``select``: only these expressions of the result; Polars then skips every KPI they do not
        read (projection pushdown), e.g. a rolling rule window that feeds two rules.
        """
        plan = self.kpi_frame(self.signal_frame(stats, windows, stale_before_us=stale_before_us))
        if select is not None:
            plan = plan.select(select)
        return plan.collect(engine=SMALL_ENGINE)
