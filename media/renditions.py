"""What the B-frame fallback outputs: the largest picture the machine re-encodes in time.

Re-encoding a 1080p60 stream costs more than a core on a small server (decoding every
frame is unavoidable: B-frames are references), so the fallback does not copy the
source's size and rate blindly. It starts from the largest rung of a ladder that is
no bigger than the source and no bigger than 720p30 (what `bench/playback.py` shows a
small server keeping up with for a 1080p60 source), and a `LoadMeter` measures, every
couple of seconds of stream time, how much of that time the worker spent working. Past
`STEP_DOWN_LOAD` it steps down a rung before the queue in front of it overflows; after
a while well below `STEP_UP_LOAD` it steps back up, never above the source.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LADDER = ((1080, 60.0), (1080, 30.0), (720, 60.0), (720, 30.0), (540, 30.0), (360, 30.0))
START_PIXEL_RATE = 1280 * 720 * 30  # the first output is at most this many pixels a second
WINDOW_MS = 2000  # stream time per load measurement
STEP_DOWN_LOAD = 0.8  # busier than this: a smaller output before the queue overflows
STEP_UP_LOAD = 0.35  # calmer than this, at the larger rung's estimated cost, for...
STEP_UP_AFTER_WINDOWS = 5  # ...this many windows in a row: try the larger rung
HOLD_AFTER_STEP_DOWN_MS = 30_000  # no step up this soon after a step down


@dataclass(frozen=True)
class Rendition:
    """One output size and rate, and why it was chosen (said in stream health)."""

    width: int
    height: int
    frame_rate: float
    reason: str = field(default="", compare=False)

    @property
    def pixel_rate(self) -> float:
        return self.width * self.height * self.frame_rate

    def label(self) -> str:
        return f"{self.width}x{self.height} {self.frame_rate:g} fps"


def ladder_for(width: int, height: int, frame_rate: float) -> list[Rendition]:
    """The rungs no larger than the source (its own size and rate first), largest first;
    sizes keep the source's aspect ratio, rounded to even numbers."""
    rungs: dict[tuple[int, int, float], None] = {(width, height, frame_rate): None}
    for rung_height, rung_rate in LADDER:
        if rung_height <= height and rung_rate <= frame_rate + 1:
            rung_width = _even(width * rung_height / height)
            rungs[(rung_width, rung_height, min(rung_rate, frame_rate))] = None
    ordered = sorted(rungs, key=lambda r: r[0] * r[1] * r[2], reverse=True)
    return [Rendition(w, h, r) for w, h, r in ordered]


def first_rendition(ladder: list[Rendition]) -> Rendition:
    source = ladder[0]
    for rung in ladder:
        if rung.pixel_rate <= START_PIXEL_RATE:
            reason = (
                "the source's own size and rate"
                if rung == source
                else f"at most 720p 30 fps to start with (the source is {source.label()})"
            )
            return _with_reason(rung, reason)
    return _with_reason(ladder[-1], f"the smallest output (the source is {source.label()})")


class LoadMeter:
    """The share of stream time the fallback spent working, per window; decides steps.

    `observe(busy_seconds, stream_ms)` after each input frame answers the rendition to
    use from now on (the same object while nothing changes)."""

    def __init__(self, ladder: list[Rendition]) -> None:
        self.ladder = ladder
        self.current = first_rendition(ladder)
        self.load = 0.0
        self._window_start: int | None = None
        self._busy = 0.0
        self._calm_windows = 0
        self._stepped_down_at: int | None = None

    def observe(self, busy_seconds: float, stream_ms: int) -> Rendition:
        if self._window_start is None or stream_ms < self._window_start:
            self._window_start, self._busy = stream_ms, 0.0
        self._busy += busy_seconds
        elapsed_ms = stream_ms - self._window_start
        if elapsed_ms >= WINDOW_MS:
            self.load = self._busy * 1000 / elapsed_ms
            self._window_start, self._busy = stream_ms, 0.0
            self._decide(stream_ms)
        return self.current

    def _decide(self, stream_ms: int) -> None:
        index = self._index()
        if self.load > STEP_DOWN_LOAD and index + 1 < len(self.ladder):
            self.current = _with_reason(
                self.ladder[index + 1],
                f"{self.current.label()} took {self.load:.0%} of real time to re-encode",
            )
            self._stepped_down_at, self._calm_windows = stream_ms, 0
            return
        larger = self.ladder[index - 1] if index > 0 else None
        estimated = self.load * (larger.pixel_rate / self.current.pixel_rate) if larger else 1.0
        self._calm_windows = self._calm_windows + 1 if estimated < STEP_UP_LOAD else 0
        held = self._stepped_down_at is not None and (
            stream_ms - self._stepped_down_at < HOLD_AFTER_STEP_DOWN_MS
        )
        if larger is not None and self._calm_windows >= STEP_UP_AFTER_WINDOWS and not held:
            self.current = _with_reason(
                larger, f"{self.current.label()} took only {self.load:.0%} of real time"
            )
            self._calm_windows = 0

    def _index(self) -> int:
        return self.ladder.index(self.current)


def _with_reason(rung: Rendition, reason: str) -> Rendition:
    return Rendition(rung.width, rung.height, rung.frame_rate, reason)


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)
