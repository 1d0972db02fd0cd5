"""Shared helpers for the simulator tests: runs of the pure model, KPIs from served signals, and
readers that fetch every tag over a real pymodbus / asyncua client.

KPI formulas are those of docs/kpis.md, computed independently of the simulator's internals:
SHC = Σ fuel x NCV / clinker (§1, 1 kcal/kg = 4.1868 MJ/t; coal, RDF and biomass each with its own
NCV, §9), thermal substitution = energy of RDF + biomass / all fuel energy (§9), kWh/t = Σ drive kW /
product t/h (§2), WHR kWh/t clinker = generator kW / clinker t/h (§5), false air two-point =
(O2out - O2in)/(21 - O2out) x 100 % of inlet gas (§8), and the heat-balance rules of thumb of §10
for what a change of each loss signal costs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.attribute_ids import AttributeIds
from pymodbus.client import AsyncModbusTcpClient

from simulator.plant import PlantModel
from simulator.tagmap import Tag, TagMap

F = 1.6
#: As-fired NCV by fuel feeder, MJ/kg (the generated config's [[assets.fuels]]).
NCV_MJ_PER_KG = {
    "main_burner_coal_tph": 25.0,
    "calciner_coal_tph": 25.0,
    "rdf_tph": 16.0,
    "biomass_tph": 12.0,
}
ALTERNATIVE_FEEDERS = ("rdf_tph", "biomass_tph")
MJ_PER_T_PER_KCAL_PER_KG = 4.1868
#: docs/kpis.md §10 rules of thumb, kcal/kg clinker, at a 5-stage design point with fuel feedback:
#: +1 %-pt PH exit O2 (dry), +1 °C PH exit gas, +1 °C clinker, +1 % kiln-inlet CO (upper bound).
KCAL_PER_O2_PCT_PT = 8.0
KCAL_PER_EXIT_C = 0.6
KCAL_PER_CLINKER_C = 0.2
KCAL_PER_KILN_INLET_CO_PCT = 13.0

Runs = npt.NDArray[np.float64]


def run(model: PlantModel, hours: float, step_secs: float = 10.0) -> Runs:
    """Step the model and return one row of served values per step (steps x tags)."""
    n = round(hours * 3600 / step_secs)
    out = np.empty((n, len(model.tagmap)))
    for i in range(n):
        model.step(step_secs)
        out[i] = model.vector()
    return out


class Readings:
    """Column access by tag name over a block of readings (steps x tags)."""

    def __init__(self, tagmap: TagMap, rows: Runs) -> None:
        self.tagmap = tagmap
        self.rows = np.atleast_2d(rows)

    def __getitem__(self, name: str) -> npt.NDArray[np.float64]:
        return self.rows[:, self.tagmap.index[name]]

    def tail(self, start_hours: float, step_secs: float = 10.0) -> Readings:
        return Readings(self.tagmap, self.rows[round(start_hours * 3600 / step_secs) :])

    def mean(self, name: str) -> float:
        return float(self[name].mean())

    # docs/kpis.md §9: energy per fuel feeder, GJ/h (t/h x MJ/kg), window means
    def heat_gj_per_h(self, k: int = 1, feeders: Sequence[str] = tuple(NCV_MJ_PER_KG)) -> float:
        return sum(self.mean(f"kiln{k}.{f}") * NCV_MJ_PER_KG[f] for f in feeders)

    # docs/kpis.md §1: SHC over the window = heat input / clinker (ratio of means, as a KPI window does)
    def shc_kcal_per_kg(self, k: int = 1) -> float:
        clinker = self.mean(f"kiln{k}.feed_tph") / F
        return self.heat_gj_per_h(k) * 1000.0 / clinker / MJ_PER_T_PER_KCAL_PER_KG

    # docs/kpis.md §9: thermal substitution rate, % of the kiln's fuel energy
    def tsr_pct(self, k: int = 1) -> float:
        return 100.0 * self.heat_gj_per_h(k, ALTERNATIVE_FEEDERS) / self.heat_gj_per_h(k)

    # clinker feeder share of the cement mill feed, as weighed (wet basis)
    def clinker_share(self, k: int = 1) -> float:
        return self.mean(f"cement_mill{k}.clinker_feeder_tph") / self.mean(f"cement_mill{k}.feed_tph")

    # docs/kpis.md §10 rules of thumb: what the change of each loss signal from ``base`` costs, kcal/kg
    def loss_shifts(self, base: Readings, k: int = 1) -> dict[str, float]:
        def d(signal: str) -> float:
            return self.mean(f"kiln{k}.{signal}") - base.mean(f"kiln{k}.{signal}")

        return {
            "excess_air": KCAL_PER_O2_PCT_PT * d("ph_exit_o2_pct"),
            "exit_gas_temp": KCAL_PER_EXIT_C * d("ph_exit_temp_c"),
            "co": KCAL_PER_KILN_INLET_CO_PCT * d("kiln_inlet_co_pct"),
            "clinker_temp": KCAL_PER_CLINKER_C * d("clinker_temp_c"),
        }

    # docs/kpis.md §8: two-point false air, % of inlet gas, per reading
    def false_air_pct(self, k: int = 1) -> npt.NDArray[np.float64]:
        o2_in, o2_out = self[f"kiln{k}.kiln_inlet_o2_pct"], self[f"kiln{k}.ph_exit_o2_pct"]
        return np.asarray((o2_out - o2_in) / (21.0 - o2_out) * 100.0)

    # docs/kpis.md §2: section kWh / section product
    def kwh_per_t(self, asset: str, drives: Sequence[str]) -> float:
        kw = sum(self.mean(f"{asset}.{d}") for d in drives)
        return kw / self.mean(f"{asset}.feed_tph")

    def raw_mill_kwh_per_t(self, k: int = 1) -> float:
        return self.kwh_per_t(f"raw_mill{k}", ["main_drive_kw", "fan_kw", "separator_kw"])

    def coal_mill_kwh_per_t(self, k: int = 1) -> float:
        return self.kwh_per_t(f"coal_mill{k}", ["main_drive_kw", "fan_kw"])

    def cement_mill_kwh_per_t(self, k: int = 1) -> float:
        return self.kwh_per_t(f"cement_mill{k}", ["main_drive_kw", "separator_kw", "fan_kw"])

    # docs/kpis.md §5: WHR gross / net kWh per t clinker of the credited kiln
    def whr_kwh_per_t(self, k: int = 1, *, net: bool = False) -> float:
        gen = self.mean(f"whr{k}.generator_kw") - (self.mean(f"whr{k}.aux_kw") if net else 0.0)
        return gen / (self.mean(f"kiln{k}.feed_tph") / F)


_DT = AsyncModbusTcpClient.DATATYPE
_DATATYPE = {"int16": _DT.INT16, "uint16": _DT.UINT16, "uint32": _DT.UINT32, "float32": _DT.FLOAT32}


async def read_all_modbus(port: int, tagmap: TagMap, *, unit: int = 1) -> dict[str, float]:
    """Read every tag with block reads per table (<= 125 registers / 2,000 bits) and decode."""
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0)
    await client.connect()
    assert client.connected, "Modbus server not reachable"
    try:
        images: dict[str, list[int]] = {}
        for table in ("holding", "input", "coil", "discrete"):
            size = tagmap.table_size(table)
            data: list[int] = []
            step = 2000 if table in ("coil", "discrete") else 125
            for start in range(0, size, step):
                count = min(step, size - start)
                if table == "holding":
                    rr = await client.read_holding_registers(start, count=count, device_id=unit)
                elif table == "input":
                    rr = await client.read_input_registers(start, count=count, device_id=unit)
                elif table == "coil":
                    rr = await client.read_coils(start, count=count, device_id=unit)
                else:
                    rr = await client.read_discrete_inputs(start, count=count, device_id=unit)
                assert not rr.isError(), rr
                if table in ("coil", "discrete"):
                    data.extend(int(b) for b in rr.bits[:count])
                else:
                    data.extend(rr.registers)
            images[table] = data
        return decode_tags(tagmap.tags, images)
    finally:
        client.close()


def decode_tags(
    tags: Sequence[Tag], images: Mapping[str, Sequence[int] | Sequence[bool]]
) -> dict[str, float]:
    """Decode tags from register/bit images with pymodbus's own ``convert_from_registers``."""
    out: dict[str, float] = {}
    for t in tags:
        img = images[t.table]
        if t.is_bool:
            out[t.name] = 1.0 if img[t.address] else 0.0
            continue
        regs = [int(r) for r in img[t.address : t.address + t.width]]
        order: Literal["big", "little"] = "little" if t.word_order == "little" else "big"
        raw = AsyncModbusTcpClient.convert_from_registers(regs, _DATATYPE[t.data_type], word_order=order)
        assert isinstance(raw, int | float)
        out[t.name] = raw * t.scale
    return out


async def read_all_opcua(client: Client, tagmap: TagMap) -> dict[str, ua.DataValue]:
    """Read the DataValue of every tag's node in one batched read."""
    nodes = [client.get_node(t.node_id) for t in tagmap.tags]
    values = await client.read_attributes(nodes, AttributeIds.Value)
    return dict(zip(tagmap.names, values, strict=True))
