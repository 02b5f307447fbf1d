"""Paced sending: a big frame leaves in runs spread at the pacing rate, a small one at
once, the rate follows the stream, and nothing waits longer than the queue's bound."""

from __future__ import annotations

import asyncio

from signaling.rtp import pacer
from signaling.rtp.pacer import (
    BURST_BYTES,
    CHUNK_PACKETS,
    MAX_QUEUE_SECONDS,
    MIN_RATE_BYTES,
    PACING_FACTOR,
    Pacer,
)
from signaling.rtp.packetizer import VIDEO_TICKS_PER_MS, RtpFrame

PACKET = 1200


def frame(packets: int, stream_ms: int = 0) -> RtpFrame:
    payloads = [bytes([index % 256]) * PACKET for index in range(packets)]
    return RtpFrame(
        "video", stream_ms, stream_ms * VIDEO_TICKS_PER_MS, True, VIDEO_TICKS_PER_MS, payloads
    )


class Recorder:
    """What the pacer sent, when; `until(octets)` waits for that much."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, RtpFrame]] = []
        self._more = asyncio.Event()

    def __call__(self, run: RtpFrame) -> None:
        self.sent.append((asyncio.get_running_loop().time(), run))
        self._more.set()

    def octets(self) -> int:
        return sum(run.octets for _, run in self.sent)

    async def until(self, octets: int, seconds: float = 5.0) -> None:
        async with asyncio.timeout(seconds):
            while self.octets() < octets:
                self._more.clear()
                await self._more.wait()


async def test_a_frame_leaves_in_runs_at_the_pacing_rate_and_ends_once():
    recorder = Recorder()
    paced = Pacer(recorder)
    big = frame(34)  # 40.8 kB: the burst at once, the rest at the 2 Mbit/s floor
    started = asyncio.get_running_loop().time()
    paced.push(big)
    await recorder.until(big.octets)
    runs = [run for _, run in recorder.sent]
    assert [len(run.payloads) for run in runs] == [CHUNK_PACKETS] * 4 + [2]
    assert [p for run in runs for p in run.payloads] == big.payloads
    assert [run.ends_frame for run in runs] == [False] * 4 + [True]
    assert runs[-1].whole is big and all(run.whole is None for run in runs[:-1])
    assert {run.ticks for run in runs} == {big.ticks} and all(r.keyframe for r in runs)
    took = recorder.sent[-1][0] - started
    expected = (big.octets - BURST_BYTES) / MIN_RATE_BYTES
    assert 0.7 * expected < took < expected + 0.2, (took, expected)
    assert paced.queued_bytes == 0


async def test_a_keyframe_is_spread_but_leaves_within_the_queues_bound():
    recorder = Recorder()
    paced = Pacer(recorder)
    keyframe = frame(250)  # 300 kB, a 1080p keyframe of a real scene
    started = asyncio.get_running_loop().time()
    paced.push(keyframe)
    await recorder.until(keyframe.octets)
    took = recorder.sent[-1][0] - started
    assert 0.6 * MAX_QUEUE_SECONDS < took < MAX_QUEUE_SECONDS + 0.15, took
    halfway = [at - started for at, run in recorder.sent][len(recorder.sent) // 2]
    assert 0.3 * MAX_QUEUE_SECONDS < halfway < 0.7 * MAX_QUEUE_SECONDS, halfway


async def test_a_small_frame_leaves_at_once_whole():
    recorder = Recorder()
    paced = Pacer(recorder)
    small = frame(CHUNK_PACKETS)
    paced.push(small)
    assert [run for _, run in recorder.sent] == [small]


async def test_the_rate_follows_the_streams_bitrate(monkeypatch):
    monkeypatch.setattr(pacer, "RATE_WINDOW", 0.2)
    recorder = Recorder()
    paced = Pacer(recorder)
    for index in range(12):  # 12 frames of 24 kB in 0.24 s: about 1.2 MB/s
        paced.push(frame(20, index * 20))
        await asyncio.sleep(0.02)
    assert paced._rate > 4 * MIN_RATE_BYTES  # what the pacing follows
    assert paced._rate < PACING_FACTOR * 2_000_000
    paced.close()


async def test_close_drops_what_is_queued():
    recorder = Recorder()
    paced = Pacer(recorder)
    paced.push(frame(100))
    sent = len(recorder.sent)
    paced.close()
    await asyncio.sleep(MAX_QUEUE_SECONDS + 0.05)
    assert len(recorder.sent) == sent and paced.queued_bytes == 0
