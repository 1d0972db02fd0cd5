"""The durable MQTT outbox: alerts are written to DuckDB before anyone tries to send them.

A broker outage, a network cut or an agent restart delays alerts but never loses them (docs/mqtt.md):
:func:`record_events` stores each alert transition in the ``alerts`` table *and* queues its MQTT
message in the ``outbox`` table in one transaction, so either both exist or neither does. The
publisher (:mod:`agent.mqtt`) sends undelivered rows in ``seq`` order and marks a row delivered only
when the broker has acknowledged it (QoS 1 PUBACK): delivery is at-least-once and in order.

``outbox.topic`` holds the topic *below* the configured prefix (``plant1/kiln1/alerts/rule``), so a
changed ``mqtt.topic_prefix`` also applies to messages queued before the change.

All functions here are synchronous and take the connection to use; call them from one thread per
connection (DuckDB connections are not thread-safe; use ``con.cursor()`` per thread).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import duckdb

from agent.storage import transaction
from common.values import finite, finite_json, to_utc
from rules.alerts import AlertEvent, AlertState, Severity, episodes, sanitise

OUTBOX_DDL: tuple[str, ...] = (
    "CREATE SEQUENCE IF NOT EXISTS outbox_seq START 1",
    """CREATE TABLE IF NOT EXISTS outbox (
        seq BIGINT PRIMARY KEY DEFAULT nextval('outbox_seq'),
        topic VARCHAR NOT NULL,
        payload VARCHAR NOT NULL,
        qos TINYINT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        delivered_at TIMESTAMPTZ,
        result VARCHAR
    )""",
)

#: QoS of alert messages (docs/mqtt.md: QoS 1, not retained).
ALERT_QOS = 1

_ALERT_COLUMNS = (
    "alert_id, site, asset, rule, severity, state, started_at, resolved_at, value, threshold, unit, message"
)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One queued message; ``topic`` is relative to the topic prefix."""

    seq: int
    topic: str
    payload: str
    qos: int


def ensure_outbox(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ``outbox`` table and its sequence if missing (idempotent)."""
    for stmt in OUTBOX_DDL:
        con.execute(stmt)


def alert_topic(event: AlertEvent) -> str:
    """Topic of an alert below the prefix: ``{site}/{asset}/alerts/{rule}``, parts sanitised."""
    return f"{sanitise(event.site)}/{sanitise(event.asset)}/alerts/{sanitise(event.rule)}"


def to_json(payload: dict[str, Any]) -> str:
    """Compact UTF-8 JSON; NaN/inf (not valid JSON) become null."""
    return json.dumps(finite_json(payload), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def record_events(con: duckdb.DuckDBPyConnection, events: Sequence[AlertEvent]) -> None:
    """Store alert transitions and queue their MQTT messages, atomically.

    A ``firing`` event inserts its ``alerts`` row; a ``resolved`` event sets ``state`` and
    ``resolved_at`` of the same ``alert_id`` (inserting the row if it is unknown, e.g. after the
    database file was replaced). Outbox rows get increasing ``seq`` in the order of ``events``.
    """
    if not events:
        return
    try:
        _record(con, events)
    except duckdb.CatalogException:
        # first alert in a database created without the outbox (no [mqtt] section yet)
        ensure_outbox(con)
        _record(con, events)


def _record(con: duckdb.DuckDBPyConnection, events: Sequence[AlertEvent]) -> None:
    now = datetime.now(UTC)
    # One upsert statement per batch: DuckDB cannot update a row twice in one statement, so an
    # episode that fires and resolves within the batch is merged into one row (first event's
    # figures, last event's state).
    merged = episodes(events)
    alert_params: list[Any] = []
    for first, last in merged:
        resolved_at = to_utc(last.resolved_at or last.ts) if last.state == "resolved" else None
        alert_params += [
            first.alert_id,
            first.site,
            first.asset,
            first.rule,
            first.severity,
            last.state,
            to_utc(first.started_at) if first.started_at is not None else None,
            resolved_at,
            finite(first.value),
            finite(first.threshold),
            first.unit,
            first.message,
        ]
    outbox_params: list[Any] = []
    for ev in events:
        outbox_params += [alert_topic(ev), to_json(ev.payload()), ALERT_QOS, now]
    alert_values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(merged))
    outbox_values = ", ".join(["(?, ?, ?, ?)"] * len(events))
    with transaction(con):
        con.execute(
            f"INSERT INTO alerts ({_ALERT_COLUMNS}) VALUES {alert_values} "
            "ON CONFLICT (alert_id) DO UPDATE SET state = excluded.state, resolved_at = excluded.resolved_at",
            alert_params,
        )
        con.execute(
            f"INSERT INTO outbox (topic, payload, qos, created_at) VALUES {outbox_values}", outbox_params
        )


def load_open_alerts(con: duckdb.DuckDBPyConnection, site: str) -> list[AlertEvent]:
    """Alerts of ``site`` still firing, oldest first: the rule engine's state after a restart."""
    rows = con.execute(
        "SELECT alert_id, site, asset, rule, severity, state, epoch_us(started_at), value, threshold, "
        "unit, message FROM alerts WHERE site = ? AND state = 'firing' ORDER BY started_at, alert_id",
        [site],
    ).fetchall()
    out: list[AlertEvent] = []
    for alert_id, site_, asset, rule, severity, state, started_us, value, threshold, unit, message in rows:
        started = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=started_us)
        out.append(
            AlertEvent(
                alert_id=alert_id,
                site=site_,
                asset=asset,
                rule=rule,
                severity=cast(Severity, severity),
                state=cast(AlertState, state),
                value=value,
                threshold=threshold,
                unit=unit or "",
                started_at=started,
                ts=started,
                message=message or "",
            )
        )
    return out


def fetch_undelivered(con: duckdb.DuckDBPyConnection, *, after_seq: int, limit: int) -> list[OutboxRow]:
    """The next undelivered rows after ``after_seq``, in ``seq`` order."""
    rows = con.execute(
        "SELECT seq, topic, payload, qos FROM outbox WHERE delivered_at IS NULL AND seq > ? "
        "ORDER BY seq LIMIT ?",
        [after_seq, limit],
    ).fetchall()
    return [OutboxRow(int(s), t, p, int(q)) for s, t, p, q in rows]


def mark_delivered(con: duckdb.DuckDBPyConnection, seqs: Sequence[int], *, result: str | None = None) -> None:
    """Settle rows: the broker acknowledged them (``result`` NULL) or refused them (its reason)."""
    if not seqs:
        return
    con.execute(
        "UPDATE outbox SET delivered_at = ?, result = ? WHERE seq IN (SELECT unnest(?::BIGINT[]))",
        [datetime.now(UTC), result, list(seqs)],
    )


def count_undelivered(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL").fetchone()
    return int(row[0]) if row else 0


def prune_delivered(con: duckdb.DuckDBPyConnection, *, older_than_days: float) -> int:
    """Delete rows delivered more than ``older_than_days`` ago; undelivered rows are never pruned.

    The ``alerts`` table keeps the history; the outbox only needs recent rows for diagnosis.
    """
    cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
    row = con.execute(
        "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?", [cutoff]
    ).fetchone()
    return int(row[0]) if row else 0
