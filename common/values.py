"""Value hygiene shared by storage, rules and MQTT: finite numbers and UTC timestamps.

NaN and infinity from a PLC must never reach a KPI, a JSON payload (where they are not valid) or an
auditor's table; every stored timestamp is UTC (docs/auditors.md).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any


def finite(value: object) -> float | None:
    """``value`` as a float when it is a finite number; ``None`` for None, bools, NaN and inf."""
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def finite_json(obj: Any) -> Any:
    """``obj`` with every non-finite float inside dicts, lists and tuples replaced by ``None``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_json(v) for v in obj]
    return obj


def to_utc(ts: datetime) -> datetime:
    """``ts`` in UTC: an aware time is converted, a naive one is taken to be UTC already."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def iso_utc(ts: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix, as in every MQTT payload."""
    return to_utc(ts).isoformat().replace("+00:00", "Z")

