"""Failed authentications counted per client address: after `limit` of them within `window_s` seconds the
address is refused (429 with Retry-After) for a whole window, whatever key it sends.

Counted in this process's memory: with several service processes (workers, replicas) each counts its own, so
an address may fail `limit` times per process per window. A success does not clear the count: a holder of one
valid key could otherwise interleave it with guesses at others.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from geo_service.errors import Problem

MAX_ADDRESSES = 100_000  # bounded memory under a flood from many addresses


class TooManyAttempts(Problem):
    """The client address failed to authenticate too often."""

    status = 429
    title = "Too many attempts 尝试次数过多"


class AuthFailures:
    """Recent failed authentications per client address, and the addresses locked out until a time."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._locked: dict[str, float] = {}

    def retry_after(self, address: str) -> int | None:
        """Whole seconds until `address` may try again, or None when it may try now."""
        until = self._locked.get(address)
        if until is None:
            return None
        left = until - self.clock()
        if left <= 0:
            del self._locked[address]
            return None
        return max(1, math.ceil(left))

    def failed(self, address: str) -> None:
        """Count a failed authentication; the `limit`-th within the window locks the address out."""
        now = self.clock()
        recent = self._failures.get(address)
        if recent is None:
            self._forget_old(now)
            recent = self._failures[address] = deque()
        while recent and recent[0] <= now - self.window_s:
            recent.popleft()
        recent.append(now)
        if len(recent) >= self.limit:
            del self._failures[address]
            self._locked[address] = now + self.window_s

    def _forget_old(self, now: float) -> None:
        """Keep the tables bounded: drop what has aged out, then (under a flood) the oldest entries."""
        if len(self._failures) + len(self._locked) < MAX_ADDRESSES:
            return
        for address in [a for a, times in self._failures.items() if times[-1] <= now - self.window_s]:
            del self._failures[address]
        for address in [a for a, until in self._locked.items() if until <= now]:
            del self._locked[address]
        while len(self._failures) >= MAX_ADDRESSES // 2:
            del self._failures[next(iter(self._failures))]
        while len(self._locked) >= MAX_ADDRESSES // 2:
            del self._locked[next(iter(self._locked))]

    def problem(self, wait: int) -> TooManyAttempts:
        """The 429 for an address that must wait `wait` seconds."""
        problem = TooManyAttempts(
            f"Too many failed authentications from your address (limit {self.limit} per "
            f"{self.window_s:g} s). Wait {wait} s and try again with a valid key; ask an administrator "
            "if your key no longer works.",
            retry_after_s=wait,
        )
        problem.headers = {"Retry-After": str(wait)}
        return problem
