"""How fast the simulated plant serves 10,000 tags on loopback, against bare servers.

    .venv/bin/python bench/simulator_bench.py [--quick] [--tags N] [--secs S] [--repeat R]

The server runs in its own process (``kilnwatch simulate --extra-tags ...``, ticking at 1 s) so the
client's CPU does not distort it; the client reads as fast as it can. Measured, each the median of
``--repeat`` runs of ``--secs`` seconds:

* Modbus registers/s: full sweeps of every register (FC3/FC4 requests of 125), with 1 and with 4
  connections, plus the server process's CPU-seconds per million registers;
* OPC UA values/s by polling (``read_values`` of all nodes in chunks of 1,000) and by subscription
  (one subscription on every node, 500 ms publishing; values change with every 1 s scan);
* the same reads against a baseline in the same run: a bare pymodbus SimDevice server with the same
  register count and a bare asyncua server with the same number of Double nodes, neither ticking;
* in-process: the cost of one simulator scan at N tags (model step + register image + Modbus
  datastore + OPC UA writes), and the server start time.

Prints a Markdown table (copy it to bench/results/simulator.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asyncua.client.client import Client
from pymodbus.client import AsyncModbusTcpClient

from simulator.tagmap import build_tagmap, extra_tags_for

_MAIN = "import sys; from agent.cli import main; sys.exit(main())"
CHUNK = 125


def cpu_secs(pid: int) -> float:
    """utime + stime of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """A server subprocess that prints its ports; stopped with SIGTERM."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        text = ""
        t0 = time.monotonic()
        while "Ctrl-C" not in text:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"server exited: {text}")
            text += line
        self.start_secs = time.monotonic() - t0
        m = re.search(r"Modbus TCP\s+\S+:(\d+)", text)
        u = re.search(r"OPC UA\s+(opc\.tcp://\S+)", text)
        assert m and u, text
        self.modbus_port = int(m.group(1))
        self.endpoint = u.group(1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


async def modbus_sweeps(port: int, tables: dict[str, int], secs: float, conns: int) -> tuple[float, float]:
    """(registers read per second, elapsed s) for ``conns`` connections sweeping every register table."""
    clients = [AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0) for _ in range(conns)]
    for c in clients:
        await c.connect()
    blocks = [(t, a, min(CHUNK, size - a)) for t, size in tables.items() for a in range(0, size, CHUNK)]
    total = 0
    deadline = time.perf_counter() + secs

    async def worker(c: AsyncModbusTcpClient, offset: int) -> None:
        nonlocal total
        i = offset
        while time.perf_counter() < deadline:
            table, addr, count = blocks[i % len(blocks)]
            i += conns
            if table == "holding":
                rr = await c.read_holding_registers(addr, count=count, device_id=1)
            else:
                rr = await c.read_input_registers(addr, count=count, device_id=1)
            assert not rr.isError()
            total += count

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c, k) for k, c in enumerate(clients)))
    elapsed = time.perf_counter() - t0
    for c in clients:
        c.close()
    return total / elapsed, elapsed


async def opcua_poll(endpoint: str, node_ids: list[str], secs: float) -> float:
    async with Client(endpoint, timeout=30, watchdog_intervall=5.0) as c:
        nodes = [c.get_node(n) for n in node_ids]
        total = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < secs:
            for i in range(0, len(nodes), 1000):
                total += len(await c.read_values(nodes[i : i + 1000]))
        return total / (time.perf_counter() - t0)


async def opcua_subscribe(endpoint: str, node_ids: list[str], secs: float) -> float:
    # asyncua's health probe gives the server only watchdog_intervall (default 1 s) to answer; a
    # 2-core machine busy with 10k notifications per second needs more slack
    async with Client(endpoint, timeout=30, watchdog_intervall=5.0) as c:
        nodes = [c.get_node(n) for n in node_ids]
        count = 0

        class Handler:
            def datachange_notification(self, node: object, val: object, data: object) -> None:
                nonlocal count
                count += 1

        sub = await c.create_subscription(500, Handler(), queue_maxsize=4 * len(nodes))
        for i in range(0, len(nodes), 1000):
            await sub.subscribe_data_change(nodes[i : i + 1000], queuesize=1)
        await asyncio.sleep(2.0)  # initial values
        start, t0 = count, time.perf_counter()
        await asyncio.sleep(secs)
        rate = (count - start) / (time.perf_counter() - t0)
        await sub.delete()
        return rate


def median(runs: list[float]) -> float:
    return statistics.median(runs)


def once(coro: Coroutine[Any, Any, float]) -> float:
    return asyncio.run(coro)


def repeat(fn: Callable[[], Coroutine[Any, Any, float]], n: int) -> float:
    """Median of ``n`` runs; a run whose OPC UA session drops on the loaded machine is retried once."""
    results = []
    for _ in range(n):
        try:
            results.append(asyncio.run(fn()))
        except ConnectionError:
            results.append(asyncio.run(fn()))
    return median(results)


async def scan_cost(extra: int, scans: int) -> tuple[float, float]:
    """Median seconds per simulator scan at ``extra`` filler tags, and start time (in-process)."""
    from simulator.runner import SimulatedPlant

    t0 = time.perf_counter()
    async with SimulatedPlant(speed=0, extra_tags=extra) as sim:
        started = time.perf_counter() - t0
        costs = []
        for _ in range(scans):
            t = time.perf_counter()
            await sim.advance(1.0)
            costs.append(time.perf_counter() - t)
    return statistics.median(costs), started


def serve_bare(n_holding: int, n_input: int, n_nodes: int) -> None:
    """Baseline servers: no model, no ticking (run as a subprocess by this script)."""
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    from simulator.opcua_server import OpcuaPlc
    from simulator.tagmap import build_tagmap as tm

    async def main() -> None:
        holding = [SimData(address=0, count=n_holding, values=0, datatype=DataType.REGISTERS)]
        inputs = [SimData(address=0, count=n_input, values=0, datatype=DataType.REGISTERS)]
        bits = [SimData(address=0, count=16, values=False, datatype=DataType.BITS)]
        device = SimDevice(id=1, simdata=(bits, list(bits), holding, inputs))
        server = ModbusTcpServer(device, address=("127.0.0.1", 0))
        await server.serve_forever(background=True)
        port = server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        ua_plc = OpcuaPlc(tm(extra_tags=n_nodes - len(tm())), port=0)
        await ua_plc.start()
        print(f"Modbus TCP  127.0.0.1:{port}\nOPC UA  {ua_plc.endpoint}\nCtrl-C", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short runs (3 s, 1 repeat)")
    p.add_argument("--tags", type=int, default=10_000)
    p.add_argument("--secs", type=float, default=8.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--serve-bare", nargs=3, type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_bare:
        serve_bare(*args.serve_bare)
        return 0
    secs, reps = (3.0, 1) if args.quick else (args.secs, args.repeat)
    extra = extra_tags_for(args.tags)
    tagmap = build_tagmap(extra_tags=extra)
    tables = {t: tagmap.table_size(t) for t in ("holding", "input")}
    n_regs = sum(tables.values())
    node_ids = [t.node_id for t in tagmap.tags]
    rows: list[tuple[str, str, str, str]] = []

    scan, start_inproc = asyncio.run(scan_cost(extra, 5 if args.quick else 20))

    sim = Server(
        [
            sys.executable,
            "-c",
            _MAIN,
            "simulate",
            "--modbus-port",
            "0",
            "--opcua-port",
            "0",
            "--extra-tags",
            str(extra),
        ]
    )
    bare = Server(
        [
            sys.executable,
            __file__,
            "--serve-bare",
            str(tables["holding"]),
            str(tables["input"]),
            str(len(tagmap)),
        ]
    )

    def sweep(server: Server, conns: int) -> tuple[float, float]:
        """One run: (registers/s, server CPU-s per million registers)."""
        c0 = cpu_secs(server.proc.pid)
        rate, elapsed = asyncio.run(modbus_sweeps(server.modbus_port, tables, secs, conns))
        return rate, (cpu_secs(server.proc.pid) - c0) / (rate * elapsed / 1e6)

    try:
        for conns in (1, 4):
            runs = [(sweep(sim, conns), sweep(bare, conns)) for _ in range(reps)]  # interleaved
            s, cpu = median([r[0][0] for r in runs]), median([r[0][1] for r in runs])
            b, bare_cpu = median([r[1][0] for r in runs]), median([r[1][1] for r in runs])
            rows.append(
                (
                    f"Modbus FC3/FC4 sweeps, {conns} connection(s)",
                    f"{s:,.0f} registers/s",
                    f"{b:,.0f}",
                    f"{s / b:.2f}",
                )
            )
            rows.append(
                (
                    "  server CPU per million registers",
                    f"{cpu:.2f} CPU-s",
                    f"{bare_cpu:.2f}",
                    f"{cpu / bare_cpu:.2f}",
                )
            )
        polls = [
            (once(opcua_poll(sim.endpoint, node_ids, secs)), once(opcua_poll(bare.endpoint, node_ids, secs)))
            for _ in range(reps)
        ]
        s, b = median([p[0] for p in polls]), median([p[1] for p in polls])
        rows.append(
            ("OPC UA read_values, chunks of 1,000", f"{s:,.0f} values/s", f"{b:,.0f}", f"{s / b:.2f}")
        )
        s = repeat(lambda: opcua_subscribe(sim.endpoint, node_ids, secs), reps)
        rows.append(("OPC UA subscription, all nodes (1 s scan)", f"{s:,.0f} notifications/s", "", ""))
    finally:
        sim.stop()
        bare.stop()
    rows.append((f"scan cost in-process ({len(tagmap):,} tags)", f"{scan * 1000:.1f} ms", "", ""))
    rows.append(("server start in-process (address space, listeners)", f"{start_inproc:.1f} s", "", ""))
    rows.append(
        (
            "server start (subprocess, incl. imports)",
            f"{sim.start_secs:.1f} s",
            f"{bare.start_secs:.1f} s",
            "",
        )
    )
    print(f"\n{len(tagmap):,} tags = {n_regs:,} registers; {secs:g} s runs, median of {reps}\n")
    print("| measure | simulator | bare baseline | ratio |\n|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
