"""Paced sending: a frame's packets leave spread over time, not in one burst.

A 1080p keyframe of a real scene is 250 to 300 kB, a couple of hundred packets. Sent
back to back, it reaches a viewer's access link far faster than the link drains it,
and a shallow router queue drops its end (the viewer then waits for retransmissions,
or for the next keyframe). The fan-out therefore sends each video frame in runs of
`CHUNK_PACKETS`, from a token bucket that lets a frame of up to `BURST_BYTES` (most
delta frames) leave at once, at `PACING_FACTOR` times the stream's recent bitrate (as a
browser's own sender, libwebrtc, paces) or faster, so that nothing waits longer than
`MAX_QUEUE_SECONDS`: a keyframe is spread over about 100 ms, which lowers the peak a
link must absorb by as much as the link drains meanwhile, and stays below what a
browser counts as a freeze (bench/playback.py). Audio is not paced (a packet a frame).
The rate is the stream's, not each viewer's: a link slower than the spread keyframe
still loses part of it (that needs a bandwidth estimate per viewer; not built).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from signaling.rtp.packetizer import RtpFrame

CHUNK_PACKETS = 8  # about 10 KB: one fan-out call sends a run to every viewer
BURST_BYTES = 24_000  # what may leave at once: most delta frames of a 6 Mbps stream
PACING_FACTOR = 2.5  # times the stream's bitrate
MIN_RATE_BYTES = 250_000  # 2 Mbit/s: the floor of the pacing rate
MAX_QUEUE_SECONDS = 0.1  # never more than this behind: the rate rises to drain it
RATE_WINDOW = 1.0  # seconds over which the stream's bitrate is measured


class Pacer:
    """Spreads frames handed to `push` into runs that `send` gets over time."""

    def __init__(self, send: Callable[[RtpFrame], None]) -> None:
        self._send = send
        self._loop = asyncio.get_running_loop()
        self._queue: deque[tuple[float, RtpFrame]] = deque()  # (queued at, run)
        self._queued_bytes = 0
        self._budget = float(BURST_BYTES)
        self._refilled_at = self._loop.time()
        self._rate = float(MIN_RATE_BYTES)
        self._window_bytes = 0
        self._window_start = self._refilled_at
        self._timer: asyncio.TimerHandle | None = None

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    def push(self, frame: RtpFrame) -> None:
        now = self._measure(frame.octets)
        for chunk in frame.chunks(CHUNK_PACKETS):
            self._queue.append((now, chunk))
            self._queued_bytes += chunk.octets
        if self._timer is None:
            self._drain()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()
        self._queued_bytes = 0

    def _measure(self, octets: int) -> float:
        """The pacing rate follows the stream's bitrate over the last RATE_WINDOW."""
        now = self._loop.time()
        self._window_bytes += octets
        if now - self._window_start >= RATE_WINDOW:
            bitrate = self._window_bytes / (now - self._window_start)
            self._rate = max(float(MIN_RATE_BYTES), PACING_FACTOR * bitrate)
            self._window_bytes, self._window_start = 0, now
        return now

    def _drain(self) -> None:
        self._timer = None
        now = self._loop.time()
        rate = self._rate
        if self._queue:  # all that is queued leaves by the time the oldest must
            left = self._queue[0][0] + MAX_QUEUE_SECONDS - now
            rate = max(rate, self._queued_bytes / max(left, 0.005))
        self._budget = min(float(BURST_BYTES), self._budget + (now - self._refilled_at) * rate)
        self._refilled_at = now
        while self._queue and self._budget > 0:
            _, chunk = self._queue.popleft()
            self._queued_bytes -= chunk.octets
            self._budget -= chunk.octets
            self._send(chunk)
        if self._queue:
            self._timer = self._loop.call_later(-self._budget / rate + 0.0005, self._drain)
