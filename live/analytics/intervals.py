"""Time-interval arithmetic behind the stats, kept pure so it is tested on its own.

An interval is (start, end) with start < end. A viewer's visits are merged first
(`union`), so tabs open at the same time count once towards watch time and peak.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

Interval = tuple[datetime, datetime]


def clip(start: datetime, end: datetime, window: Interval) -> Interval | None:
    """The part of [start, end] inside `window`, or None when nothing of it is."""
    start, end = max(start, window[0]), min(end, window[1])
    return (start, end) if start < end else None


def union(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, with overlapping or touching intervals merged into one."""
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def seconds(intervals: Iterable[Interval]) -> float:
    """Total length; the intervals must not overlap (merge them first)."""
    return sum((end - start).total_seconds() for start, end in intervals)


def peak(viewers: Iterable[list[Interval]]) -> int:
    """The largest number of viewers present at one instant, each viewer's intervals
    merged beforehand. A viewer leaving at the instant another joins does not overlap."""
    moments = sorted(
        (moment, change)
        for spans in viewers
        for start, end in spans
        for moment, change in ((start, 1), (end, -1))
    )
    present = highest = 0
    for _, change in moments:  # at equal times -1 sorts first: leaves before joins
        present += change
        highest = max(highest, present)
    return highest


def overlaps(first: list[Interval], second: list[Interval]) -> bool:
    """Whether any interval of `first` shares a stretch of time with one of `second`."""
    return any(a < d and c < b for a, b in first for c, d in second)


def contains(intervals: list[Interval], moment: datetime) -> bool:
    return any(start <= moment <= end for start, end in intervals)
