"""kill -9 at random moments: what a power cut or the OOM killer costs the agent's database and alerts.

docs/reliability.md quoted hand measurements (at most one flush interval of samples lost per kill,
the database opens every time, every alert delivered); this script reproduces them. A SIGKILL gives
the daemon no shutdown flush, no MQTT DISCONNECT and no checkpoint: what is committed to DuckDB (and
its WAL) is all that survives, and the durable outbox must still deliver every alert event.

Setup (all on loopback, free ports): the simulated plant in this process (``SimulatedPlant`` with
Modbus and OPC UA, speed 1, run in a thread with its own event loop), mosquitto
(``tests/mqtt/mqtt_support.Mosquitto`` when importable) and a paho subscriber on
``kilnwatch/+/+/alerts/#``. The plant's ``cement_mill1.feed_tph`` is forced to 150 and 50 t/h in
turn, ``--flip-secs`` each, and a site rule pack (``agent.rule_files``) adds::

    [[rule]]  id = "bench.kill9.mill_feed_low"  asset = "cement_mill1"
              when = "feed_tph < 100"  for = "0s"  severity = "info"

with ``current_window_secs = 5`` and ``evaluate_every_secs = 2``, so the rule fires and resolves
every few seconds and alert events are being recorded and published at the moments of the kills.

Then ``--kills`` times: start ``python -m agent run --config F`` (``flush_every_secs = 5``, the same
database file every time); wait uniform(3, 15) s (``random.Random(--seed)``); SIGKILL it and note
the wall time; open the database read-only with ``duckdb`` (must open) and count rows. *Samples
lost per kill* is the kill time minus the newest stored sample timestamp: the seconds of polled
samples that never reached the file (at most one flush interval plus one poll is the claim). A run
killed before its first flush loses everything it polled; those runs are marked.

Finally the flipping stops, the agent runs once more for ``--final-secs`` and gets SIGTERM (exit 0
within 30 s expected); every alert event in the ``outbox`` (alert topics) must then have reached the
subscriber: alerts lost = stored (alert_id, state) pairs never received.

    .venv/bin/python bench/kill9.py                         # 20 kills
    .venv/bin/python bench/kill9.py --quick                 # 3 kills (a smoke run)
    .venv/bin/python bench/kill9.py --kills 20 --out bench/results/kill9.md
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import duckdb
from soak import (
    ALERT_TOPIC,
    STOP_TIMEOUT_SECS,
    AlertSubscriber,
    machine_line,
    start_agent,
    start_broker,
    stop_process,
    summarise_log,
    tail,
    write_agent_config,
)

from simulator.runner import SimulatedPlant

TAG = "cement_mill1.feed_tph"
HIGH, LOW, THRESHOLD = 150.0, 50.0, 100.0
RULE_ID = "bench.kill9.mill_feed_low"
RULES = f"""# bench/kill9.py: a rule that fires and resolves every few seconds
[[rule]]
id = "{RULE_ID}"
asset = "cement_mill1"
when = "feed_tph < {THRESHOLD:g}"
for = "0s"
severity = "info"
message = "cement mill feed {{value:.0f}} t/h (bench)"
"""
FLUSH_SECS = 5
EVALUATE_SECS = 2
WINDOW_SECS = 5
MIN_WAIT, MAX_WAIT = 3.0, 15.0


# ------------------------------------------------------------------------------ the plant
class PlantThread:
    """``SimulatedPlant`` on its own event loop in a daemon thread, with ``TAG`` forced to HIGH/LOW.

    In-process rather than ``kilnwatch simulate`` so the bench can stop the flipping before the final
    run (a last alert event created just before the final SIGTERM would blur "lost" and "pending").
    """

    def __init__(self, seed: int, flip_secs: float) -> None:
        self.seed, self.flip_secs = seed, flip_secs
        self.flipping = True
        self._t0 = time.monotonic()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.modbus_port = self.opcua_port = 0
        self._thread = threading.Thread(target=self._run, name="plant", daemon=True)

    def value(self) -> float:
        if not self.flipping:
            return HIGH
        return LOW if int((time.monotonic() - self._t0) / self.flip_secs) % 2 else HIGH

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the main thread by start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with SimulatedPlant(modbus_port=0, opcua_port=0, seed=self.seed) as sim:
            orig = sim.plant.vector
            idx = sim.plant.tagmap.names.index(TAG)

            def forced() -> Any:
                v = orig()
                v[idx] = self.value()
                return v

            sim.plant.vector = forced  # type: ignore[method-assign]
            self.modbus_port, self.opcua_port = sim.modbus_port, sim.opcua_port
            self._ready.set()
            await self._stop.wait()

    def start(self) -> PlantThread:
        self._thread.start()
        if not self._ready.wait(60) or self._error is not None:
            raise RuntimeError(f"simulated plant did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(15)


# ------------------------------------------------------------------------------ one kill
@dataclass
class Kill:
    n: int
    wait_secs: float
    opened: bool
    open_ms: float
    error: str
    samples: int
    new_samples: int
    gap_secs: float | None  # kill time - newest stored sample ts (any run's)
    first_poll_secs: float | None  # this run's first stored Modbus sample ts - process start
    outbox_alerts: int
    outbox_delivered: int
    received: int  # distinct (alert_id, state) the subscriber had when the file was checked
    exited_early: int | None  # exit code when the agent died before the kill

    @property
    def flushed(self) -> bool:
        return self.new_samples > 0


def db_state(
    db: Path, started: float, modbus_tags: list[str]
) -> tuple[int, datetime | None, datetime | None, int, int]:
    """(sample rows, newest ts, first Modbus ts since ``started``, outbox alert rows, delivered), read-only.

    The first poll is taken from Modbus tags only: their ts is the agent's poll time, while OPC UA
    samples keep the server's source timestamp (an initial value can predate the subscription).
    """
    con = duckdb.connect(str(db), read_only=True)
    try:
        n, newest = con.execute("SELECT count(*), max(ts) FROM samples").fetchone() or (0, None)
        row = con.execute(
            "SELECT min(ts) FROM samples WHERE ts >= to_timestamp(?) AND list_contains(?, tag)",
            [started, modbus_tags],
        ).fetchone()
        ob = con.execute(
            "SELECT count(*), count(delivered_at) FROM outbox WHERE topic LIKE '%/alerts/%'"
        ).fetchone() or (0, 0)
    finally:
        con.close()
    return int(n), newest, row[0] if row else None, int(ob[0]), int(ob[1])


def modbus_tag_names(cfg: Path) -> list[str]:
    """Tag names of the config's Modbus sources (the samples the agent stamps itself)."""
    from agent.config import parse_config

    parsed = parse_config(tomllib.loads(cfg.read_text()))
    return [t.name for src in parsed.sources if src.type == "modbus" for t in src.tags]


def run(args: argparse.Namespace) -> tuple[list[Kill], dict[str, Any]]:
    """The kills and the final clean run; returns per-kill rows and the final figures."""
    rng = random.Random(args.seed)
    kills: list[Kill] = []
    with tempfile.TemporaryDirectory(prefix="kilnwatch-kill9-") as d:
        tmp = Path(d)
        plant: PlantThread | None = None
        broker: Any = None
        sub: AlertSubscriber | None = None
        agent: subprocess.Popen[bytes] | None = None
        try:
            plant = PlantThread(args.seed, args.flip_secs).start()
            broker = start_broker(tmp / "mosquitto")
            sub = AlertSubscriber(broker.port, client_id="bench-kill9-sub")
            pack = tmp / "kill9-rules.toml"
            pack.write_text(RULES)
            db = tmp / "kill9.duckdb"
            cfg = write_agent_config(
                tmp / "kilnwatch.toml",
                modbus_port=plant.modbus_port,
                opcua_port=plant.opcua_port,
                db=db,
                mqtt_port=broker.port,
                agent_keys={
                    "flush_every_secs": FLUSH_SECS,
                    "evaluate_every_secs": EVALUATE_SECS,
                    "current_window_secs": WINDOW_SECS,
                    "metrics_port": 0,
                    "rule_files": [str(pack)],
                },
            )
            log = tmp / "agent.log"
            modbus_tags = modbus_tag_names(cfg)
            prev_samples = 0
            for i in range(1, args.kills + 1):
                wait = rng.uniform(MIN_WAIT, MAX_WAIT)
                started = time.time()
                agent = start_agent(cfg, log)
                time.sleep(max(0.0, started + wait - time.time()))
                early = agent.poll()
                agent.kill()  # SIGKILL
                killed_at = time.time()
                agent.wait()
                agent = None
                t = time.monotonic()
                try:
                    n, newest, first, ob, obd = db_state(db, started, modbus_tags)
                    opened, err = True, ""
                except duckdb.Error as exc:
                    n, newest, first, ob, obd = prev_samples, None, None, 0, 0
                    opened, err = False, str(exc).splitlines()[0][:120]
                open_ms = (time.monotonic() - t) * 1000
                k = Kill(
                    n=i,
                    wait_secs=wait,
                    opened=opened,
                    open_ms=open_ms,
                    error=err,
                    samples=n,
                    new_samples=n - prev_samples,
                    gap_secs=killed_at - newest.timestamp() if newest else None,
                    first_poll_secs=first.timestamp() - started if first else None,
                    outbox_alerts=ob,
                    outbox_delivered=obd,
                    received=len(sub.keys()),
                    exited_early=early,
                )
                kills.append(k)
                prev_samples = n
                lost = f"{k.gap_secs:5.1f} s" if k.gap_secs is not None else "  n/a"
                print(
                    f"kill {i:2d}/{args.kills}: after {wait:5.1f} s; db {'opened' if opened else 'FAILED'} "
                    f"({open_ms:.0f} ms); samples {n:7,} (+{k.new_samples:,}); newest sample {lost} before "
                    f"the kill; alert events {ob} ({obd} delivered); received {len(sub.keys())}"
                    + (f"; agent had exited ({early})" if early is not None else ""),
                    flush=True,
                )
            # the final clean run: no more flips, the outbox drains, SIGTERM
            plant.flipping = False
            agent = start_agent(cfg, log)
            time.sleep(args.final_secs)
            agent.send_signal(signal.SIGTERM)
            t_term = time.monotonic()
            hung = False
            try:
                agent.wait(STOP_TIMEOUT_SECS)
            except subprocess.TimeoutExpired:
                hung = True
                agent.kill()
                agent.wait()
            stop_secs = time.monotonic() - t_term
            code = agent.returncode
            agent = None
            time.sleep(3.0)  # messages in flight to the subscriber
            con = duckdb.connect(str(db), read_only=True)
            try:
                stored = {
                    (str(a), str(s))
                    for a, s in con.execute(
                        "SELECT json_extract_string(payload, '$.alert_id'), json_extract_string(payload, "
                        "'$.state') FROM outbox WHERE topic LIKE '%/alerts/%'"
                    ).fetchall()
                }
                ob_total, ob_delivered = con.execute(
                    "SELECT count(*), count(delivered_at) FROM outbox WHERE topic LIKE '%/alerts/%'"
                ).fetchone() or (0, 0)
                episodes, resolved = con.execute(
                    "SELECT count(*), count(*) FILTER (WHERE state = 'resolved') FROM alerts"
                ).fetchone() or (0, 0)
                samples = (con.execute("SELECT count(*) FROM samples").fetchone() or (0,))[0]
            finally:
                con.close()
            received = sub.keys()
            log_counts, notable = summarise_log(log, tmp)
            if hung or code != 0:
                print(f"agent log (tail):\n{tail(log, 40)}", file=sys.stderr)
            final = {
                "exit_code": code,
                "hung": hung,
                "stop_secs": stop_secs,
                "stored": stored,
                "received": received,
                "messages": sub.messages,
                "outbox_total": ob_total,
                "outbox_delivered": ob_delivered,
                "episodes": episodes,
                "resolved": resolved,
                "samples": samples,
                "lost": sorted(stored - received),
                "damaged": sorted(p.name for p in tmp.glob("*.damaged-*")),
                "log_counts": log_counts,
                "notable": notable,
            }
            return kills, final
        finally:
            if sub is not None:
                sub.stop()
            stop_process(agent, 5)
            if broker is not None:
                broker.stop()
            if plant is not None:
                plant.stop()


def _stats(xs: list[float]) -> str:
    if not xs:
        return "n/a"
    return f"min {min(xs):.1f} s, median {statistics.median(xs):.1f} s, max {max(xs):.1f} s"


def markdown(kills: list[Kill], final: dict[str, Any], args: argparse.Namespace, elapsed: float) -> str:
    cmd = "python bench/kill9.py" + (" --quick" if args.quick else f" --kills {args.kills}")
    if args.seed != 1:
        cmd += f" --seed {args.seed}"
    if args.out:
        cmd += f" --out {args.out}"
    lines = [
        "# kill -9 at random moments",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {machine_line()}",
        f"- command: `{cmd}` (seed {args.seed}; total wall time {elapsed / 60:.1f} min)",
        f"- daemon: `python -m agent run --config F`, `flush_every_secs = {FLUSH_SECS}`, "
        f"`evaluate_every_secs = {EVALUATE_SECS}`, `current_window_secs = {WINDOW_SECS}`, Modbus poll 1 s; "
        "one database file for every run; simulated plant (Modbus + OPC UA, speed 1) in the bench process; "
        f"mosquitto; paho subscriber on `{ALERT_TOPIC}`",
        f'- alerts: site rule `{RULE_ID}` (`feed_tph < {THRESHOLD:g}`, `for = "0s"`) on cement_mill1, whose '
        f"feed is forced to {HIGH:g}/{LOW:g} t/h alternately every {args.flip_secs:g} s",
        f"- each run: start, wait uniform({MIN_WAIT:g}, {MAX_WAIT:g}) s, SIGKILL; then the file is opened "
        "read-only with duckdb. *first poll* = this run's first stored Modbus sample ts - process start "
        "(imports, connect, first poll; Modbus ts are the agent's poll times). *lost* = kill time - newest "
        "stored sample ts for a run that flushed; for a run killed before its first flush everything it "
        "polled is lost: run s - median first poll (marked ≈)",
        "",
        "| kill | run s | DB opened | open ms | sample rows | new rows | first poll s | lost s "
        "| alert events stored | marked delivered | received |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    starts = [k.first_poll_secs for k in kills if k.first_poll_secs is not None]
    startup = statistics.median(starts) if starts else 1.0
    lost: list[float] = []
    for k in kills:
        if k.flushed and k.gap_secs is not None:
            lost.append(k.gap_secs)
            lost_txt = f"{k.gap_secs:.1f}"
        else:
            lost.append(max(0.0, k.wait_secs - startup))
            lost_txt = f"≈ {lost[-1]:.1f} (no flush)"
        first = f"{k.first_poll_secs:.1f}" if k.first_poll_secs is not None else "-"
        opened_txt = "yes" if k.opened else f"NO: {k.error}"
        if k.exited_early is not None:
            opened_txt += f" (agent had exited, code {k.exited_early})"
        lines.append(
            f"| {k.n} | {k.wait_secs:.1f} | {opened_txt} | {k.open_ms:.0f} | {k.samples:,} | {k.new_samples:,} | "
            f"{first} | {lost_txt} | {k.outbox_alerts} | {k.outbox_delivered} | {k.received} |"
        )
    flushed = [k.gap_secs for k in kills if k.flushed and k.gap_secs is not None]
    no_flush = [k for k in kills if not k.flushed]
    first_flush = [k.wait_secs for k in kills if k.flushed]
    pending = [k for k in kills if k.outbox_delivered < k.outbox_alerts]
    opened = sum(k.opened for k in kills)
    monotone = all(b.samples >= a.samples for a, b in itertools.pairwise(kills))
    f = final
    stop = f"{f['stop_secs']:.1f} s" if not f["hung"] else f"no exit within {STOP_TIMEOUT_SECS:g} s (killed)"
    ok = (
        opened == len(kills)
        and not f["lost"]
        and not f["damaged"]
        and not f["hung"]
        and f["exit_code"] == 0
        and monotone
    )
    lines += [
        "",
        "## Summary",
        "",
        f"- database opened after **{opened}/{len(kills)}** kills; stored sample rows never decreased: "
        f"{'yes' if monotone else 'NO'}; files moved aside as damaged by the daemon: {len(f['damaged'])}",
        f"- samples lost per kill: **{_stats(lost)}** over all {len(kills)} kills; over the {len(flushed)} "
        f"runs that had flushed (kill - newest stored sample): {_stats(flushed)} (bound: flush interval "
        f"{FLUSH_SECS} s + 1 s poll)",
        f"- runs killed before their first flush: {len(no_flush)}"
        + (
            f" (kills {', '.join(str(k.n) for k in no_flush)}; {max(k.wait_secs for k in no_flush):.1f} s the "
            f"longest; the shortest run that flushed: {min(first_flush) if first_flush else float('nan'):.1f} s): "
            "the first flush comes one flush interval after the first poll, so those runs lose all they polled"
            if no_flush
            else ""
        ),
        f"- first poll stored after process start: {_stats(starts)}",
        f"- final clean run ({args.final_secs:g} s, no flips): SIGTERM -> exit code {f['exit_code']} in {stop}; "
        f"{f['samples']:,} sample rows in the file",
        f"- alert events stored: {f['outbox_total']} outbox rows on alert topics ({len(f['stored'])} distinct "
        f"(alert_id, state); alerts table {f['episodes']} episodes, {f['resolved']} resolved), "
        f"{f['outbox_delivered']} marked delivered; received {len(f['received'])} distinct in "
        f"{f['messages']} message(s) (duplicates are at-least-once redeliveries)",
        f"- kills that left alert events stored but not marked delivered: {len(pending)}"
        + (
            f" (kills {', '.join(f'{k.n} ({k.outbox_alerts - k.outbox_delivered})' for k in pending)}): a later "
            "start sends them again; a message already received before the kill arrives twice"
            if pending
            else " (every event was acknowledged before its kill)"
        ),
        f"- **alerts lost: {len(f['lost'])}**" + (f" {f['lost'][:5]}" if f["lost"] else ""),
        f"- agent log over all runs: {f['log_counts']['alert lines']} alert firing/resolved lines; other: "
        f"{f['log_counts']['WARNING']} WARNING, {f['log_counts']['ERROR']} ERROR, "
        f"{f['log_counts']['Traceback']} traceback(s)" + (":" if f["notable"] else ""),
        *(f"  - {n} x `{msg}`" for msg, n in f["notable"]),
        "",
        f"**{len(kills)} kills: DB opened {opened}/{len(kills)}, samples lost per kill median "
        f"{statistics.median(lost):.1f} s, max {max(lost):.1f} s (flush interval {FLUSH_SECS} s), alerts lost "
        f"{len(f['lost'])} of {len(f['stored'])}, clean final exit: {'yes' if f['exit_code'] == 0 else 'no'} "
        f"-> {'PASS' if ok else 'FAIL'}**",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="3 kills (a smoke run)")
    p.add_argument("--kills", type=int, default=None, help="number of SIGKILLs (default 20)")
    p.add_argument("--seed", type=int, default=1, help="seed of the kill delays and the plant")
    p.add_argument(
        "--flip-secs", type=float, default=8.0, help="seconds between feed flips (rule fires/resolves)"
    )
    p.add_argument("--final-secs", type=float, default=15.0, help="length of the final clean run")
    p.add_argument("--out", help="write the Markdown summary here")
    args = p.parse_args(argv)
    args.kills = args.kills if args.kills is not None else (3 if args.quick else 20)
    if args.kills < 1:
        p.error("--kills must be at least 1")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    t0 = time.monotonic()
    kills, final = run(args)
    text = markdown(kills, final, args, time.monotonic() - t0)
    print()
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0 if text.rstrip().endswith("PASS**") else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
