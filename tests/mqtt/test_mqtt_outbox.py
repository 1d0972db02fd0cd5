"""The durable outbox (agent/outbox.py): atomic alert + message, order, settlement, pruning."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest
from mqtt_support import make_event

from agent import storage
from agent.outbox import (
    count_undelivered,
    fetch_undelivered,
    load_open_alerts,
    mark_delivered,
    prune_delivered,
    record_events,
)


def alerts_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    return con.execute("SELECT alert_id, state, resolved_at FROM alerts ORDER BY alert_id").fetchall()


def test_firing_event_stores_alert_row_and_queues_message(db: duckdb.DuckDBPyConnection) -> None:
    ev = make_event(1)
    record_events(db, [ev])
    assert alerts_rows(db) == [(ev.alert_id, "firing", None)]
    [row] = fetch_undelivered(db, after_seq=0, limit=10)
    assert row.topic == "plant1/kiln1/alerts/kiln.specific_heat.high"
    assert row.qos == 1
    payload = json.loads(row.payload)
    # docs/mqtt.md payload fields
    for key in ("alert_id", "site", "asset", "rule", "severity", "state", "value", "threshold", "unit"):
        assert key in payload
    assert payload["started_at"] == "2026-03-01T06:01:00Z" and payload["ts"] == "2026-03-01T06:01:00Z"
    assert payload["value"] == 791.0 and payload["threshold"] == 780.0 and payload["unit"] == "kcal/kg"


def test_resolved_event_updates_the_same_alert_row(db: duckdb.DuckDBPyConnection) -> None:
    record_events(db, [make_event(1)])
    record_events(db, [make_event(1, "resolved")])
    [(_, state, resolved_at)] = alerts_rows(db)
    assert state == "resolved"
    assert resolved_at == make_event(1, "resolved").ts
    states = [json.loads(r.payload)["state"] for r in fetch_undelivered(db, after_seq=0, limit=10)]
    assert states == ["firing", "resolved"]


def test_firing_and_resolving_in_one_batch_is_one_transaction(db: duckdb.DuckDBPyConnection) -> None:
    record_events(db, [make_event(1), make_event(2), make_event(1, "resolved")])
    assert [r[1] for r in alerts_rows(db)] == ["resolved", "firing"]
    assert count_undelivered(db) == 3


def test_failed_batch_leaves_neither_alert_nor_message(db: duckdb.DuckDBPyConnection) -> None:
    record_events(db, [make_event(1)])
    broken = dataclasses.replace(make_event(2), severity=None)  # type: ignore[arg-type]  # NOT NULL
    with pytest.raises(duckdb.Error):
        record_events(db, [make_event(3), broken])
    assert [r[0] for r in alerts_rows(db)] == [make_event(1).alert_id]
    assert count_undelivered(db) == 1


def test_messages_come_back_in_record_order_after_seq(db: duckdb.DuckDBPyConnection) -> None:
    events = [make_event(i) for i in range(7)]
    record_events(db, events[:3])
    record_events(db, events[3:])
    first = fetch_undelivered(db, after_seq=0, limit=4)
    rest = fetch_undelivered(db, after_seq=first[-1].seq, limit=10)
    ids = [json.loads(r.payload)["alert_id"] for r in first + rest]
    assert ids == [e.alert_id for e in events]
    assert [r.seq for r in first + rest] == sorted(r.seq for r in first + rest)


def test_delivered_rows_are_not_fetched_again(db: duckdb.DuckDBPyConnection) -> None:
    record_events(db, [make_event(i) for i in range(4)])
    rows = fetch_undelivered(db, after_seq=0, limit=10)
    mark_delivered(db, [rows[0].seq, rows[2].seq])
    assert [r.seq for r in fetch_undelivered(db, after_seq=0, limit=10)] == [rows[1].seq, rows[3].seq]
    assert count_undelivered(db) == 2


def test_prune_removes_only_old_delivered_rows(db: duckdb.DuckDBPyConnection) -> None:
    record_events(db, [make_event(i) for i in range(3)])
    rows = fetch_undelivered(db, after_seq=0, limit=10)
    mark_delivered(db, [rows[0].seq, rows[1].seq])
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    db.execute("UPDATE outbox SET delivered_at = ? WHERE seq = ?", [old, rows[0].seq])
    assert prune_delivered(db, older_than_days=7) == 1
    left = db.execute("SELECT seq, delivered_at IS NULL FROM outbox ORDER BY seq").fetchall()
    assert left == [(rows[1].seq, False), (rows[2].seq, True)]


def test_open_alerts_restore_only_firing_of_the_site(db: duckdb.DuckDBPyConnection) -> None:
    record_events(
        db,
        [make_event(1), make_event(2), make_event(2, "resolved"), make_event(3, site="plant2")],
    )
    restored = load_open_alerts(db, "plant1")
    assert [a.alert_id for a in restored] == [make_event(1).alert_id]
    a = restored[0]
    assert a.state == "firing" and a.started_at == make_event(1).started_at
    assert a.started_at.tzinfo is not None and a.value == 791.0 and a.unit == "kcal/kg"


def test_non_finite_value_is_stored_and_sent_as_null(db: duckdb.DuckDBPyConnection) -> None:
    ev = dataclasses.replace(make_event(1), value=float("nan"))
    record_events(db, [ev])
    assert db.execute("SELECT value FROM alerts").fetchone() == (None,)
    assert json.loads(fetch_undelivered(db, after_seq=0, limit=1)[0].payload)["value"] is None


def test_topic_parts_are_sanitised(db: duckdb.DuckDBPyConnection) -> None:
    ev = dataclasses.replace(make_event(1), asset="kiln #1", rule="heat/high+")
    record_events(db, [ev])
    assert fetch_undelivered(db, after_seq=0, limit=1)[0].topic == "plant1/kiln__1/alerts/heat_high_"


def test_outbox_is_created_on_first_use(tmp_path: Path) -> None:
    """An agent without an [mqtt] section still keeps alerts in the outbox (docs/configuration.md)."""
    con = storage.connect(tmp_path / "fresh.duckdb")
    record_events(con, [make_event(1)])
    assert count_undelivered(con) == 1
    assert alerts_rows(con)[0][1] == "firing"
    con.close()
