"""Alert events: what the rule engine emits and the outbox stores and MQTT publishes (docs/mqtt.md)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

AlertState = Literal["firing", "resolved"]
Severity = Literal["info", "warning", "critical"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def sanitise(part: str) -> str:
    """Topic part per docs/mqtt.md: anything outside ``[A-Za-z0-9_.-]`` becomes ``_``."""
    return _UNSAFE.sub("_", part) or "_"


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One transition of an alert episode: published once on firing and once on resolving.

    ``alert_id`` is stable for the whole episode, so operators can pair the two messages.
    """

    alert_id: str
    site: str
    asset: str
    rule: str
    severity: Severity
    state: AlertState
    value: float | None
    threshold: float | None
    unit: str
    started_at: datetime
    ts: datetime
    message: str
    resolved_at: datetime | None = None

    def payload(self) -> dict[str, Any]:
        """The MQTT JSON payload (docs/mqtt.md); timestamps ISO-8601 UTC."""
        d = asdict(self)
        for k in ("started_at", "ts", "resolved_at"):
            v = d[k]
            d[k] = v.isoformat().replace("+00:00", "Z") if v is not None else None
        return d

    def topic(self, prefix: str) -> str:
        return f"{prefix}/{sanitise(self.site)}/{sanitise(self.asset)}/alerts/{sanitise(self.rule)}"


def episodes(events: Iterable[AlertEvent]) -> list[tuple[AlertEvent, AlertEvent]]:
    """(first, last) event of each episode in ``events``, in order of first appearance.

    One ``alerts`` row per episode is written from these: the first event's figures, the last
    event's state (an episode may fire and resolve within one batch).
    """
    merged: dict[str, tuple[AlertEvent, AlertEvent]] = {}
    for ev in events:
        merged[ev.alert_id] = (merged.get(ev.alert_id, (ev, ev))[0], ev)
    return list(merged.values())
