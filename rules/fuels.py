"""Kiln fuels as dense arrays: heat input, substitution rates and gross/net/biogenic CO2 per window.

A kiln fires several fuels, each with its own NCV, CO2 factor and biogenic carbon share
(docs/kpis.md §9). Each fuel of each kiln is a *slot*: slot k of an asset reads the tags of its k-th
fuel through the same gather arrays as the signal roles (roles ``_fuel{k}_tph`` and ``_fuel{k}_ncv``
in the asset model's role map), and the per-fuel constants sit in (assets x slots) arrays prepared
once. One evaluation is then a handful of NumPy operations over (windows x assets x slots), whatever
the number of fuels, and the single-fuel keys are just a kiln with one slot (same numbers as ever).

Kept apart from the asset model (rules/asset_model.py) because it is the only part that knows the
protocol's fuel categories; the model calls :meth:`FuelSlots.columns` from its signal frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rules.assets import Asset, Fuel
from rules.heat_balance import REFERENCE_COAL, GasPerMJ, gas_per_mj, ncv_from_analysis

F64 = npt.NDArray[np.float64]


#: Role names of slot k in the asset model's role map (not user-visible roles).
def tph_role(k: int) -> str:
    return f"_fuel{k}_tph"


def ncv_role(k: int) -> str:
    return f"_fuel{k}_ncv"


def fuel_kpi(name: str) -> str:
    """KPI name of one listed fuel's heat input (docs/kpis.md §9)."""
    return f"fuel_{name}_gj_per_h"


def fuel_gas(f: Fuel) -> GasPerMJ:
    """Flue gas per MJ of a fuel: from its ultimate analysis when configured, else the reference coal's
    per MJ (docs/kpis.md §10.2). With the NCV from a tag, the analysis's own NCV (Channiwala-Parikh)
    converts per kg to per MJ."""
    a = f.analysis
    if a is None:
        return REFERENCE_COAL
    ncv = f.ncv_mj_per_kg
    if ncv is None:
        ash = max(0.0, 100.0 - (a.c_pct + a.h_pct + a.o_pct + a.n_pct + a.s_pct + a.moisture_pct))
        ncv = ncv_from_analysis(a.c_pct, a.h_pct, a.o_pct, a.n_pct, a.s_pct, ash, a.moisture_pct)
    return gas_per_mj(a.c_pct, a.h_pct, a.o_pct, a.n_pct, a.s_pct, a.moisture_pct, ncv)


Combine = Callable[[str, str], "tuple[F64, F64] | None"]


@dataclass(frozen=True)
class FuelSlots:
    """Per (asset, slot) constants of every kiln's fuels, assets in the model's row order."""

    n_slots: int
    #: (A,) the asset lists its fuels (per-fuel KPIs are emitted) rather than the single-fuel keys.
    listed: npt.NDArray[np.bool_]
    #: (A,) the asset has at least one fuel.
    has_fuel: npt.NDArray[np.bool_]
    exists: npt.NDArray[np.bool_]
    ncv_const: F64
    ncv_from_tag: npt.NDArray[np.bool_]
    co2_factor: F64
    biogenic: F64
    alternative: npt.NDArray[np.bool_]
    coal_mill: npt.NDArray[np.bool_]
    #: (A, K, 3) flue gas per MJ: CO2, H2O, N2 (Nm³/MJ).
    gas: F64
    #: (A, K) KPI name of the slot's fuel, "" where the slot is empty or the fuel is not listed.
    kpi_names: tuple[tuple[str, ...], ...]
    #: Per slot: per-fuel KPI name -> the asset rows whose slot holds that fuel (one fancy-index
    #: assignment per name instead of a Python loop over assets).
    by_name: tuple[dict[str, npt.NDArray[np.intp]], ...] = ()

    @classmethod
    def build(cls, assets: Sequence[Asset]) -> FuelSlots:
        fuels = [a.fuel_list() for a in assets]
        n_a, n_k = len(assets), max((len(f) for f in fuels), default=0)
        shape = (n_a, n_k)
        exists = np.zeros(shape, dtype=bool)
        ncv_const = np.full(shape, np.nan)
        ncv_tag = np.zeros(shape, dtype=bool)
        ef = np.zeros(shape)
        bio = np.zeros(shape)
        alt = np.zeros(shape, dtype=bool)
        coal = np.zeros(shape, dtype=bool)
        gas = np.zeros((n_a, n_k, 3))
        names: list[tuple[str, ...]] = []
        for i, (a, fs) in enumerate(zip(assets, fuels, strict=True)):
            row = [""] * n_k
            for k, f in enumerate(fs):
                exists[i, k] = True
                ncv_tag[i, k] = f.ncv_tag is not None
                if f.ncv_mj_per_kg is not None:
                    ncv_const[i, k] = f.ncv_mj_per_kg
                ef[i, k] = f.co2_factor
                bio[i, k] = f.biogenic
                alt[i, k] = f.category != "fossil"
                coal[i, k] = f.ground_in_coal_mill
                g = fuel_gas(f)
                gas[i, k] = (g.co2, g.h2o, g.n2)
                if a.fuels is not None:
                    row[k] = fuel_kpi(f.name)
            names.append(tuple(row))
        return cls(
            n_slots=n_k,
            listed=np.array([a.fuels is not None for a in assets], dtype=bool),
            has_fuel=np.asarray(exists.any(axis=1), dtype=bool),
            exists=exists,
            ncv_const=ncv_const,
            ncv_from_tag=ncv_tag,
            co2_factor=ef,
            biogenic=bio,
            alternative=alt,
            coal_mill=coal,
            gas=gas,
            kpi_names=tuple(names),
            by_name=tuple(
                {
                    n: np.asarray([i for i, row in enumerate(names) if row[k] == n], dtype=np.intp)
                    for n in dict.fromkeys(row[k] for row in names if row[k])
                }
                for k in range(n_k)
            ),
        )

    @property
    def fuel_kpis(self) -> tuple[str, ...]:
        """Distinct per-fuel KPI names of the site, in first-seen order."""
        return tuple(dict.fromkeys(n for row in self.kpi_names for n in row if n))

    @np.errstate(invalid="ignore", over="ignore")  # an inf feeder value gives NaN sums, guarded later
    def columns(self, combine: Combine, n_w: int) -> dict[str, tuple[F64, F64]]:
        """(value, good fraction) arrays of shape (windows x assets) for the fuel columns.

        ``combine(role, how)`` gives a role's (value, gf) arrays or None when no asset has it.
        NaN = no good value: a kiln's heat input is NaN when any of its fuels has no good value
        (a fuel without data is not a fuel at 0 t/h).

        Columns (docs/kpis.md §9.2): ``_heat`` GJ/h, ``_e_alt`` (energy of non-fossil categories),
        ``_e_bio`` (sum of E x biogenic share), ``_co2_fossil`` / ``_co2_alt`` / ``_co2_bio`` kg/h
        (fossil CO2 of all fuels / fossil CO2 of alternative fuels / biogenic memo), ``_coal_tph``
        (fuels ground in the coal mill), ``_tph_total``, ``_gas_co2|h2o|n2`` (heat-weighted Nm³/MJ)
        and one column per listed fuel's KPI.
        """
        n_a, n_k = self.exists.shape
        shape = (n_w, n_a)
        heat = np.zeros(shape)
        gf = np.full(shape, np.inf)
        e_alt, e_bio = np.zeros(shape), np.zeros(shape)
        co2_f, co2_a, co2_b = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        coal_tph, tph_total = np.zeros(shape), np.zeros(shape)
        gas = np.zeros((3, *shape))
        per_fuel: dict[str, tuple[F64, F64]] = {}
        for k in range(n_k):
            got = combine(tph_role(k), "sum")
            tph, tph_gf = got if got is not None else (np.full(shape, np.nan), np.full(shape, np.nan))
            ncv = np.broadcast_to(self.ncv_const[:, k], shape).copy()
            ncv_gf = np.ones(shape)
            tagged = self.ncv_from_tag[:, k]
            if tagged.any():
                got_ncv = combine(ncv_role(k), "mean")
                if got_ncv is not None:
                    ncv[:, tagged] = got_ncv[0][:, tagged]
                    ncv_gf[:, tagged] = got_ncv[1][:, tagged]
            ex = self.exists[:, k]
            e = tph * ncv  # t/h x MJ/kg = GJ/h
            e_ex = np.where(ex, e, 0.0)
            heat += e_ex
            gf = np.minimum(gf, np.where(ex, np.minimum(np.nan_to_num(tph_gf), ncv_gf), np.inf))
            b, ef = self.biogenic[:, k], self.co2_factor[:, k]
            e_alt += np.where(self.alternative[:, k], e_ex, 0.0)
            e_bio += e_ex * b
            fossil = e_ex * ef * (1.0 - b)
            co2_f += fossil
            co2_a += np.where(self.alternative[:, k], fossil, 0.0)
            co2_b += e_ex * ef * b
            coal_tph += np.where(ex & self.coal_mill[:, k], tph, 0.0)
            tph_total += np.where(ex, tph, 0.0)
            for j in range(3):
                gas[j] += e_ex * self.gas[:, k, j]
            for name, idx in self.by_name[k].items():
                v, g = per_fuel.setdefault(name, (np.full(shape, np.nan), np.full(shape, np.nan)))
                v[:, idx] = e[:, idx]
                g[:, idx] = np.minimum(np.nan_to_num(tph_gf[:, idx]), ncv_gf[:, idx])
        no_fuel = ~self.has_fuel
        gf[:, no_fuel] = np.nan
        gf[np.isinf(gf)] = np.nan
        out: dict[str, tuple[F64, F64]] = {}
        with np.errstate(divide="ignore", invalid="ignore"):
            mix = gas / heat[None]
            for name, v in (
                ("_heat", heat),
                ("_e_alt", e_alt),
                ("_e_bio", e_bio),
                ("_co2_fossil", co2_f),
                ("_co2_alt", co2_a),
                ("_co2_bio", co2_b),
                ("_coal_tph", coal_tph),
                ("_tph_total", tph_total),
                ("_gas_co2", mix[0]),
                ("_gas_h2o", mix[1]),
                ("_gas_n2", mix[2]),
            ):
                v = np.where(np.isnan(heat), np.nan, v)  # NaN in any fuel makes the kiln's sums NaN
                v[:, no_fuel] = np.nan
                out[name] = (v, gf)
        out.update(per_fuel)
        return out
