"""One number format per quantity for the live view and ``kilnwatch once``."""

from __future__ import annotations

import pytest

from agent.numbers import fmt_number, fmt_quantity


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (-0.0004, None, "0"),  # round first, then the sign: never "-0.000"
        (-0.0004, "kWh/t", "0.0"),
        (-0.04, "t/h", "0.0"),
        (-0.4, "kcal/kg", "0"),
        (12345.6, "kWh", "12,346"),
        (742.6, "kcal/kg", "743"),
        (3109.2, "MJ/t", "3,109"),
        (21.77, "kWh/t", "21.8"),
        (104.27, "kgce/t", "104.3"),
        (12.34, "%", "12.3"),
        (352.4, "°C", "352"),
        (208.34, "t/h", "208.3"),
        (1234.5, "t/h", "1,234.5"),
        (15234.4, "kW", "15,234"),
        (-3.21, "kW", "-3"),
        (0.01234, "", "0.012"),  # 3 significant digits, at most 3 decimals
        (1.5, "", "1.50"),
        (123456.0, "", "123,456"),
        (None, "kW", "—"),
        (float("nan"), "kW", "—"),
    ],
)
def test_one_rule_per_unit(value: float | None, unit: str | None, text: str) -> None:
    assert fmt_number(value, unit) == text


def test_quantity_carries_its_unit() -> None:
    assert fmt_quantity(104.27, "kgce/t") == "104.3 kgce/t"
    assert fmt_quantity(None, "kgce/t") == "—"
