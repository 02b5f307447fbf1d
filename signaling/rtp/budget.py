"""A per-viewer allowance of work a viewer can ask for: a token bucket.

A viewer's RTCP decides how much work the server does for it: one NACK packet can list
thousands of sequence numbers, each a retransmission. Without a bound, one misbehaving
viewer could take the process's CPU from every other viewer; with one, it only loses
its own retransmissions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("streamcart.signaling")


class Budget:
    """At most `per_second` takes a second on average, and `per_second` at once; the
    first refusal logs `warning` (the operator learns of a misbehaving viewer once)."""

    def __init__(
        self, per_second: float, warning: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = per_second
        self._tokens = per_second
        self._warning = warning
        self._clock = clock
        self._at = clock()
        self.refused = 0

    def take(self) -> bool:
        """True if one more is allowed now; False (and counted in `refused`) if not."""
        now = self._clock()
        self._tokens = min(self._rate, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        self.refused += 1
        if self.refused == 1:
            log.warning(self._warning)
        return False
