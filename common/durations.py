"""One duration grammar for rule packs (``for``, ``window``) and simulator scenarios.

``90`` (seconds), ``90s``, ``15m``, ``1.5h``, ``2d`` and compounds such as ``1h30m`` or ``1d12h``;
whitespace between parts is allowed, case is ignored.
"""

from __future__ import annotations

import math
import re

UNIT_SECS: dict[str, float] = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_HINT = "a duration like '90s', '15m', '1h30m' or '2d'"


class DurationError(ValueError):
    """Not a duration; the message says what is accepted."""


def parse_duration(value: object) -> float:
    """Seconds of ``value``: a non-negative number of seconds or a string in the grammar above."""
    if isinstance(value, bool):
        raise DurationError(_HINT)
    if isinstance(value, int | float):
        if value < 0 or not math.isfinite(value):
            raise DurationError("must be a non-negative number of seconds")
        return float(value)
    if not isinstance(value, str):
        raise DurationError(_HINT)
    text = value.strip().lower()
    if _NUMBER.fullmatch(text):
        return float(text)
    parts = _PART.findall(text)
    if not parts or _PART.sub("", text).strip():
        raise DurationError(f"{value!r} is not {_HINT}")
    return sum(float(n) * UNIT_SECS[u] for n, u in parts)


def format_duration(secs: float) -> str:
    """The shortest exact single-unit spelling of a duration (``600`` -> ``10m``)."""
    for unit in ("d", "h", "m"):
        n = secs / UNIT_SECS[unit]
        if n >= 1 and n == int(n):
            return f"{int(n)}{unit}"
    return f"{int(secs)}s" if secs == int(secs) else f"{secs!r}s"
