"""Prometheus metrics: logs are for state changes, metrics for throughput (docs/architecture.md).

Names follow ``kilnwatch_<component>_<noun>_<unit>`` (Vector's convention). The registry is per
agent instance so tests can run several agents in one process.
"""

from __future__ import annotations

import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)


class AgentMetrics:
    """Every metric the daemon exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.samples = Counter(
            "kilnwatch_source_samples",
            "Samples read, by source and quality",
            ["source", "quality"],
            registry=r,
        )
        self.read_errors = Counter(
            "kilnwatch_source_read_errors",
            "Polls that ended in a communication error, by source",
            ["source"],
            registry=r,
        )
        self.poll_duration = Histogram(
            "kilnwatch_source_poll_duration_seconds",
            "Time from the start of a poll to its sample frame, by source",
            ["source"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.source_connected = Gauge(
            "kilnwatch_source_connected", "1 while the session with the device is up", ["source"], registry=r
        )
        self.source_requests = Gauge(
            "kilnwatch_source_requests", "Protocol requests sent since start", ["source"], registry=r
        )
        self.source_skipped_polls = Gauge(
            "kilnwatch_source_skipped_polls",
            "Poll ticks skipped because a poll ran late",
            ["source"],
            registry=r,
        )
        self.source_reconnects = Gauge(
            "kilnwatch_source_reconnects", "Successful reconnections since start", ["source"], registry=r
        )
        self.source_quarantined = Gauge(
            "kilnwatch_source_quarantined_tags",
            "Tags excluded from reads after a device exception (retried later)",
            ["source"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "kilnwatch_pipeline_queue_depth_frames", "Sample frames waiting for the writer", registry=r
        )
        self.flush_duration = Histogram(
            "kilnwatch_storage_flush_duration_seconds",
            "Time to append one batch to DuckDB",
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
            registry=r,
        )
        self.storage_ok = Gauge(
            "kilnwatch_storage_ok",
            "1 while writes to DuckDB succeed, 0 while they fail (disk full)",
            registry=r,
        )
        self.rows_dropped = Counter(
            "kilnwatch_storage_rows_dropped",
            "Rows dropped (oldest first) because DuckDB could not take them and the buffer was full",
            ["table"],
            registry=r,
        )
        self.rows_written = Counter(
            "kilnwatch_storage_rows_written", "Rows appended to DuckDB, by table", ["table"], registry=r
        )
        self.archive_days_moved = Counter(
            "kilnwatch_storage_archive_days_moved",
            "UTC days of raw samples moved from the live database to the Parquet archive",
            registry=r,
        )
        self.archive_days_deleted = Counter(
            "kilnwatch_storage_archive_days_deleted",
            "Archive days deleted to keep agent.max_disk_gb / agent.min_free_disk_gb",
            registry=r,
        )
        self.storage_bytes = Gauge(
            "kilnwatch_storage_bytes", "Bytes on disk, by tier (database with WAL, archive)", ["tier"], registry=r
        )
        self.maintain_failures = Counter(
            "kilnwatch_storage_maintain_failures", "Daily tiering runs that failed (logged)", registry=r
        )
        self.clock_steps = Counter(
            "kilnwatch_clock_steps", "Steps of the wall clock detected (recorded in clock_events)", registry=r
        )
        self.rule_eval_duration = Histogram(
            "kilnwatch_rules_evaluation_duration_seconds",
            "Time of one rule-engine tick",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
            registry=r,
        )
        self.alert_events = Counter(
            "kilnwatch_rules_alert_events", "Alert transitions, by state", ["state"], registry=r
        )
        self.mqtt_published = Gauge(
            "kilnwatch_mqtt_published_messages", "Messages acknowledged by the broker", registry=r
        )
        self.mqtt_retried = Gauge("kilnwatch_mqtt_retried_messages", "Messages sent again", registry=r)
        self.mqtt_backlog = Gauge(
            "kilnwatch_mqtt_backlog_messages", "Outbox rows not yet acknowledged", registry=r
        )
        self.mqtt_connected = Gauge("kilnwatch_mqtt_connected", "1 while connected to the broker", registry=r)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def serve(self, host: str, port: int) -> int:
        """Expose ``/metrics`` on ``host:port``; returns the bound port (``port=0`` picks one)."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        self._server, self._thread = server, thread
        bound = int(server.server_address[1])
        log.info("metrics on http://%s:%d/metrics", host, bound)
        return bound

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
