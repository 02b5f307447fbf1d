"""What WebRTC subscribers get: passthrough or B-frame-free H.264, and Opus, all decodable."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable
from pathlib import Path

import av
import pytest
from av.video.frame import PictureType

from media.h264 import NAL_IDR, NAL_PPS, NAL_SPS, split_annexb
from media.hub import StreamHub, Subscription
from media.packets import AudioConfig, AudioFrame, OpusFrame, Packet, VideoFrame
from media.transcode import OPUS_FRAME_MS, OPUS_FRAME_SAMPLES, OPUS_RATE, AacToOpus, CodecWorker
from tests.media_support import depacketize, publish, read_flv_tags, write_test_flv

SECONDS = 3
COLLECT_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def plain_flv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_flv(tmp_path_factory.mktemp("webrtc") / "plain.flv", seconds=SECONDS)


@pytest.fixture(scope="module")
def bframes_flv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("webrtc") / "bframes.flv"
    return write_test_flv(path, seconds=SECONDS, bframes=2)


async def collect(
    subscription: Subscription, enough: Callable[[list[Packet]], bool]
) -> list[Packet]:
    """Read until `enough` holds (bounded by time: the transcoders run on threads)."""
    packets: list[Packet] = []
    async with asyncio.timeout(COLLECT_TIMEOUT):
        while not enough(packets):
            packets.append(await subscription.get())
    return packets


def video(packets: list[Packet]) -> list[VideoFrame]:
    return [packet for packet in packets if isinstance(packet, VideoFrame)]


def opus(packets: list[Packet]) -> list[OpusFrame]:
    return [packet for packet in packets if isinstance(packet, OpusFrame)]


def decode_h264(frames: list[VideoFrame]) -> list[av.VideoFrame]:
    decoder = av.CodecContext.create("h264", "r")
    decoded = []
    for frame in frames:
        decoded += decoder.decode(av.Packet(frame.data))
    return decoded + decoder.decode(None)


def enough_video(source: list[VideoFrame]) -> Callable[[list[Packet]], bool]:
    return lambda packets: len(video(packets)) >= 0.9 * len(source)


async def run_stream(
    path: Path, enough: Callable[[list[Packet]], bool]
) -> tuple[StreamHub, list[Packet]]:
    hub = StreamHub()
    viewer = hub.subscribe(webrtc=True)
    publisher = asyncio.create_task(publish(hub, read_flv_tags(path)))
    packets = await collect(viewer, enough)
    await publisher
    hub.close()
    await hub.wait_closed()
    return hub, packets


async def test_plain_h264_passes_through_untouched_and_decodes(plain_flv: Path) -> None:
    source = video(depacketize(plain_flv))
    hub, packets = await run_stream(plain_flv, lambda got: len(video(got)) == len(source))
    assert not hub.bframes_detected
    got = video(packets)
    assert [(f.data, f.dts, f.keyframe) for f in got] == [
        (f.data, f.dts, f.keyframe) for f in source
    ]
    assert len(decode_h264(got)) >= 0.9 * len(source)
    assert not any(isinstance(packet, AudioConfig | AudioFrame) for packet in packets)


async def test_aac_becomes_decodable_opus_of_the_same_duration(plain_flv: Path) -> None:
    source = depacketize(plain_flv)
    aac = [packet for packet in source if isinstance(packet, AudioFrame)]
    config = next(packet for packet in source if isinstance(packet, AudioConfig))
    aac_seconds = len(aac) * 1024 / config.sample_rate
    expected_frames = int(aac_seconds * OPUS_RATE / OPUS_FRAME_SAMPLES) - 2
    _, packets = await run_stream(plain_flv, lambda got: len(opus(got)) >= expected_frames)

    frames = opus(packets)
    decoder = av.CodecContext.create("opus", "r")
    samples = 0
    for frame in frames:
        for decoded in decoder.decode(av.Packet(frame.data)):
            assert decoded.sample_rate == OPUS_RATE
            samples += decoded.samples
    assert samples == len(frames) * OPUS_FRAME_SAMPLES
    assert abs(samples / OPUS_RATE - aac_seconds) < 3 * OPUS_FRAME_MS / 1000
    steps = [b.timestamp - a.timestamp for a, b in itertools.pairwise(frames)]
    assert steps == [OPUS_FRAME_MS] * len(steps)
    assert abs(frames[0].timestamp - aac[0].timestamp) <= OPUS_FRAME_MS


async def test_bframes_switch_webrtc_to_a_bframe_free_reencode(bframes_flv: Path) -> None:
    source = video(depacketize(bframes_flv))
    assert any(frame.composition_offset for frame in source)
    hub, packets = await run_stream(bframes_flv, enough_video(source))
    assert hub.bframes_detected

    got = video(packets)
    assert got[0].keyframe
    assert all(frame.pts == frame.dts for frame in got)
    assert all(a.dts < b.dts for a, b in itertools.pairwise(got))
    for frame in got:
        types = [nal[0] & 0x1F for nal in split_annexb(frame.data)]
        assert (NAL_IDR in types) == frame.keyframe
        if frame.keyframe:
            assert {NAL_SPS, NAL_PPS} <= set(types[: types.index(NAL_IDR)])
    decoded = decode_h264(got)
    assert len(decoded) >= 0.9 * len(source)
    assert all(frame.pict_type != PictureType.B for frame in decoded)


async def test_late_webrtc_viewer_of_a_bframe_stream_starts_on_a_reencoded_keyframe(
    bframes_flv: Path,
) -> None:
    hub = StreamHub()
    first = hub.subscribe(webrtc=True)
    tags = list(read_flv_tags(bframes_flv))
    await publish(hub, tags[: len(tags) // 2])
    await collect(first, lambda got: sum(f.keyframe for f in video(got)) >= 1)
    late = hub.subscribe(webrtc=True)
    late_video = video(await collect(late, lambda got: len(video(got)) >= 5))
    hub.close()
    await hub.wait_closed()
    assert late_video[0].keyframe
    assert all(frame.pts == frame.dts for frame in late_video)
    assert len(decode_h264(late_video)) >= 4


def test_opus_timestamps_follow_a_jump_in_the_publishers_audio_clock(plain_flv: Path) -> None:
    source = depacketize(plain_flv)
    config = next(packet for packet in source if isinstance(packet, AudioConfig))
    aac = [packet for packet in source if isinstance(packet, AudioFrame)]
    half = len(aac) // 2
    jump = 5000
    shifted = aac[:half] + [AudioFrame(f.data, f.timestamp + jump) for f in aac[half:]]
    transcode = AacToOpus(config)
    before = [frame for packet in shifted[:half] for frame in transcode(packet)]
    after = [frame for packet in shifted[half:] for frame in transcode(packet)]
    continuing = before[-1].timestamp + OPUS_FRAME_MS
    assert abs(after[0].timestamp - (continuing + jump)) <= 2 * OPUS_FRAME_MS
    assert all(b.timestamp - a.timestamp == OPUS_FRAME_MS for a, b in itertools.pairwise(after))


async def test_a_worker_that_falls_behind_drops_input_up_to_the_next_sync_point() -> None:
    started, release = threading.Event(), threading.Event()
    batches: asyncio.Queue[list[int]] = asyncio.Queue()

    def slow_identity(item: int) -> list[int]:
        started.set()
        release.wait(timeout=COLLECT_TIMEOUT)
        return [item]

    async def take(count: int) -> list[int]:
        items: list[int] = []
        async with asyncio.timeout(COLLECT_TIMEOUT):
            while len(items) < count:
                items += await batches.get()
        return items

    worker = CodecWorker(
        "test", slow_identity, batches.put_nowait, asyncio.get_running_loop(), max_pending=4
    )
    worker.submit(0, sync=True)
    assert await asyncio.to_thread(started.wait, COLLECT_TIMEOUT)
    for item in range(1, 10):
        worker.submit(item, sync=item % 5 == 0)  # 1-4 queue up; 5 finds it full; 6-9 skip
    release.set()
    assert await take(5) == [0, 1, 2, 3, 4]
    worker.submit(11, sync=False)  # still skipping: the queue has room, but no sync point yet
    worker.submit(12, sync=True)
    worker.submit(13, sync=False)
    assert await take(2) == [12, 13]
    worker.close()
    await asyncio.to_thread(worker.join, COLLECT_TIMEOUT)
    assert worker.dropped == 6
