"""The strict pydantic base that every configuration model derives from.

Unknown keys are errors because in a plant config they are almost always typos
(``poll_intervall_ms``) that would otherwise silently fall back to a default; models are frozen so
a loaded configuration cannot drift while the agent runs.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Frozen, extra keys forbidden, surrounding whitespace stripped from strings."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
