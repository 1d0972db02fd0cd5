"""OPC UA server restarts: comm_error while down, one log line each way, namespaces re-resolved."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

import pytest
from connector_testkit import TEST_NS, OpcuaTestServer, opcua_source_dict
from waiting import wait_until

from connectors.opcua import OpcuaConnector
from connectors.opcua_config import OpcuaSource

OTHER_NS = "urn:kilnwatch:other"
TAGS = [{"name": "kiln1.feed", "node_id": f"nsu={TEST_NS};s=Feed"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.asyncio
async def test_restart_with_renumbered_namespaces_recovers_on_the_right_nodes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = OpcuaTestServer(namespaces=(TEST_NS,))
    await server.start({"Feed": 100.0}, decoy=-1.0)
    assert server.ns == 2
    conns = {
        mode: OpcuaConnector(
            OpcuaSource.model_validate(
                opcua_source_dict(server.endpoint, TAGS, name=f"ua_{mode}", mode=mode, poll_interval_ms=100)
            )
        )
        for mode in ("subscribe", "poll")
    }
    seen: dict[str, list[tuple[float | None, str]]] = {mode: [] for mode in conns}
    restarted = asyncio.Event()

    async def consume(mode: str) -> None:
        async with contextlib.aclosing(conns[mode].stream()) as stream:
            async for frame in stream:
                seen[mode].extend(zip(frame["value"].to_list(), frame["quality"].to_list(), strict=True))
                if restarted.is_set() and seen[mode][-1] == (200.0, "good"):
                    return

    async def restart() -> None:
        await wait_until(
            lambda: all(rows.count((100.0, "good")) >= 2 for rows in seen.values()), what="100.0 read twice"
        )
        await server.stop()
        await wait_until(
            lambda: all(rows[-1][1] == "comm_error" for rows in seen.values()), what="the outage seen"
        )
        # the same endpoint, but another namespace registered first: the test namespace is now 3
        server.namespaces = (OTHER_NS, TEST_NS)
        await server.start({"Feed": 200.0}, decoy=-1.0)
        assert server.ns == 3
        restarted.set()

    try:
        with caplog.at_level(logging.INFO, logger="connectors.opcua"):
            async with asyncio.timeout(15), asyncio.TaskGroup() as tg:
                for mode in conns:
                    tg.create_task(consume(mode))
                tg.create_task(restart())
    finally:
        await server.stop()
    for mode, rows in seen.items():
        qualities = [q for _, q in rows]
        assert rows[0] == (100.0, "good"), mode
        assert "comm_error" in qualities, mode
        first_err = qualities.index("comm_error")
        last_err = len(qualities) - 1 - qualities[::-1].index("comm_error")
        assert set(qualities[first_err : last_err + 1]) == {"comm_error"}, mode  # one gap, no flapping
        assert all(v is None for v, q in rows if q == "comm_error"), mode
        after = [v for v, _ in rows[last_err + 1 :]]
        assert after and -1.0 not in after and after[-1] == 200.0, mode  # never the decoy at the old index
        ours = [r for r in caplog.records if r.name == "connectors.opcua" and f"ua_{mode} " in r.getMessage()]
        assert sum(r.levelno == logging.WARNING for r in ours) == 1, mode
        assert sum("up again" in r.getMessage() for r in ours) == 1, mode
        assert conns[mode].stats.reconnects == 1, mode


@pytest.mark.asyncio
async def test_server_down_at_start_gives_comm_error_frames_until_it_appears() -> None:
    server = OpcuaTestServer(port=free_port())
    src = OpcuaSource.model_validate(
        opcua_source_dict(server.endpoint, TAGS, mode="subscribe", poll_interval_ms=100)
    )
    conn = OpcuaConnector(src)
    qualities: list[str] = []

    async def consume() -> None:
        async with contextlib.aclosing(conn.stream()) as stream:
            async for frame in stream:
                qualities.extend(frame["quality"].to_list())
                if qualities[-1] == "good":
                    return

    async def appear() -> Any:
        await wait_until(lambda: qualities.count("comm_error") >= 3, what="three comm_error frames")
        await server.start({"Feed": 5.0})

    try:
        async with asyncio.timeout(15), asyncio.TaskGroup() as tg:
            tg.create_task(consume())
            tg.create_task(appear())
    finally:
        await server.stop()
    assert qualities[0] == "comm_error" and qualities.count("comm_error") >= 3  # one per 100 ms
    assert qualities[-1] == "good"
    assert conn.stats.errors >= 1 and conn.stats.reconnects == 0  # a first connection, not a re-connection
