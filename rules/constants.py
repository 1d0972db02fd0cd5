"""Constants of the KPI library and the rule engine, each with its docs/kpis.md section.

Numbers marked [U] in docs/kpis.md are engineering judgement, not a standard: they are defaults here and
can be overridden per site (asset parameters in the config, or a site rule pack).
"""

from __future__ import annotations

from typing import Final

# --- unit conversions (docs/kpis.md §1 "use these exact constants") -------------------------------------
#: International Table calorie: 1 kcal = 4.1868 kJ, so 1 kcal/kg = 4.1868 MJ/t (docs/kpis.md §1).
KJ_PER_KCAL: Final = 4.1868
#: 1 kg standard coal equivalent = 29.3076 MJ = 7000 kcal (docs/kpis.md §1, GB/T 2589 convention).
MJ_PER_KGCE: Final = 29.3076
#: Electricity to standard coal, equivalent value: 0.1229 kgce/kWh (docs/kpis.md §1 and §3).
KGCE_PER_KWH: Final = 0.1229

# --- CO2 (docs/kpis.md §4, CSI Cement CO2 & Energy Protocol) --------------------------------------------
#: Default calcination emission factor, kg CO2 per t clinker (docs/kpis.md §4 [CSI]).
CALCINATION_CO2_KG_PER_T: Final = 525.0
#: Composition method: kg CO2/t clinker per %-point CaO (44.01/56.08 x 10) and MgO (44.01/40.30 x 10).
CAO_CO2_KG_PER_T_PER_PCT: Final = 0.785 * 10
MGO_CO2_KG_PER_T_PER_PCT: Final = 1.092 * 10

# --- false air (docs/kpis.md §8, two-point O2 method) ---------------------------------------------------
#: Oxygen content of ambient air, % by volume.
AIR_O2_PCT: Final = 21.0
#: Below this O2 margin to air (21 - O2 at the preheater exit) the analyser reads air, not flue gas.
MIN_O2_MARGIN_PCT: Final = 1.0

# --- denominators: when a KPI per tonne is meaningless (docs/kpis.md §1/§2; brief: 5 % or 1 t/h) --------
#: A product flow below this is "stopped" whatever the nominal rate.
MIN_PRODUCT_TPH: Final = 1.0
#: ... and below this fraction of the nominal rate (when a nominal rate is configured).
MIN_PRODUCT_FRACTION_OF_NOMINAL: Final = 0.05
#: Plant power below this makes a share of it meaningless (compressor share).
MIN_PLANT_POWER_KW: Final = 1.0
#: KPI values whose magnitude exceeds this are reported NULL ("implausible value"): never huge.
MAX_ABS_KPI_VALUE: Final = 1e9

# --- windows (docs/auditors.md ``kpi.window_secs``) ------------------------------------------------------
#: KPI windows the engine emits once they have closed: 1 min, 15 min, 1 h (UTC-aligned).
KPI_WINDOWS_SECS: Final = (60, 900, 3600)
#: A window [start, end) closes when the evaluation time passes end + this allowance, so that samples
#: still in the pipeline's queue when the window ends are counted (stream processing "allowed lateness").
ALLOWED_LATENESS_SECS: Final = 5.0
#: Sample rows may reach the rule window out of time order by at most this much (several sources).
MAX_DISORDER_SECS: Final = 30.0
#: Rule windows up to this length are evaluated from raw samples; longer ones from 1-min aggregates.
RAW_WINDOW_MAX_SECS: Final = 120
#: The "current" values published to MQTT and used by rules without a ``window``.
CURRENT_WINDOW_SECS: Final = 60
#: A window whose good fraction is below this gets the reason "partial data" (value kept).
PARTIAL_DATA_GOOD_FRACTION: Final = 0.5

# --- mills (docs/kpis.md §2; [U] bands, used only as rule defaults) --------------------------------------
#: Upper end of the typical specific power band per t of the mill's own product, kWh/t (docs/kpis.md §2:
#: raw ball mill 20-26 per t raw meal, coal ball mill 30-40 per t coal, cement ball mill 32-40).
TYPICAL_SPECIFIC_POWER_KWH_PER_T: Final[dict[str, float]] = {
    "raw_mill": 26.0,
    "coal_mill": 40.0,
    "cement_mill": 40.0,
}

# --- reasons stored with NULL KPI values ------------------------------------------------------------
REASON_NO_DATA: Final = "no good data"
REASON_STALE: Final = "stale"
REASON_KILN_STOPPED: Final = "kiln stopped"
REASON_MILL_IDLE: Final = "mill idle"
REASON_PLANT_STOPPED: Final = "plant stopped"
REASON_O2_AT_AIR: Final = "o2 at air level"
REASON_IMPLAUSIBLE: Final = "implausible value"
REASON_PARTIAL: Final = "partial data"
REASON_NO_FUEL: Final = "no fuel"
#: The CO loss from kiln-inlet CO: the calciner may burn that CO out (docs/kpis.md §10).
REASON_UPPER_BOUND: Final = "upper bound (CO at kiln inlet)"
#: The unattributed remainder is over half the deviation, or of the other sign (docs/kpis.md §10).
REASON_LOW_CONFIDENCE: Final = "low confidence"
#: Reasons stored beside a value that is kept (they qualify it); every other reason means NULL.
INFORMATIONAL_REASONS: Final = (REASON_PARTIAL, REASON_UPPER_BOUND, REASON_LOW_CONFIDENCE)

# --- loss attribution (docs/kpis.md §10) ---------------------------------------------------------------
#: A window is steady (the loss split is representative) with kiln feed at least this share of nominal.
STEADY_FEED_FRACTION: Final = 0.8
