"""Waiting on observable state instead of fixed sleeps, for every test package.

A test that sleeps "long enough for the agent to notice" is slow on an idle machine and flaky on a
busy one; these helpers return as soon as the state is there and fail with a clear message when it
never comes. (``tests`` is on ``sys.path`` through ``pythonpath`` in pyproject.toml; the repository
root comes first there, so the test folders ``tests/agent`` etc. never stand in for the packages.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def wait_until(
    predicate: Callable[[], object], within: float = 10.0, interval: float = 0.02, what: str = "condition"
) -> None:
    """Poll ``predicate`` every ``interval`` s until it holds; fail after ``within`` s."""
    try:
        async with asyncio.timeout(within):
            while True:
                if predicate():
                    return
                await asyncio.sleep(interval)
    except TimeoutError:
        raise AssertionError(f"timed out after {within:g} s waiting for {what}") from None
