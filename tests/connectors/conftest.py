"""Fixtures for the connector tests; the servers themselves live in ``connector_testkit``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from connector_testkit import ModbusTestServer


@pytest_asyncio.fixture
async def modbus_server() -> AsyncIterator[ModbusTestServer]:
    """A started device with all registers zero."""
    server = ModbusTestServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
