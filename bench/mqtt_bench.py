"""Alert throughput and latency through the durable outbox to a loopback mosquitto.

    .venv/bin/python bench/mqtt_bench.py [--quick] [--events N] [--repeat R]

Measures, each as the median of ``--repeat`` runs:

* baseline: bare paho QoS 1 publishes of the same payloads (network thread, no storage), msg/s;
* live: alert events recorded in batches of 100 (``record_events`` + ``notify``) while the link
  runs, until every outbox row is PUBACK-marked delivered, events/s;
* drain: a backlog recorded while the broker was unreachable, drained after connecting, events/s;
* latency: one event at a time at a steady rate, from the ``record_events`` call to the arrival at
  a subscribing client, p50/p99 (and the same for bare paho publishes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from agent import storage
from agent.broker import EmbeddedBroker
from agent.config import MqttSection
from agent.mqtt import MqttLink
from agent.outbox import alert_topic, record_events, to_json
from rules.alerts import AlertEvent

T0 = datetime(2026, 3, 1, tzinfo=UTC)
BASE = AlertEvent(
    alert_id="",
    site="plant1",
    asset="kiln1",
    rule="kiln.specific_heat.high",
    severity="warning",
    state="firing",
    value=791.0,
    threshold=780.0,
    unit="kcal/kg",
    started_at=T0,
    ts=T0,
    message="Specific heat 791 kcal/kg above 780 for 10 min",
)


def events(start: int, n: int) -> list[AlertEvent]:
    return [replace(BASE, alert_id=f"plant1:kiln1:heat:{i}") for i in range(start, start + n)]


class Receiver:
    """A subscribing paho client that stamps each alert's arrival with ``time.perf_counter``."""

    def __init__(self, port: int) -> None:
        self.arrivals: dict[str, float] = {}
        self.count = 0
        self._ready = threading.Event()
        self.c = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="bench-sub", protocol=MQTTProtocolVersion.MQTTv5
        )
        self.c.on_connect = lambda c, *_: c.subscribe("kilnwatch/#", qos=1)
        self.c.on_subscribe = lambda *_: self._ready.set()
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self._ready.wait(10)

    def _on_message(self, _c: paho.Client, _u: object, m: paho.MQTTMessage) -> None:
        if b'"alert_id"' in m.payload:
            self.arrivals[json.loads(m.payload)["alert_id"]] = time.perf_counter()
            self.count += 1

    def stop(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def bare_paho(port: int, n: int) -> float:
    """msg/s of QoS 1 publishes from a paho network thread, until the last PUBACK."""
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=MQTTProtocolVersion.MQTTv5)
    c.connect("127.0.0.1", port)
    c.loop_start()
    payloads = [to_json(e.payload()) for e in events(0, n)]
    topic = "kilnwatch/" + alert_topic(BASE)
    t = time.perf_counter()
    infos = [c.publish(topic, p, qos=1) for p in payloads]
    infos[-1].wait_for_publish(60)
    for info in infos:
        info.wait_for_publish(60)
    dt = time.perf_counter() - t
    c.disconnect()
    c.loop_stop()
    return n / dt


def bare_paho_latency(port: int, rx: Receiver, n: int, rate: float) -> list[float]:
    c = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-pub-lat", protocol=MQTTProtocolVersion.MQTTv5
    )
    c.connect("127.0.0.1", port)
    c.loop_start()
    topic = "kilnwatch/" + alert_topic(BASE)
    sent: dict[str, float] = {}
    for e in events(10_000_000, n):
        sent[e.alert_id] = time.perf_counter()
        c.publish(topic, to_json(e.payload()), qos=1)
        time.sleep(1 / rate)
    deadline = time.monotonic() + 10
    while any(k not in rx.arrivals for k in sent) and time.monotonic() < deadline:
        time.sleep(0.01)
    c.disconnect()
    c.loop_stop()
    return [rx.arrivals[k] - t for k, t in sent.items() if k in rx.arrivals]


async def until(pred: Callable[[], bool], within: float = 120) -> None:
    deadline = time.monotonic() + within
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached")
        await asyncio.sleep(0.001)


@contextlib.asynccontextmanager
async def link_running(link: MqttLink):  # type: ignore[no-untyped-def]
    task = asyncio.create_task(link.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def live(url: str, db: Path, n: int, batch: int) -> float:
    con = storage.connect(db)
    link = MqttLink(MqttSection(url=url), site="plant1", con=con)
    async with link_running(link):
        await until(lambda: link.stats.connected)
        t = time.perf_counter()
        for start in range(0, n, batch):
            record_events(con, events(start, batch))
            link.notify()
            await asyncio.sleep(0)  # the pipeline yields between evaluation cycles
        await until(lambda: link.stats.alerts_delivered >= n and link.stats.backlog == 0)
        dt = time.perf_counter() - t
    con.close()
    return n / dt


async def drain(url: str, db: Path, n: int) -> float:
    con = storage.connect(db)
    for start in range(0, n, 1000):
        record_events(con, events(start, min(1000, n - start)))
    link = MqttLink(MqttSection(url=url), site="plant1", con=con)
    async with link_running(link):
        await until(lambda: link.stats.connected, within=10)
        t = time.perf_counter()
        await until(lambda: link.stats.alerts_delivered >= n)
        dt = time.perf_counter() - t
    con.close()
    return n / dt


async def latency(url: str, db: Path, rx: Receiver, n: int, rate: float) -> list[float]:
    con = storage.connect(db)
    link = MqttLink(MqttSection(url=url), site="plant1", con=con)
    sent: dict[str, float] = {}
    async with link_running(link):
        await until(lambda: link.stats.connected)
        for e in events(20_000_000, n):
            sent[e.alert_id] = time.perf_counter()
            record_events(con, [e])
            link.notify()
            await asyncio.sleep(1 / rate)
        await until(lambda: all(k in rx.arrivals for k in sent), within=30)
    con.close()
    return [rx.arrivals[k] - t for k, t in sent.items()]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small run (seconds)")
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--latency-events", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=200.0, help="events/s in the latency run")
    args = ap.parse_args()
    n, reps, n_lat = (2000, 1, 200) if args.quick else (args.events, args.repeat, args.latency_events)

    async with EmbeddedBroker(backend="mosquitto") as broker:
        rx = Receiver(broker.port)
        base, liv, dr, lat, base_lat = [], [], [], [], []
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(reps):
                base.append(await asyncio.to_thread(bare_paho, broker.port, n))
                liv.append(await live(broker.url, Path(tmp) / f"live{r}.duckdb", n, 100))
                dr.append(await drain(broker.url, Path(tmp) / f"drain{r}.duckdb", n))
                lat.extend(await latency(broker.url, Path(tmp) / f"lat{r}.duckdb", rx, n_lat, args.rate))
                base_lat.extend(await asyncio.to_thread(bare_paho_latency, broker.port, rx, n_lat, args.rate))
        rx.stop()

    mb, ml, md = statistics.median(base), statistics.median(liv), statistics.median(dr)
    print(f"events per run: {n}, runs: {reps}, latency samples: {len(lat)} at {args.rate:g}/s")
    print("| measurement | median | vs bare paho |")
    print("|---|---|---|")
    print(f"| bare paho QoS 1 publish (baseline) | {mb:,.0f} msg/s | 1.00 |")
    print(
        f"| outbox live: record_events(100) + notify -> PUBACK-marked | {ml:,.0f} events/s | {ml / mb:.2f} |"
    )
    print(f"| outbox drain after outage (backlog of {n}) | {md:,.0f} events/s | {md / mb:.2f} |")
    print(
        f"| latency record -> subscriber, p50 / p99 | {pct(lat, 0.5) * 1e3:.2f} / {pct(lat, 0.99) * 1e3:.2f} ms"
        f" | bare paho {pct(base_lat, 0.5) * 1e3:.2f} / {pct(base_lat, 0.99) * 1e3:.2f} ms |"
    )


if __name__ == "__main__":
    asyncio.run(main())
