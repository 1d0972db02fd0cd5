"""Jittered, capped exponential delays between reconnect attempts (PLC sources and the broker)."""

from __future__ import annotations

import random


class Backoff:
    """Delays between reconnect attempts: the first retry is quick, a long outage settles at ``max``.

    The n-th delay (from 0) is drawn uniformly from ``[max(min, cap/2), cap]`` with
    ``cap = min(max_secs, min_secs * 2**n)`` ("equal jitter" with a floor): never below
    ``min_secs``, never above ``max_secs``, growing with every failure, and spread so that many
    agents restarted together do not hammer a PLC or a broker in lock-step.
    """

    def __init__(self, min_secs: float, max_secs: float, *, rng: random.Random | None = None) -> None:
        if min_secs <= 0:
            raise ValueError("min_secs must be positive")
        self.min_secs = min_secs
        self.max_secs = max(max_secs, min_secs)
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one more failed attempt."""
        cap = min(self.max_secs, self.min_secs * 2.0 ** min(self.attempt, 60))
        self.attempt += 1
        return self._rng.uniform(max(self.min_secs, cap / 2), cap)

    def slow(self) -> float:
        """Delay after a refusal that will not fix itself (credentials, certificates): near ``max``."""
        return self._rng.uniform(max(self.min_secs, self.max_secs / 2), self.max_secs)

    def reset(self) -> None:
        """After a successful connection: the next outage starts with a quick retry again."""
        self.attempt = 0
