"""A retry budget: retries may be at most ``ratio`` of the requests of the last ``window_s``
seconds (but ``min_per_window`` are always allowed), so a failing pool can never turn into a
retry storm that multiplies the load on the pools that are left."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class RetryBudget:
    def __init__(
        self, ratio: float, min_per_window: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ratio = ratio
        self._min = min_per_window
        self._window_s = window_s
        self._clock = clock
        self._requests: deque[float] = deque()
        self._retries: deque[float] = deque()

    def record_request(self) -> None:
        now = self._clock()
        self._requests.append(now)
        if self._requests[0] <= now - self._window_s:  # forget what left the window (amortised O(1))
            self._trim(self._requests, now)

    def try_acquire(self) -> bool:
        """Takes one retry from the budget if there is one left."""
        now = self._clock()
        for stamps in (self._requests, self._retries):
            self._trim(stamps, now)
        if len(self._retries) >= max(self._min, int(self._ratio * len(self._requests))):
            return False
        self._retries.append(now)
        return True

    def _trim(self, stamps: deque[float], now: float) -> None:
        while stamps and stamps[0] <= now - self._window_s:
            stamps.popleft()
