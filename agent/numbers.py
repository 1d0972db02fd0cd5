"""How kilnwatch writes a number on a terminal: one rule per quantity, keyed by its unit.

Used by the live view (agent/view.py) and ``kilnwatch once`` (agent/commands.py) so the same
quantity reads the same everywhere: a fixed number of decimals per unit (kcal/kg 0, kWh/t 1, % 1,
°C 0, t/h 1, kW 0, kgce/t 1 ...), thousands separators always, and rounding before the sign is
chosen so a value that rounds to zero never shows as ``-0`` / ``-0.000``.
"""

from __future__ import annotations

import math

#: Decimals per unit. Units not listed get three significant digits (at most three decimals).
DECIMALS_BY_UNIT: dict[str, int] = {
    "kcal/kg": 0,
    "MJ/t": 0,
    "GJ/h": 1,
    "kWh/t": 1,
    "kgce/t": 1,
    "kg/t": 0,
    "%": 1,
    "°C": 0,
    "degC": 0,
    "t/h": 1,
    "t": 1,
    "kW": 0,
    "MW": 2,
    "kWh": 0,
    "MWh": 1,
    "cm2/g": 0,
    "cm²/g": 0,
}

MISSING = "—"


def decimals_for(unit: str | None, value: float) -> int:
    """Decimals a value of this unit is shown with."""
    if unit is not None and unit.strip() in DECIMALS_BY_UNIT:
        return DECIMALS_BY_UNIT[unit.strip()]
    magnitude = abs(value)
    if magnitude == 0 or magnitude >= 100:
        return 0
    return min(3, max(0, 2 - math.floor(math.log10(magnitude))))


def fmt_number(value: float | None, unit: str | None = None) -> str:
    """``value`` as shown to an operator: decimals by unit, thousands separators, never ``-0``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    decimals = decimals_for(unit, value)
    rounded = round(value, decimals)
    if rounded == 0:  # round first, then pick the sign: -0.0004 -> "0", not "-0.000"
        rounded = 0.0
        if unit is None or unit.strip() not in DECIMALS_BY_UNIT:
            return "0"
    return f"{rounded:,.{decimals}f}"


def fmt_quantity(value: float | None, unit: str | None) -> str:
    """Number and unit together (``104.3 kgce/t``); the unit is left out with the number missing."""
    text = fmt_number(value, unit)
    return text if value is None or not unit else f"{text} {unit}"
