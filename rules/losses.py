"""The loss split of each kiln window (docs/kpis.md §10), wired to the asset model's arrays.

rules/heat_balance.py holds the physics (flue gas, loss terms, Shapley attribution) for one kiln's
rows; this module decides, once per configuration, which kilns get a split and from which signals
(:func:`loss_plans`), and per evaluation runs it on the (windows x assets) arrays of the signal frame
(:func:`loss_columns`). The KPI stages (rules/stages.py) then only guard the ``_loss_*`` columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rules import constants as C
from rules.assets import Asset
from rules.catalogue import KpiSpec
from rules.heat_balance import GasArrays, LossDesign, attribute_losses

F64 = npt.NDArray[np.float64]

#: Loss split columns of the signal frame (docs/kpis.md §10), NULL where no split applies.
LOSS_COLUMNS: tuple[str, ...] = ("_loss_t", "_loss_o2", "_loss_co", "_loss_tcl", "_loss_rest")


@dataclass(frozen=True, slots=True)
class LossPlan:
    """How one kiln's loss split is computed (docs/kpis.md §10): its row, design state and signals."""

    row: int
    feed_to_clinker: float
    design: LossDesign
    t_role: str | None
    o2_role: str | None
    co_role: str | None
    tcl_role: str | None
    o2k_role: str | None


def loss_plans(
    assets: Sequence[Asset], kpis_by_asset: dict[str, tuple[KpiSpec, ...]]
) -> tuple[LossPlan, ...]:
    """A plan per kiln that has the loss KPIs (target, design exit T and O2, feed and fuel configured).

    A signal takes part only when its KPI applies (the clinker term also needs the design clinker
    temperature); CO measured at the preheater exit is preferred to kiln-inlet CO (an upper bound).
    """
    plans: list[LossPlan] = []
    for i, a in enumerate(assets):
        have = {k.name for k in kpis_by_asset.get(a.id, ())}
        if "loss_unattributed_kcal_per_kg" not in have:
            continue
        assert a.target_specific_heat_kcal_per_kg is not None and a.feed_to_clinker is not None
        assert a.design_ph_exit_temp_c is not None and a.design_ph_exit_o2_pct is not None
        co_role = (
            "ph_exit_co_pct" if a.ph_exit_co_pct else ("kiln_inlet_co_pct" if a.kiln_inlet_co_pct else None)
        )
        design = LossDesign(
            shc_kcal_per_kg=a.target_specific_heat_kcal_per_kg,
            ph_exit_temp_c=a.design_ph_exit_temp_c,
            ph_exit_o2_pct=a.design_ph_exit_o2_pct,
            clinker_temp_c=a.design_clinker_temp_c
            if a.design_clinker_temp_c is not None
            else a.ambient_temp_c,
            ambient_temp_c=a.ambient_temp_c,
            o2_basis=a.o2_basis,
            co_location="kiln_inlet" if co_role == "kiln_inlet_co_pct" else "ph_exit",
            kiln_burner_fuel_share=a.kiln_burner_fuel_share,
        )
        plans.append(
            LossPlan(
                row=i,
                feed_to_clinker=a.feed_to_clinker,
                design=design,
                t_role="ph_exit_temp_c" if "loss_exit_gas_temp_kcal_per_kg" in have else None,
                o2_role="ph_exit_o2_pct" if "loss_excess_air_kcal_per_kg" in have else None,
                co_role=co_role if "loss_co_kcal_per_kg" in have else None,
                tcl_role="clinker_temp_c" if "loss_clinker_temp_kcal_per_kg" in have else None,
                o2k_role="kiln_inlet_o2_pct"
                if co_role == "kiln_inlet_co_pct" and a.kiln_inlet_o2_pct
                else None,
            )
        )
    return tuple(plans)


def _groups(plans: Sequence[LossPlan]) -> list[list[LossPlan]]:
    """Plans that share a design state and the same signals: one vectorised call covers all their kilns
    (a site of many identical lines pays the per-call cost once, not once per kiln)."""
    groups: dict[tuple[object, ...], list[LossPlan]] = {}
    for p in plans:
        key = (p.design, p.feed_to_clinker, p.t_role, p.o2_role, p.co_role, p.tcl_role, p.o2k_role)
        groups.setdefault(key, []).append(p)
    return list(groups.values())


def loss_columns(
    plans: Sequence[LossPlan],
    values: Mapping[str, tuple[F64, F64]],
    fuel_cols: Mapping[str, tuple[F64, F64]],
    shape: tuple[int, int],
) -> dict[str, F64]:
    """``_loss_*`` arrays (windows x assets): the split of
    docs/kpis.md §10 for every kiln with a plan, NULL elsewhere. ``values`` are the role values and
    ``fuel_cols`` the fuel columns (rules/fuels.py) of the same evaluation. Kilns with the same design
    and signals are split in one call over all their (window, kiln) cells."""
    arrays = {c: np.full(shape, np.nan) for c in LOSS_COLUMNS}
    upper = np.zeros(shape, dtype=bool)
    low = np.zeros(shape, dtype=bool)
    feed_v = values.get("kiln_feed_tph")
    if feed_v is None or "_heat" not in fuel_cols:
        return _result(arrays, upper, low)
    for group in _groups(plans):
        first = group[0]
        cols = np.asarray([p.row for p in group], dtype=np.intp)

        def cells(role: str | None, cols: npt.NDArray[np.intp] = cols) -> F64 | None:
            got = values.get(role) if role is not None else None
            return None if got is None else got[0][:, cols].reshape(-1)

        feed = feed_v[0][:, cols].reshape(-1)
        heat = fuel_cols["_heat"][0][:, cols].reshape(-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            shc = heat * 1000.0 / (feed / first.feed_to_clinker) / C.KJ_PER_KCAL
        gas = GasArrays(*(fuel_cols[c][0][:, cols].reshape(-1) for c in ("_gas_co2", "_gas_h2o", "_gas_n2")))
        split = attribute_losses(
            first.design,
            gas,
            shc,
            cells(first.t_role),
            cells(first.o2_role),
            cells(first.co_role),
            cells(first.tcl_role),
            cells(first.o2k_role),
        )
        sub = (shape[0], len(cols))
        for name, v in (
            ("_loss_t", split.exit_gas_temp),
            ("_loss_o2", split.excess_air),
            ("_loss_co", split.co),
            ("_loss_tcl", split.clinker_temp),
            ("_loss_rest", split.unattributed),
        ):
            if v is not None:
                arrays[name][:, cols] = v.reshape(sub)
        if first.design.co_location == "kiln_inlet" and first.co_role is not None:
            upper[:, cols] = split.good.reshape(sub)
        low[:, cols] = (split.low_confidence & split.good).reshape(sub)
    return _result(arrays, upper, low)


def _result(
    arrays: dict[str, F64], upper: npt.NDArray[np.bool_], low: npt.NDArray[np.bool_]
) -> dict[str, F64]:
    return {**arrays, "_loss_co_upper": upper.astype(np.float64), "_loss_low_conf": low.astype(np.float64)}
