"""Test helpers for the agent tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def wait_until(
    predicate: Callable[[], object], within: float = 10.0, interval: float = 0.02, what: str = "condition"
) -> None:
    """Poll ``predicate`` every ``interval`` s until it holds; fail after ``within`` s.

    Instead of a fixed sleep "and hope the agent noticed": fast on an idle machine, patient on a
    busy one. (tests/connectors/connector_testkit.py has the same helper, tests/mqtt/mqtt_support.py
    ``eventually``: each test package is on ``sys.path`` only for its own tests, and putting
    ``tests/`` itself there would shadow the ``agent``/``connectors`` packages with these folders.)
    """
    try:
        async with asyncio.timeout(within):
            while True:
                if predicate():
                    return
                await asyncio.sleep(interval)
    except TimeoutError:
        raise AssertionError(f"timed out after {within:g} s waiting for {what}") from None
