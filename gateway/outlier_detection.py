"""Passive health of one endpoint, as Envoy's outlier detection does it.

``consecutive_failures`` failures in a row eject the endpoint for ``base_ejection_s``, doubled at
each further ejection up to ``max_ejection_s``; a success resets the count and the multiplier.
An ejected endpoint gets no traffic until its ejection ends *and* its next active readiness check
says ready. Only the server's own faults count (the router decides: UNAVAILABLE, INTERNAL, or no
answer within the gateway's own call limit), never a caller's deadline or cancellation; and the
router may forbid an ejection that would leave too few endpoints (Envoy's max ejection percent).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class OutlierDetector:
    def __init__(
        self,
        consecutive_failures: int,
        base_ejection_s: float,
        max_ejection_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = consecutive_failures
        self._base_s = base_ejection_s
        self._max_s = max_ejection_s
        self._clock = clock
        self._failures = 0
        self._ejections = 0
        self._ejected_until = 0.0

    def record_success(self) -> None:
        self._failures = 0
        self._ejections = 0

    def record_failure(self, may_eject: bool = True) -> bool:
        """Counts a failure; returns True when this failure ejects the endpoint. With
        ``may_eject`` False the count is kept but the ejection waits for a later failure."""
        self._failures += 1
        if self._failures < self._threshold or self.is_ejected() or not may_eject:
            return False
        self._ejections += 1
        self._ejected_until = self._clock() + min(self._max_s, self._base_s * 2 ** (self._ejections - 1))
        self._failures = 0
        return True

    def is_ejected(self) -> bool:
        return self._clock() < self._ejected_until

    @property
    def ejected_for_s(self) -> float:
        return max(0.0, self._ejected_until - self._clock())
