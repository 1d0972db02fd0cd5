"""Alert latency from a PLC step to an MQTT subscriber, for two ``agent.current_window_secs``.

    .venv/bin/python bench/alert_latency.py [--steps N] [--spacing S] [--evaluate-every E]

One simulated plant (``SimulatedPlant``, speed 1, Modbus on a free loopback port) and one mosquitto
(free port). Two agents (``agent.pipeline.Agent``, configs from ``SimulatedPlant.config_toml()``)
read the same PLC at the same time, one with ``current_window_secs = 10`` (site ``w10``) and one
with 60 (site ``w60``, the default), both with ``evaluate_every_secs = E`` (default 2) and the
generated 1 s Modbus poll, and a rule pack with one rule::

    when = "feed_tph < 100"   for = "0s"   (cement_mill1)

The PLC serves ``cement_mill1.feed_tph`` forced to 150 t/h; every ``--spacing`` seconds it steps
to 50 (the rule fires) or back to 150 (it resolves; ``clear`` defaults to ``when`` no longer
true). The threshold is halfway, so by docs/rules.md "Alert latency" each step should reach the
subscriber after about W/2 + [0, E) + [0, poll interval): 5-8 s for W = 10, 30-33 s for W = 60.
The step's wall time is taken when the simulator pushes the stepped value into its Modbus
registers; the arrival's when the subscriber's paho callback receives the alert message. The
agents only read: the forced value is applied inside the simulator (the PLC), not written by
them. Steps are 45 s apart by default: more than W/2 + E + poll, which is all a halfway threshold
needs (samples of the previous step still in the 60 s window are balanced), and the first step
waits as long for the windows to fill.
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
import tomllib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from agent.broker import EmbeddedBroker
from agent.config import parse_config
from agent.pipeline import Agent
from simulator.runner import SimulatedPlant

TAG = "cement_mill1.feed_tph"
HIGH, LOW, THRESHOLD = 150.0, 50.0, 100.0
RULE_ID = "bench.feed_low"
RULES = f"""
[[rule]]
id = "{RULE_ID}"
asset = "cement_mill1"
when = "feed_tph < {THRESHOLD:g}"
for = "0s"
severity = "info"
message = "feed {{value:.0f}} t/h"
"""
WINDOWS = (10, 60)


class ForcedFeed:
    """Wraps the plant model's served vector: ``TAG`` is forced, and the push of a new value is stamped."""

    def __init__(self, sim: SimulatedPlant) -> None:
        self._orig = sim.plant.vector
        self._idx = sim.plant.tagmap.names.index(TAG)
        self.value = HIGH
        self._served: float | None = None
        #: wall time (time.time()) of each push that served a new value
        self.stepped_at: list[float] = []
        sim.plant.vector = self  # type: ignore[method-assign]

    def __call__(self) -> Any:
        v = self._orig()
        v[self._idx] = self.value
        if self._served is not None and self._served != self.value:
            self.stepped_at.append(time.time())
        self._served = self.value
        return v


class Subscriber:
    """A paho client on ``kilnwatch/#`` stamping each alert of the bench rule: (site, state, wall time)."""

    def __init__(self, port: int) -> None:
        self.arrivals: list[tuple[str, str, float]] = []
        self._ready = threading.Event()
        self.c = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="bench-latency-sub", protocol=MQTTProtocolVersion.MQTTv5
        )
        self.c.on_connect = lambda c, *_: c.subscribe(f"kilnwatch/+/cement_mill1/alerts/{RULE_ID}", qos=1)
        self.c.on_subscribe = lambda *_: self._ready.set()
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("subscriber did not connect")

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        t = time.time()
        if msg.retain:
            return
        site = msg.topic.split("/")[1]
        self.arrivals.append((site, json.loads(msg.payload)["state"], t))

    def stop(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def agent_config(sim: SimulatedPlant, url: str, tmp: Path, window: int, evaluate_every: float) -> Any:
    doc = tomllib.loads(sim.config_toml(site=f"w{window}", db_path=str(tmp / f"w{window}.duckdb")))
    rules = tmp / "bench_rules.toml"
    rules.write_text(RULES)
    doc["agent"].update(
        evaluate_every_secs=evaluate_every, current_window_secs=window, rule_files=[str(rules)]
    )
    doc["mqtt"] = {"url": url, "client_id": f"bench-agent-w{window}"}
    return parse_config(doc)


async def run(steps: int, spacing: float, evaluate_every: float) -> dict[int, list[tuple[str, float]]]:
    """Per window: (state, latency in s) of each step, in step order."""
    async with EmbeddedBroker(backend="mosquitto") as broker:
        sub = Subscriber(broker.port)
        async with SimulatedPlant(speed=1, opcua=False) as sim:
            forced = ForcedFeed(sim)
            with tempfile.TemporaryDirectory() as d:
                stop = asyncio.Event()
                agents = [Agent(agent_config(sim, broker.url, Path(d), w, evaluate_every)) for w in WINDOWS]
                tasks = [asyncio.create_task(a.run(stop)) for a in agents]
                try:
                    for k in range(steps):
                        await asyncio.sleep(spacing)
                        forced.value = LOW if k % 2 == 0 else HIGH
                        print(f"step {k + 1}/{steps}: feed -> {forced.value:g} t/h", file=sys.stderr)
                    await asyncio.sleep(max(WINDOWS) / 2 + 2 * evaluate_every + 8)  # the last step's alerts
                finally:
                    stop.set()
                    await asyncio.gather(*tasks)
        sub.stop()
    out: dict[int, list[tuple[str, float]]] = {}
    for w in WINDOWS:
        got = [(state, t) for site, state, t in sub.arrivals if site == f"w{w}"]
        want = ["firing" if k % 2 == 0 else "resolved" for k in range(steps)]
        if [s for s, _ in got] != want or len(forced.stepped_at) != steps:
            raise RuntimeError(f"w{w}: expected {want} after {len(forced.stepped_at)} steps, got {got}")
        out[w] = [(s, t - t0) for (s, t), t0 in zip(got, forced.stepped_at, strict=True)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3, help="feed steps (alternately down and up)")
    ap.add_argument("--spacing", type=float, default=45.0, help="seconds before each step")
    ap.add_argument("--evaluate-every", type=float, default=2.0, help="agent.evaluate_every_secs")
    args = ap.parse_args()
    t0 = time.perf_counter()
    res = asyncio.run(run(args.steps, args.spacing, args.evaluate_every))
    wall = time.perf_counter() - t0
    e = args.evaluate_every
    print(
        f"steps: {args.steps} ({args.spacing:g} s apart), evaluate_every_secs = {e:g}, poll 1 s, wall {wall:.0f} s"
    )
    print("| current_window_secs | per step (state: s) | median | expected W/2 + [0, E) + [0, poll) |")
    print("|---|---|---|---|")
    for w, xs in res.items():
        each = ", ".join(f"{s}: {x:.1f}" for s, x in xs)
        med = float(np.median([x for _, x in xs]))
        print(f"| {w} | {each} | **{med:.1f} s** | {w / 2:g}-{w / 2 + e + 1:g} s |")
    print(
        f"| ratio 60 / 10 | | {statistics.median(x for _, x in res[60]) / statistics.median(x for _, x in res[10]):.1f} | |"
    )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
