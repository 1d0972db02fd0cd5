"""Soak: the agent daemon for hours against the simulated plant; memory, descriptors, threads, alerts.

docs/reliability.md promised a scripted soak: a long run at ``--speed 30`` with RSS, file
descriptors and threads sampled every minute. A leak of a few MB per hour, a socket or DuckDB
cursor left open per reconnect or per flush, or a thread started per evaluation does not show in a
test of seconds; it shows as a slope over hours. Everything runs as separate processes on loopback,
the way a plant runs it (ports are picked free):

* the simulator: ``python -m agent simulate --modbus-port P --opcua-port Q --speed S --seed N
  --scenario mill_running_empty@..+..,...``: cement mill 1 is starved for ``--fault-secs`` of wall
  time every ``--fault-every-secs`` (the schedule is converted to simulated time), so alerts fire and
  resolve all run long instead of once;
* mosquitto (``tests/mqtt/mqtt_support.Mosquitto`` when importable, else a minimal config of its own);
* the daemon: ``python -m agent run --config F``; the config is what ``kilnwatch simulate
  --print-config`` prints for those ports (``simulator.config_gen.agent_config_toml``) with a temp
  ``db_path``, ``flush_every_secs = 5``, ``evaluate_every_secs = 10``, ``[mqtt] url`` of the broker
  and, as ``kilnwatch demo --speed`` does, the built-in rules with ``for``/``window`` divided by the
  speed (``agent.commands.write_sped_up_pack``): rules run on wall time, the plant on simulated time;
* a paho subscriber (MQTT 3.1.1, QoS 1) on ``kilnwatch/+/+/alerts/#`` collecting (alert_id, state).

Every ``--sample-secs`` the agent process's RSS (``/proc/PID/status`` VmRSS), open descriptors
(``/proc/PID/fd``), threads (``Threads``) and CPU seconds (utime + stime of ``/proc/PID/stat``) are
recorded. At the end the agent gets SIGTERM and must exit 0 within 30 s; then its database is opened
read-only and the alert events it stored (``outbox`` rows on alert topics, cross-checked with the
``alerts`` table: one row per episode, plus one event per resolved episode) are compared with what
the subscriber received. PASS needs: RSS slope after the warm-up (the first ``--warmup-pct`` % of
the run) below 5 MB/h (least squares), descriptors and threads flat after the warm-up (max - min <=
2), no alert event stored but not received, and a clean exit.

    .venv/bin/python bench/soak.py                       # 120 min at --speed 30 (the documented soak)
    .venv/bin/python bench/soak.py --quick               # 3 min, a sample every 15 s (a smoke run)
    .venv/bin/python bench/soak.py --minutes 45 --out bench/results/soak.md
    .venv/bin/python bench/soak.py --minutes 20 --extra-tags 1000   # 15x the data: does RSS follow it?

The table also has the size of the database file + WAL: DuckDB keeps recently written blocks in its
buffer pool, so an RSS slope that follows the file's growth is DuckDB's cache, not necessarily a leak;
``--extra-tags`` (filler Modbus tags of the simulator) multiplies the data rate to tell them apart.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from agent.broker import find_mosquitto
from simulator.config_gen import agent_config_toml

ROOT = Path(__file__).resolve().parents[1]
SLOPE_LIMIT_MB_PER_H = 5.0
FLAT_LIMIT = 2
STOP_TIMEOUT_SECS = 30.0
ALERT_TOPIC = "kilnwatch/+/+/alerts/#"
FAULT = "mill_running_empty"


# ------------------------------------------------------------------------------ small helpers
def free_port() -> int:
    """A free loopback TCP port (the OS picks it; a race with other jobs is possible but rare)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 60.0) -> None:
    """Block until something accepts on ``port``; fail early when ``proc`` died (its log says why)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} not listening on port {port} after {timeout:g} s")


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> int | None:
    """SIGTERM, then SIGKILL after ``timeout``: used in ``finally`` so nothing outlives the bench."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def machine_line() -> str:
    """Machine description for the results file (no host names or paths)."""
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), {mem_gb:.0f} GB RAM, "
        f"Linux {platform.release().split('-')[0]}, Python {platform.python_version()}, shared with other jobs"
    )


def tail(path: Path, lines: int = 20) -> str:
    """Last lines of a log file (kept in the run's temp dir), for error messages; that dir printed as <tmp>."""
    if not path.exists():
        return ""
    text = path.read_text(errors="replace").replace(str(path.parent), "<tmp>")
    return "\n".join(text.splitlines()[-lines:])


# ------------------------------------------------------------------------------ broker
class MiniMosquitto:
    """Fallback when tests/mqtt/mqtt_support cannot be imported: one anonymous loopback listener."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir, self.port = workdir, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = find_mosquitto()
        if exe is None:
            raise RuntimeError("mosquitto is not installed (Debian: apt-get install mosquitto)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "log_dest stderr\nlog_type error\nmax_queued_messages 100000\n"
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        with (self.workdir / "mosquitto.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [exe, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        wait_listening(self.port, self.proc, "mosquitto", 10)

    def stop(self) -> None:
        stop_process(self.proc)


def start_broker(workdir: Path) -> Any:
    """A started mosquitto on a free port: the test suite's helper if importable (same config)."""
    if str(ROOT / "tests" / "mqtt") not in sys.path:
        sys.path.append(str(ROOT / "tests" / "mqtt"))
    try:
        from mqtt_support import Mosquitto
    except ImportError:
        broker: Any = MiniMosquitto(workdir, free_port())
    else:
        if find_mosquitto() is None:
            raise RuntimeError("mosquitto is not installed (Debian: apt-get install mosquitto)")
        broker = Mosquitto(workdir=workdir, port=free_port())
    broker.start()
    return broker


# ------------------------------------------------------------------------------ subscriber
class AlertSubscriber:
    """Paho 2.x subscriber on the alert topics, its own network thread; at-least-once duplicates
    are expected (a redelivery after a lost PUBACK), so arrivals are kept per (alert_id, state)."""

    def __init__(self, port: int, client_id: str = "bench-soak-sub") -> None:
        self.arrivals: Counter[tuple[str, str]] = Counter()
        self.messages = 0
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        c = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv311
        )
        c.reconnect_delay_set(1, 2)
        c.on_connect = lambda cl, _u, _f, rc, _p: None if rc.is_failure else cl.subscribe(ALERT_TOPIC, qos=1)
        c.on_subscribe = lambda *_a: self._subscribed.set()
        c.on_message = self._on_message
        self.client = c
        c.connect("127.0.0.1", port, keepalive=30)
        c.loop_start()
        if not self._subscribed.wait(10):
            self.stop()
            raise RuntimeError("alert subscriber got no SUBACK")

    def _on_message(self, _c: paho.Client, _u: Any, m: paho.MQTTMessage) -> None:
        try:
            p = json.loads(m.payload)
            key = (str(p["alert_id"]), str(p["state"]))
        except (ValueError, KeyError, TypeError):
            key = ("?", m.topic)
        with self._lock:
            self.messages += 1
            self.arrivals[key] += 1

    def keys(self) -> set[tuple[str, str]]:
        with self._lock:
            return set(self.arrivals)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ------------------------------------------------------------------------------ simulator and agent
def fault_schedule(
    speed: float, total_secs: float, every_secs: float, fault_secs: float, first_secs: float
) -> str:
    """``--scenario`` text: FAULT for ``fault_secs`` every ``every_secs`` of wall time, in simulated time.

    Scenario times are simulated seconds (simulator/scenarios.py), the bench thinks in wall seconds.
    """
    items = []
    t = first_secs
    while t < total_secs:
        items.append(f"{FAULT}@{round(t * speed)}s+{max(1, round(fault_secs * speed))}s")
        t += every_secs
    return ",".join(items) or "normal"


def start_simulator(
    workdir: Path, speed: float, seed: int, scenario: str, extra_tags: int = 0
) -> tuple[subprocess.Popen[bytes], int, int]:
    """``python -m agent simulate`` as its own process; returns it with its Modbus and OPC UA ports."""
    modbus_port, opcua_port = free_port(), free_port()
    cmd = [
        sys.executable, "-m", "agent", "simulate", "--modbus-port", str(modbus_port),
        "--opcua-port", str(opcua_port), "--speed", f"{speed:g}", "--seed", str(seed), "--scenario", scenario,
        "--extra-tags", str(extra_tags),
    ]  # fmt: skip
    with (workdir / "simulator.log").open("ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT)
    try:
        wait_listening(modbus_port, proc, "simulator (Modbus)")
        wait_listening(opcua_port, proc, "simulator (OPC UA)")
    except RuntimeError as exc:
        stop_process(proc)
        raise RuntimeError(f"{exc}\n{tail(workdir / 'simulator.log')}") from None
    return proc, modbus_port, opcua_port


def _toml(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


def write_agent_config(
    path: Path,
    *,
    modbus_port: int,
    opcua_port: int,
    db: Path,
    mqtt_port: int,
    agent_keys: dict[str, Any],
    extra_tags: int = 0,
) -> Path:
    """The simulator's ``--print-config`` text with ``[agent]`` keys replaced and an ``[mqtt]`` section.

    Keys are replaced in the text rather than re-serialised, so the file stays the documented one.
    """
    text = agent_config_toml(
        modbus_port=modbus_port, opcua_port=opcua_port, db_path=str(db), extra_tags=extra_tags
    )
    lines = text.splitlines()
    start = lines.index("[agent]")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("["))
    section = [ln for ln in lines[start + 1 : end] if ln.split("=")[0].strip() not in agent_keys]
    section = [f"{k} = {_toml(v)}" for k, v in agent_keys.items()] + section
    lines[start + 1 : end] = section
    lines.append(f'\n[mqtt]\nurl = "mqtt://127.0.0.1:{mqtt_port}"\nclient_id = "bench-agent"\n')
    out = "\n".join(lines) + "\n"
    from agent.config import parse_config

    parse_config(tomllib.loads(out))  # fail here, with the key path, rather than in the daemon
    path.write_text(out)
    return path


def start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """``python -m agent run --config F`` as the unit file starts it; its log goes to ``log``."""
    with log.open("ab") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "--config", str(config)],
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


# ------------------------------------------------------------------------------ /proc
@dataclass(frozen=True)
class ProcSample:
    t_secs: float  # since the agent started
    rss_mb: float
    fds: int
    threads: int
    cpu_s: float
    db_mb: float = 0.0  # database file + WAL: DuckDB's caches grow with it


def files_mb(db: Path) -> float:
    """Size of a DuckDB file and its WAL in MB (0 for what does not exist yet)."""
    total = 0
    for p in (db, db.with_name(db.name + ".wal")):
        with contextlib.suppress(OSError):
            total += p.stat().st_size
    return total / 2**20


def proc_sample(pid: int, t_secs: float) -> ProcSample:
    """RSS, descriptors, threads and CPU of ``pid`` from /proc (the process must be alive)."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kb = int(fields["VmRSS"].split()[0])
    threads = int(fields["Threads"])
    stat = Path(f"/proc/{pid}/stat").read_text()
    rest = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(rest[11]) + int(rest[12])) / ticks  # fields 14 and 15: utime, stime
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return ProcSample(t_secs, rss_kb / 1024, fds, threads, cpu)


# ------------------------------------------------------------------------------ database
@dataclass
class DbCounts:
    samples: int = 0
    kpi: int = 0
    episodes: int = 0
    resolved: int = 0
    outbox_alerts: int = 0
    outbox_delivered: int = 0
    stored_keys: set[tuple[str, str]] = field(default_factory=set)
    newest_sample: datetime | None = None
    size_mb: float = 0.0


def read_db(db: Path) -> DbCounts:
    """Counts from the agent's database, opened read-only (raises if it does not open)."""
    c = DbCounts(size_mb=files_mb(db))
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "samples" in tables:
            n, newest = con.execute("SELECT count(*), max(ts) FROM samples").fetchone() or (0, None)
            c.samples, c.newest_sample = int(n), newest
        if "kpi" in tables:
            c.kpi = int((con.execute("SELECT count(*) FROM kpi").fetchone() or (0,))[0])
        if "alerts" in tables:
            row = con.execute(
                "SELECT count(*), count(*) FILTER (WHERE state = 'resolved') FROM alerts"
            ).fetchone()
            c.episodes, c.resolved = (int(row[0]), int(row[1])) if row else (0, 0)
        if "outbox" in tables:
            for payload, delivered in con.execute(
                "SELECT payload, delivered_at IS NOT NULL FROM outbox WHERE topic LIKE '%/alerts/%' ORDER BY seq"
            ).fetchall():
                p = json.loads(payload)
                c.stored_keys.add((str(p["alert_id"]), str(p["state"])))
                c.outbox_alerts += 1
                c.outbox_delivered += bool(delivered)
    finally:
        con.close()
    return c


# ------------------------------------------------------------------------------ the soak
@dataclass
class SoakResult:
    samples: list[ProcSample]
    exit_code: int | None
    stop_secs: float | None
    hung: bool
    db: DbCounts
    received: set[tuple[str, str]]
    messages: int
    duration_secs: float
    scenario: str
    log_counts: dict[str, int]
    notable: list[tuple[str, int]]


def summarise_log(log: Path, tmp: Path) -> tuple[dict[str, int], list[tuple[str, int]]]:
    """Counts of the daemon's log lines and its distinct complaints (timestamps cut, temp paths
    replaced), so a result file says what the daemon complained about without a log to keep.

    The daemon logs each alert transition at WARNING (``alert firing ...``/``alert resolved ...``);
    those are the scenario working, counted apart from other warnings.
    """
    text = log.read_text(errors="replace") if log.exists() else ""
    counts = {"alert lines": 0, "WARNING": 0, "ERROR": 0, "CRITICAL": 0}
    counts["Traceback"] = text.count("Traceback (most recent")
    notable: Counter[str] = Counter()
    for line in text.splitlines():
        m = re.match(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) (.*)$", line)
        if not m:
            continue
        if re.match(r"agent\.pipeline: alert (firing|resolved) ", m.group(2)):
            counts["alert lines"] += 1
            continue
        counts[m.group(1)] += 1
        msg = m.group(2).replace(str(tmp), "<tmp>")
        notable[f"{m.group(1)} {msg[:200]}"] += 1
    return counts, notable.most_common(8)


def run_soak(args: argparse.Namespace) -> SoakResult:
    """Start everything, sample /proc until the end, stop the agent with SIGTERM, read the database."""
    total = args.minutes * 60
    scenario = fault_schedule(
        args.speed, total, args.fault_every_secs, args.fault_secs, args.first_fault_secs
    )
    with tempfile.TemporaryDirectory(prefix="kilnwatch-soak-") as d:
        tmp = Path(d)
        sim = agent = None
        broker: Any = None
        sub: AlertSubscriber | None = None
        try:
            sim, modbus_port, opcua_port = start_simulator(
                tmp, args.speed, args.seed, scenario, args.extra_tags
            )
            broker = start_broker(tmp / "mosquitto")
            sub = AlertSubscriber(broker.port)
            from agent.commands import write_sped_up_pack

            keys: dict[str, Any] = {"flush_every_secs": 5, "evaluate_every_secs": 10, "metrics_port": 0}
            if args.speed > 1:
                keys["rule_files"] = [str(write_sped_up_pack(tmp, args.speed))]
            db = tmp / "soak.duckdb"
            cfg = write_agent_config(
                tmp / "kilnwatch.toml", modbus_port=modbus_port, opcua_port=opcua_port, db=db,
                mqtt_port=broker.port, agent_keys=keys, extra_tags=args.extra_tags,
            )  # fmt: skip
            log = tmp / "agent.log"
            agent = start_agent(cfg, log)
            t0 = time.monotonic()
            print(f"soak: {args.minutes:g} min at speed {args.speed:g}; agent pid {agent.pid}", flush=True)
            samples: list[ProcSample] = []
            k = 1  # the first sample one period in: at 0 s the process is still importing
            while True:
                time.sleep(max(0.0, t0 + k * args.sample_secs - time.monotonic()))
                now = time.monotonic() - t0
                if agent.poll() is not None:
                    raise RuntimeError(f"agent exited with {agent.returncode} at {now:.0f} s:\n{tail(log)}")
                s = dataclasses.replace(proc_sample(agent.pid, now), db_mb=files_mb(db))
                samples.append(s)
                print(
                    f"  {now / 60:6.1f} min  RSS {s.rss_mb:7.1f} MB  fds {s.fds:3d}  threads {s.threads:3d}  "
                    f"CPU {s.cpu_s:8.1f} s  DB {s.db_mb:6.1f} MB  alerts received {len(sub.keys())}",
                    flush=True,
                )
                k += 1
                if k * args.sample_secs > total + 1e-6:
                    break
            duration = time.monotonic() - t0
            agent.send_signal(signal.SIGTERM)
            t_term = time.monotonic()
            hung = False
            try:
                agent.wait(STOP_TIMEOUT_SECS)
            except subprocess.TimeoutExpired:
                hung = True
                agent.kill()
                agent.wait()
            stop_secs = None if hung else time.monotonic() - t_term
            exit_code = agent.returncode
            time.sleep(3.0)  # QoS 1 messages in flight to the subscriber when the agent stopped
            received, messages = sub.keys(), sub.messages
            counts = read_db(db)
            log_counts, notable = summarise_log(log, tmp)
            if hung or exit_code != 0 or log_counts["Traceback"]:
                print(f"agent log (tail):\n{tail(log, 40)}", file=sys.stderr)
            return SoakResult(
                samples, exit_code, stop_secs, hung, counts, received, messages, duration, scenario, log_counts,
                notable,
            )  # fmt: skip
        finally:
            if sub is not None:
                sub.stop()
            stop_process(agent, 5)
            stop_process(sim)
            if broker is not None:
                broker.stop()


def _slope(x: list[float], y: list[float]) -> tuple[float, float]:
    """Least-squares slope and its standard error (nan when there are too few points)."""
    if len(x) < 3 or len(set(x)) < 2:
        return float("nan"), float("nan")
    reg = statistics.linear_regression(x, y)
    resid = [yi - (reg.intercept + reg.slope * xi) for xi, yi in zip(x, y, strict=True)]
    mx = statistics.fmean(x)
    se = (sum(e * e for e in resid) / (len(x) - 2)) ** 0.5 / sum((xi - mx) ** 2 for xi in x) ** 0.5
    return reg.slope, se


def analyse(r: SoakResult, warmup_pct: float) -> dict[str, Any]:
    """Slope, flatness and the verdicts; every criterion named in the module docstring."""
    cut = r.duration_secs * warmup_pct / 100
    after = [s for s in r.samples if s.t_secs >= cut - 1e-6]
    out: dict[str, Any] = {"after": after, "cut_secs": cut}
    out["slope"], out["slope_se"] = _slope([s.t_secs / 3600 for s in after], [s.rss_mb for s in after])
    out["db_slope"], _ = _slope([s.t_secs / 3600 for s in after], [s.db_mb for s in after])
    out["fd_range"] = (min(s.fds for s in after), max(s.fds for s in after)) if after else (0, 0)
    out["thr_range"] = (min(s.threads for s in after), max(s.threads for s in after)) if after else (0, 0)
    lost = r.db.stored_keys - r.received
    out["lost"] = sorted(lost)
    out["checks"] = {
        f"RSS slope after warm-up < {SLOPE_LIMIT_MB_PER_H:g} MB/h": out["slope"] < SLOPE_LIMIT_MB_PER_H,
        f"fds flat after warm-up (max - min <= {FLAT_LIMIT})": out["fd_range"][1] - out["fd_range"][0]
        <= FLAT_LIMIT,
        f"threads flat after warm-up (max - min <= {FLAT_LIMIT})": out["thr_range"][1] - out["thr_range"][0]
        <= FLAT_LIMIT,
        "alerts lost = 0 (every stored alert event received)": not lost,
        f"clean exit on SIGTERM (exit 0 within {STOP_TIMEOUT_SECS:g} s)": not r.hung and r.exit_code == 0,
    }
    return out


def markdown(r: SoakResult, a: dict[str, Any], args: argparse.Namespace, elapsed: float) -> str:
    db = r.db
    cmd = "python bench/soak.py" + (" --quick" if args.quick else f" --minutes {args.minutes:g}")
    if args.speed != 30:
        cmd += f" --speed {args.speed:g}"
    if args.extra_tags:
        cmd += f" --extra-tags {args.extra_tags}"
    if args.out:
        cmd += f" --out {args.out}"
    passed = all(a["checks"].values())
    fault_n = r.scenario.count("@")
    lines = [
        "# Soak: the agent daemon against the simulated plant",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {machine_line()}",
        f"- command: `{cmd}` (total wall time {elapsed / 60:.1f} min)",
        f"- duration run: **{r.duration_secs / 60:.1f} min** of agent wall time at simulator `--speed "
        f"{args.speed:g}` ({r.duration_secs * args.speed / 3600:.1f} simulated hours)"
        + ("; the documented soak is 120 min (`--minutes 120`, the default)" if args.minutes != 120 else ""),
        "- processes: simulator (`python -m agent simulate`), mosquitto, the daemon (`python -m agent run "
        "--config F`, the simulator's `--print-config` with flush 5 s, evaluate 10 s, `[mqtt]` to the broker, "
        f"built-in rules with durations divided by {args.speed:g}), a paho subscriber on `{ALERT_TOPIC}`",
        f"- scenario: `{FAULT}` (cement mill 1 starved) for {args.fault_secs:g} s every "
        f"{args.fault_every_secs:g} s of wall time, first at {args.first_fault_secs:g} s: {fault_n} fault(s)",
        f"- sampled every {args.sample_secs:g} s from /proc; warm-up ignored: first {args.warmup_pct:g} % "
        f"({a['cut_secs'] / 60:.1f} min)",
        "",
        "| minute | RSS MB | fds | threads | CPU s | DB + WAL MB |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for s in r.samples:
        lines.append(
            f"| {s.t_secs / 60:.1f} | {s.rss_mb:.1f} | {s.fds} | {s.threads} | {s.cpu_s:.1f} | {s.db_mb:.1f} |"
        )
    last = r.samples[-1]
    first = a["after"][0] if a["after"] else r.samples[0]
    cpu_pct = 100 * (last.cpu_s - first.cpu_s) / max(1e-9, last.t_secs - first.t_secs)
    fl, fh = a["fd_range"]
    tl, th = a["thr_range"]
    stop = (
        f"{r.stop_secs:.1f} s" if r.stop_secs is not None else f"did not exit within {STOP_TIMEOUT_SECS:g} s"
    )
    if r.duration_secs < 3600:
        note = (
            f"- note: a {r.duration_secs / 60:.0f}-min run extrapolates the RSS slope from "
            f"{(r.duration_secs - a['cut_secs']) / 60:.0f} min to an hour; the slope verdict means "
            "something for runs of an hour or more"
        )
    else:
        note = ""
    lines += [
        "",
        "## Summary",
        "",
        *([note] if note else []),
        f"- RSS slope after warm-up: **{a['slope']:+.2f} MB/h** (± {2 * a['slope_se']:.1f}, 2 standard errors) "
        f"over {len(a['after'])} samples; the database file + WAL grew {a['db_slope']:+.1f} MB/h meanwhile "
        f"(RSS {min(s.rss_mb for s in a['after']):.1f}-{max(s.rss_mb for s in a['after']):.1f} MB after "
        f"warm-up, peak {max(s.rss_mb for s in r.samples):.1f} MB)",
        f"- fds after warm-up: min {fl}, max {fh}; threads: min {tl}, max {th}",
        f"- agent CPU: {last.cpu_s:.1f} s in {last.t_secs / 60:.1f} min ({cpu_pct:.1f} % of one core after warm-up)",
        f"- SIGTERM: exit code {r.exit_code}, stopped in {stop}",
        f"- database (read-only after the stop): {db.samples:,} sample rows, {db.kpi:,} KPI rows, "
        f"{db.episodes} alert episode(s) ({db.resolved} resolved), file + WAL {db.size_mb:.1f} MB",
        f"- alert events stored: {db.outbox_alerts} outbox rows on alert topics ({len(db.stored_keys)} distinct "
        f"(alert_id, state); alerts table: {db.episodes} firing + {db.resolved} resolved = "
        f"{db.episodes + db.resolved}), {db.outbox_delivered} marked delivered",
        f"- received over MQTT: {len(r.received)} distinct (alert_id, state) in {r.messages} message(s); "
        f"**lost: {len(a['lost'])}**" + (f" {a['lost'][:5]}" if a["lost"] else ""),
        f"- agent log: {r.log_counts['alert lines']} alert firing/resolved lines; other: "
        f"{r.log_counts['WARNING']} WARNING, {r.log_counts['ERROR']} ERROR, "
        f"{r.log_counts['Traceback']} traceback(s)" + (":" if r.notable else ""),
        *(f"  - {n} x `{msg}`" for msg, n in r.notable),
        "",
        "| check | result |",
        "|---|---|",
        *(f"| {name} | {'PASS' if ok else 'FAIL'} |" for name, ok in a["checks"].items()),
        "",
        f"**Overall: {'PASS' if passed else 'FAIL'}**",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="3 minutes, a sample every 15 s (a smoke run)")
    p.add_argument("--minutes", type=float, default=None, help="agent wall time (default 120)")
    p.add_argument("--speed", type=float, default=30.0, help="simulator speed (simulated time x)")
    p.add_argument(
        "--sample-secs", type=float, default=None, help="seconds between /proc samples (default 60)"
    )
    p.add_argument(
        "--warmup-pct", type=float, default=20.0, help="share of the run ignored for slope/flatness"
    )
    p.add_argument("--fault-every-secs", type=float, default=300.0, help="wall seconds between fault starts")
    p.add_argument("--fault-secs", type=float, default=120.0, help="wall seconds each fault lasts")
    p.add_argument("--first-fault-secs", type=float, default=None, help="wall seconds before the first fault")
    p.add_argument("--seed", type=int, default=1, help="simulator seed")
    p.add_argument("--extra-tags", type=int, default=0, help="filler Modbus tags (more data per second)")
    p.add_argument("--out", help="write the Markdown summary here")
    args = p.parse_args(argv)
    args.minutes = args.minutes if args.minutes is not None else (3.0 if args.quick else 120.0)
    args.sample_secs = args.sample_secs if args.sample_secs is not None else (15.0 if args.quick else 60.0)
    if args.first_fault_secs is None:
        args.first_fault_secs = 30.0 if args.quick else 60.0
    if args.minutes <= 0 or args.sample_secs <= 0 or args.speed <= 0:
        p.error("--minutes, --sample-secs and --speed must be positive")
    # a SIGTERM to the bench runs the finally blocks (no orphaned simulator, broker or agent)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.monotonic()
    result = run_soak(args)
    analysis = analyse(result, args.warmup_pct)
    text = markdown(result, analysis, args, time.monotonic() - t0)
    print()
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0 if all(analysis["checks"].values()) else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
