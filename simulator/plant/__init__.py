"""A pure, deterministic model of a 5,000 t/d precalciner cement line (or several), in simulated time.

No sockets and no clocks: :meth:`PlantModel.step` advances simulated seconds and
:meth:`PlantModel.vector` / :meth:`PlantModel.values` return what the PLC would serve, in the order of
the tag map (:mod:`simulator.tagmap`). The same seed and the same sequence of steps give the same
values bit for bit. Each section (kiln, raw mill, coal mill, cement mill, WHR, site) is vectorised
over the lines with numpy and draws its noise from its own random stream, so a scenario in one
section never changes the noise of another.

Physics is deliberately simple but coupled the way a plant is:

* heat follows clinker x specific heat (docs/kpis.md §1) with a fixed radiation loss, so SHC rises at low
  feed; kiln feed -> clinker by F = 1.6 (docs/kpis.md §1); RDF and sawdust at fixed feeder rates
  (~21 % of the heat), coal trimmed to the rest (docs/kpis.md §9);
* false air raises PH exit O2 (two-point method, docs/kpis.md §8), SHC (~2 kcal/kg per % false air,
  docs/kpis.md §8), PH exit temperature, gas volume and ID fan power;
* drive power follows load with an idle share (mills running empty keep most of their power);
* WHR generation follows PH exit gas temperature x flow (SP boiler) and cooler air (AQC boiler),
  docs/kpis.md §5; raw and coal mills run on silo/bin level hysteresis fed by the kiln's demand;
* temperatures follow a kiln thermal level (cool-down ~3 h, heat-up ~1 h) with first-order lags;
* sensor noise per reading, slow Ornstein-Uhlenbeck drifts, Poisson operator setpoint steps,
  transmitter ranges (clamped, flagged), hourly lab values held between samples.

Modules: :mod:`~simulator.plant.constants` (plant constants, cited), :mod:`~simulator.plant.dynamics`
(lags, drifts, noise streams, scenario severities), :mod:`~simulator.plant.kiln`,
:mod:`~simulator.plant.mills`, :mod:`~simulator.plant.whr`, :mod:`~simulator.plant.site` (the
sections), :mod:`~simulator.plant.status` (sensor status, frozen signals) and
:mod:`~simulator.plant.model` (:class:`PlantModel`). Import the public names from here.
"""

from __future__ import annotations

from simulator.plant.constants import (
    AF_PERMIT_FEED_FRACTION,
    AIR_CP_KJ_PER_NM3_K,
    AQC_AIR_KNM3_PER_H,
    BASE_FALSE_AIR_PCT,
    BIOMASS_BIOGENIC_FRACTION,
    BIOMASS_CO2_KG_PER_GJ,
    BIOMASS_NCV_MJ_PER_KG,
    BIOMASS_TPH,
    BURNER_SHC_PENALTY,
    CALCINER_HEAT_SHARE,
    CEMENT_CLINKER_SHARE_HIGH_BLAINE,
    CEMENT_CLINKER_SHARE_LOW_BLAINE,
    CEMENT_FEED_TPH,
    CEMENT_MIC_MOISTURE_PCT,
    CEMENT_MILL_RATED_KW,
    COAL_CO2_KG_PER_GJ,
    COAL_MILL_RATED_KW,
    COAL_NCV_MJ_PER_KG,
    COAL_PRICE_PER_GJ,
    COOLER_SHC_PENALTY_KCAL_PER_KG,
    CURRENCY,
    DEFAULT_START,
    DESIGN_CLINKER_TEMP_C,
    DESIGN_PH_EXIT_O2_PCT,
    DESIGN_PH_EXIT_TEMP_C,
    ELECTRICITY_PRICE_PER_KWH,
    FEED_TO_CLINKER,
    FIXED_HEAT_LOSS_FRACTION,
    GAS_CP_KJ_PER_NM3_K,
    GAS_KNM3_PER_T_CLINKER,
    GRID_CO2_KG_PER_KWH,
    HEAT_UP_FIRING_FRACTION,
    KILN_INLET_O2_PCT,
    KILN_RATED_KW,
    KJ_PER_KCAL,
    LEAK_FALSE_AIR_PCT,
    MAX_SUBSTEP_SECS,
    NOMINAL_CLINKER_TPH,
    NOMINAL_FEED_TPH,
    NOMINAL_GAS_KNM3_PER_H,
    RAW_MILL_RATED_KW,
    RDF_BIOGENIC_FRACTION,
    RDF_CO2_KG_PER_GJ,
    RDF_NCV_MJ_PER_KG,
    RDF_TPH,
    SHC_KCAL_PER_FALSE_AIR_PCT,
    TARGET_SHC_KCAL_PER_KG,
    WHR_EFFICIENCY,
)
from simulator.plant.dynamics import Severity
from simulator.plant.kiln import HEAT, RUN, STOP, Kiln
from simulator.plant.mills import CementMill, CoalMill, RawMill
from simulator.plant.model import PlantModel
from simulator.plant.site import Site
from simulator.plant.status import FREEZE_BAD_AFTER_SECS, FROZEN_SIGNALS, STATUS_QUALITY, SensorStatus
from simulator.plant.whr import Whr

__all__ = [
    "AF_PERMIT_FEED_FRACTION",
    "AIR_CP_KJ_PER_NM3_K",
    "AQC_AIR_KNM3_PER_H",
    "BASE_FALSE_AIR_PCT",
    "BIOMASS_BIOGENIC_FRACTION",
    "BIOMASS_CO2_KG_PER_GJ",
    "BIOMASS_NCV_MJ_PER_KG",
    "BIOMASS_TPH",
    "BURNER_SHC_PENALTY",
    "CALCINER_HEAT_SHARE",
    "CEMENT_CLINKER_SHARE_HIGH_BLAINE",
    "CEMENT_CLINKER_SHARE_LOW_BLAINE",
    "CEMENT_FEED_TPH",
    "CEMENT_MIC_MOISTURE_PCT",
    "CEMENT_MILL_RATED_KW",
    "COAL_CO2_KG_PER_GJ",
    "COAL_MILL_RATED_KW",
    "COAL_NCV_MJ_PER_KG",
    "COAL_PRICE_PER_GJ",
    "COOLER_SHC_PENALTY_KCAL_PER_KG",
    "CURRENCY",
    "DEFAULT_START",
    "DESIGN_CLINKER_TEMP_C",
    "DESIGN_PH_EXIT_O2_PCT",
    "DESIGN_PH_EXIT_TEMP_C",
    "ELECTRICITY_PRICE_PER_KWH",
    "FEED_TO_CLINKER",
    "FIXED_HEAT_LOSS_FRACTION",
    "FREEZE_BAD_AFTER_SECS",
    "FROZEN_SIGNALS",
    "GAS_CP_KJ_PER_NM3_K",
    "GAS_KNM3_PER_T_CLINKER",
    "GRID_CO2_KG_PER_KWH",
    "HEAT",
    "HEAT_UP_FIRING_FRACTION",
    "KILN_INLET_O2_PCT",
    "KILN_RATED_KW",
    "KJ_PER_KCAL",
    "LEAK_FALSE_AIR_PCT",
    "MAX_SUBSTEP_SECS",
    "NOMINAL_CLINKER_TPH",
    "NOMINAL_FEED_TPH",
    "NOMINAL_GAS_KNM3_PER_H",
    "RAW_MILL_RATED_KW",
    "RDF_BIOGENIC_FRACTION",
    "RDF_CO2_KG_PER_GJ",
    "RDF_NCV_MJ_PER_KG",
    "RDF_TPH",
    "RUN",
    "SHC_KCAL_PER_FALSE_AIR_PCT",
    "STATUS_QUALITY",
    "STOP",
    "TARGET_SHC_KCAL_PER_KG",
    "WHR_EFFICIENCY",
    "CementMill",
    "CoalMill",
    "Kiln",
    "PlantModel",
    "RawMill",
    "SensorStatus",
    "Severity",
    "Site",
    "Whr",
]
