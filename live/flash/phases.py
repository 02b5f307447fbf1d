"""Where a flash sale stands, from its window and the clock."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any


class FlashPhase(StrEnum):
    """Where a flash sale stands; also the values of `FlashSale.announced`."""

    SCHEDULED = "scheduled"
    STARTED = "started"
    ENDED = "ended"


def phase(flash: Any, now: datetime) -> FlashPhase:
    """`flash`: anything with `starts_at`, `ends_at` and `cancelled_at` (a `FlashSale`)."""
    if flash.cancelled_at is not None or flash.ends_at <= now:
        return FlashPhase.ENDED
    return FlashPhase.STARTED if flash.starts_at <= now else FlashPhase.SCHEDULED
