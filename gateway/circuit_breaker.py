"""A consecutive-failure circuit breaker for a dependency the gateway can do without (the cache).

Closed: calls go through. After ``failures`` consecutive failures it opens: calls are skipped at
once for ``cooldown_s`` (a paused Redis then costs nothing per request instead of a time-out).
Then one call is let through as a probe: success closes the breaker, failure opens it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    def __init__(self, failures: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = failures
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._consecutive = 0
        self._open_until: float | None = None
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self._open_until is not None

    def allow(self) -> bool:
        """Whether a call may go to the dependency now (one probe at a time after the cool-down)."""
        if self._open_until is None:
            return True
        if self._probing or self._clock() < self._open_until:
            return False
        self._probing = True
        return True

    def success(self) -> bool:
        """Records a success; True when it closed an open breaker."""
        reopened = self._open_until is not None
        self._consecutive, self._open_until, self._probing = 0, None, False
        return reopened

    def failure(self) -> bool:
        """Records a failure; True when it opened the breaker (not when a probe failed again)."""
        self._consecutive += 1
        was_open = self._open_until is not None
        if was_open or self._consecutive >= self._threshold:
            self._open_until = self._clock() + self._cooldown_s
            self._probing = False
        return not was_open and self._open_until is not None
