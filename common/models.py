"""The strict pydantic base that every configuration model derives from.

Unknown keys are errors because in a plant config they are almost always typos
(``poll_intervall_ms``) that would otherwise silently fall back to a default; types are strict for
the same reason (a quoted ``port = "5020"`` is a mistake to point out, not to guess around); models
are frozen so a loaded configuration cannot drift while the agent runs.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Frozen, strict types, extra keys forbidden, surrounding whitespace stripped from strings.

    Strict: a value of the wrong TOML type is an error instead of being coerced (``port = "5020"``,
    ``enabled = 1``), so every key behaves like ``poll_interval_ms = "fast"`` always did. An integer
    is still accepted for a float key (``altitude_m = 100``), which is what a TOML user expects.
    TOML's ``inf`` and ``nan`` are refused everywhere: no setting of a plant is infinite, and a NaN
    scale or limit would silently poison every value it touches.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, strict=True, allow_inf_nan=False
    )
