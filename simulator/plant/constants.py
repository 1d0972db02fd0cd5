"""Plant constants of the simulated 5,000 t/d precalciner line, each with its docs/kpis.md reference.

These are also the defaults of the generated agent config (:mod:`simulator.config_gen`), so the
agent's KPIs and the plant agree. ``[U]`` marks an unreferenced, plausible engineering value. The
couplings they feed are summarised in docs/simulator.md ("The plant model").
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

#: Simulated time 0; a Monday, so day shifts and weekdays line up in backfilled history.
DEFAULT_START: Final = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
#: Longest internal substep of :meth:`simulator.plant.PlantModel.step` (docs/simulator.md).
MAX_SUBSTEP_SECS: Final = 60.0

# --- Kiln and heat (docs/kpis.md §1, §6, §8) -------------------------------------------------
KJ_PER_KCAL: Final = 4.1868  # docs/kpis.md §1: 1 kcal/kg = 4.1868 MJ/t
FEED_TO_CLINKER: Final = 1.6  # docs/kpis.md §1, [SIM] snapshot
NOMINAL_FEED_TPH: Final = 330.0  # 5,000 t/d line: 330 / 1.6 = 206 t/h clinker (docs/kpis.md §5: 208 t/h)
NOMINAL_CLINKER_TPH: Final = NOMINAL_FEED_TPH / FEED_TO_CLINKER
TARGET_SHC_KCAL_PER_KG: Final = 735.0  # docs/kpis.md §1: new 5-stage PH+PC < 725; normal band 700-780
DESIGN_PH_EXIT_TEMP_C: Final = 320.0  # docs/kpis.md §6: 5-stage 300-340 °C
#: Kiln-inlet O2 in normal operation, % (docs/kpis.md §6: 1.5-3.5, snapshot 2.32).
KILN_INLET_O2_PCT: Final = 2.3
FIXED_HEAT_LOSS_FRACTION: Final = 0.08  # radiation/shell loss independent of output [U]
BASE_FALSE_AIR_PCT: Final = 3.5  # docs/kpis.md §8: good < 5 %
LEAK_FALSE_AIR_PCT: Final = 16.5  # false_air_leak adds this: ~20 %, docs/kpis.md §8 critical > 15 %
SHC_KCAL_PER_FALSE_AIR_PCT: Final = 2.0  # docs/kpis.md §8: 1.5-2.5 kcal/kg per % false air
BURNER_SHC_PENALTY: Final = 0.06  # burner_inefficiency: +6 % heat demand (+5.5 % SHC after the fixed loss)
#: cooler_air_shortfall: heat carried out by the hotter clinker and not recuperated into the
#: secondary/tertiary air, kcal/kg [U] (+70 °C clinker x 0.8 kJ/kg K alone is 13.4 kcal/kg).
COOLER_SHC_PENALTY_KCAL_PER_KG: Final = 18.0
#: PH exit O2 in normal operation, % dry (extractive analyser): the kiln-inlet O2 diluted by the
#: base false air, two-point formula of docs/kpis.md §8 inverted (2.93 %; docs/kpis.md §6: 2.5-4.5).
DESIGN_PH_EXIT_O2_PCT: Final = round(
    (BASE_FALSE_AIR_PCT / 100.0 * 21.0 + KILN_INLET_O2_PCT) / (1.0 + BASE_FALSE_AIR_PCT / 100.0), 1
)
#: Clinker at the cooler exit in normal operation, °C (docs/kpis.md §6: 80-150).
DESIGN_CLINKER_TEMP_C: Final = 115.0

# --- Kiln fuels (docs/kpis.md §6 NCVs; categories, CO2 factors on total carbon and biogenic shares:
# the CSI/GCCA protocol defaults of docs/kpis.md §9). Coal is the marginal fuel the kiln controller
# trims to the heat demand; the alternative fuels run at fixed feeder setpoints. At the nominal
# 735 kcal/kg x 206 t/h = 635 GJ/h: RDF 104 + sawdust 30 GJ/h = 21 % thermal substitution, coal
# 501 GJ/h = 20.0 t/h.
COAL_NCV_MJ_PER_KG: Final = 25.0  # docs/kpis.md §6: bituminous coal 21-26 MJ/kg
COAL_CO2_KG_PER_GJ: Final = 96.0  # protocol default for coal (IPCC bituminous: 94.6)
#: 670 CNY/t at 5,500 kcal/kg (23.03 GJ/t), inside the 570-770 CNY/t long-term contract band [U].
COAL_PRICE_PER_GJ: Final = 29.1
#: RDF (refuse-derived fuel) to the calciner: docs/kpis.md §6 NCV 14-20 MJ/kg.
RDF_NCV_MJ_PER_KG: Final = 16.0
RDF_CO2_KG_PER_GJ: Final = 88.0  # on total carbon [U]
RDF_BIOGENIC_FRACTION: Final = 0.45  # paper/wood/textile share of the carbon [U]; measured 0.2-0.45
RDF_TPH: Final = 6.5  # calciner RDF feeder setpoint [U]
#: Sawdust / wood chips (untreated) through the main burner's AF channel: NCV 10-14 MJ/kg wet [U].
BIOMASS_NCV_MJ_PER_KG: Final = 12.0
BIOMASS_CO2_KG_PER_GJ: Final = 110.0  # protocol default for solid biomass
BIOMASS_BIOGENIC_FRACTION: Final = 1.0
BIOMASS_TPH: Final = 2.5  # main-burner biomass feeder setpoint [U]
#: Alternative fuels are permitted only on a stable kiln: running with feed above this share of
#: nominal (they trip with the kiln and come back late in the feed ramp after a stop) [U].
AF_PERMIT_FEED_FRACTION: Final = 0.8
CALCINER_HEAT_SHARE: Final = 0.60  # docs/kpis.md §6: 55-62 % of heat
GAS_KNM3_PER_T_CLINKER: Final = 1.45  # PH exit gas ~1.45 Nm³/kg clinker [U]
NOMINAL_GAS_KNM3_PER_H: Final = GAS_KNM3_PER_T_CLINKER * NOMINAL_CLINKER_TPH
HEAT_UP_FIRING_FRACTION: Final = 0.35  # main burner only while heating up after a stop [U]

# --- Section ratings (docs/kpis.md §2) -------------------------------------------------------
RAW_MILL_RATED_KW: Final = 7500.0  # main drive 4,200 + fan 3,000 + separator 300 (section rating)
COAL_MILL_RATED_KW: Final = 800.0
CEMENT_MILL_RATED_KW: Final = 5600.0  # main drive 4,700 + separator 250 + fan 650
KILN_RATED_KW: Final = 6000.0
#: Fresh feed at 3,500 cm²/g (3,400 -> 161 t/h, 3,600 -> 149 t/h): ~4.7 MW / 155 t/h ~ 30.5 kWh/t, a
#: closed-circuit ball mill with a high-efficiency separator, between GB 16780 cement preparation
#: grades 2 and 3 (<= 29 / <= 34 kWh/t, docs/kpis.md §3), below docs/kpis.md §2's 32-40 band.
CEMENT_FEED_TPH: Final = 155.0
#: Clinker grindability drift: relative feed at the same fineness, std and correlation time [U].
CEMENT_GRINDABILITY_SIGMA: Final = 0.03
CEMENT_GRINDABILITY_TAU_SECS: Final = 12 * 3600.0
#: Clinker share of the cement mill feed by product (3,400 / 3,600 cm²/g), the rest gypsum,
#: limestone and slag (docs/kpis.md §9: clinker factor, world average ~0.75) [U].
CEMENT_CLINKER_SHARE_LOW_BLAINE: Final = 0.73
CEMENT_CLINKER_SHARE_HIGH_BLAINE: Final = 0.77
#: Moisture of the non-clinker components as weighed, % of their wet mass [U]: the clinker factor
#: is on a dry basis (docs/kpis.md §9).
CEMENT_MIC_MOISTURE_PCT: Final = 2.0

# --- WHR (docs/kpis.md §5): SP boiler on PH exit gas, AQC boiler on cooler mid-air; 30-45 kWh/t clinker.
GAS_CP_KJ_PER_NM3_K: Final = 1.45
AIR_CP_KJ_PER_NM3_K: Final = 1.32
AQC_AIR_KNM3_PER_H: Final = 220.0
WHR_EFFICIENCY: Final = 0.22

# --- Site money and indirect CO2 (docs/kpis.md §11) -----------------------------------------------
CURRENCY: Final = "CNY"
#: China national average grid factor 2023 (MEE), kg CO2/kWh.
GRID_CO2_KG_PER_KWH: Final = 0.5306
ELECTRICITY_PRICE_PER_KWH: Final = 0.65  # illustrative industrial tariff, CNY/kWh [U]
