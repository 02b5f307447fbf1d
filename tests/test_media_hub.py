"""The stream hub fed with real ffmpeg-encoded tags: GOP cache, lagging readers, end of stream."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from media.hub import StreamEnded, StreamHub, Subscription
from media.packets import AudioConfig, AudioFrame, Packet, VideoConfig, VideoFrame
from media.registry import AlreadyPublishing, StreamRegistry
from tests.media_support import TAG_VIDEO, FlvTag, read_flv_tags, send_tag, write_test_flv


@pytest.fixture(scope="module")
def tags(tmp_path_factory: pytest.TempPathFactory) -> list[FlvTag]:
    path = write_test_flv(tmp_path_factory.mktemp("hub") / "stream.flv", seconds=3, gop=15)
    return list(read_flv_tags(path))


def count_video_frames(tags: list[FlvTag]) -> int:
    """AVC NALU tags in the file (not the sequence header or end-of-sequence)."""
    return sum(tag.tag_type == TAG_VIDEO and tag.body[1] == 1 for tag in tags)


def drain(subscription: Subscription) -> list[Packet]:
    packets = []
    while (packet := subscription.get_nowait()) is not None:
        packets.append(packet)
    return packets


def source_frames(packets: list[Packet]) -> list[VideoFrame]:
    return [packet for packet in packets if isinstance(packet, VideoFrame)]


async def test_late_subscriber_starts_with_configs_and_the_cached_gop(tags: list[FlvTag]) -> None:
    hub = StreamHub()
    early = hub.subscribe(webrtc=False)
    middle = len(tags) // 2
    for tag in tags[:middle]:
        send_tag(hub, tag)
    seen_by_early = drain(early)
    last_keyframe = [frame for frame in source_frames(seen_by_early) if frame.keyframe][-1]

    late = hub.subscribe(webrtc=False)
    first_three = [late.get_nowait() for _ in range(3)]
    assert isinstance(first_three[0], VideoConfig)
    assert isinstance(first_three[1], AudioConfig)
    assert first_three[2] is last_keyframe
    assert hub.latest_keyframe is last_keyframe

    for tag in tags[middle:]:
        send_tag(hub, tag)
    hub.close()
    rest_early = drain(early)
    rest_late = drain(late)
    late_frames = source_frames([first_three[2], *rest_late])
    early_frames = source_frames(seen_by_early + rest_early)
    assert late_frames == early_frames[early_frames.index(last_keyframe) :]
    assert all(a is b for a, b in zip(late_frames, early_frames[-len(late_frames) :], strict=True))
    assert early.dropped == late.dropped == 0


async def test_slow_subscriber_skips_to_keyframes_while_a_fast_one_gets_everything(
    tags: list[FlvTag],
) -> None:
    hub = StreamHub()
    fast = hub.subscribe(webrtc=False)
    slow = hub.subscribe(webrtc=False, max_queue=20)
    fast_packets: list[Packet] = []
    slow_packets: list[Packet] = []
    for index, tag in enumerate(tags):
        send_tag(hub, tag)
        fast_packets += drain(fast)
        if index % 3 == 0 and (packet := slow.get_nowait()) is not None:
            slow_packets.append(packet)
    hub.close()
    slow_packets += drain(slow)

    everything = source_frames(fast_packets)
    assert len(everything) == count_video_frames(tags)
    assert fast.dropped == 0
    assert slow.dropped > 0

    slow_frames = source_frames(slow_packets)
    positions = [everything.index(frame) for frame in slow_frames]
    assert positions == sorted(positions)
    assert len(positions) < len(everything)
    assert slow_frames[0].keyframe
    for previous, position in itertools.pairwise(positions):
        if position != previous + 1:
            assert everything[position].keyframe, "a lagging reader resumed off a keyframe"


async def test_close_ends_iteration_after_the_backlog(tags: list[FlvTag]) -> None:
    hub = StreamHub()
    subscription = hub.subscribe(webrtc=False)

    async def collect() -> list[Packet]:
        return [packet async for packet in subscription]

    reader = asyncio.create_task(collect())
    for tag in tags:
        send_tag(hub, tag)
        await asyncio.sleep(0)
    hub.close()
    packets = await asyncio.wait_for(reader, timeout=10)
    assert hub.closed
    assert len(source_frames(packets)) == count_video_frames(tags)
    assert sum(isinstance(packet, AudioFrame) for packet in packets) > 0
    with pytest.raises(StreamEnded):
        await hub.subscribe(webrtc=False).get()


async def test_closing_a_subscription_wakes_its_waiting_reader() -> None:
    hub = StreamHub()
    subscription = hub.subscribe(webrtc=True)
    waiting = asyncio.create_task(subscription.get())
    await asyncio.sleep(0)
    subscription.close()
    with pytest.raises(StreamEnded):
        await asyncio.wait_for(waiting, timeout=5)
    hub.close()


async def test_malformed_tags_are_counted_and_do_not_stop_the_stream(tags: list[FlvTag]) -> None:
    hub = StreamHub()
    subscription = hub.subscribe(webrtc=False)
    hub.on_video(0, b"\x17\x00\x00\x00\x00\x01")
    hub.on_audio(0, b"\xaf\x00")
    for tag in tags:
        send_tag(hub, tag)
    hub.close()
    assert hub.malformed_packets == 2
    assert source_frames(drain(subscription))


async def test_registry_allows_one_publisher_per_session_and_reports_the_end() -> None:
    registry = StreamRegistry()
    ended: list[str] = []
    registry.on_stream_ended(lambda session_id, hub: ended.append(session_id))
    hub = registry.open("session-1")
    other = registry.open("session-2")
    with pytest.raises(AlreadyPublishing):
        registry.open("session-1")
    assert registry.get("session-1") is hub
    hub.close()
    assert registry.get("session-1") is None
    assert ended == ["session-1"]
    again = registry.open("session-1")
    registry.close_all()
    assert other.closed and again.closed
    assert len(registry) == 0
    assert sorted(ended) == ["session-1", "session-1", "session-2"]


async def test_a_resumed_hub_goes_on_in_stream_time_for_the_readers_it_had(
    tags: list[FlvTag],
) -> None:
    """A publisher that reconnects restarts its clock at zero: the registry gives it the
    paused hub back, and readers see stream time continue after the real gap."""
    registry = StreamRegistry()
    hub = registry.open("session-1")
    reader = hub.subscribe(webrtc=False, max_queue=1024)
    for tag in tags[: len(tags) // 2]:
        send_tag(hub, tag)
    before = source_frames(drain(reader))
    hub.pause()
    assert registry.get("session-1") is hub and not hub.closed and not hub.publishing
    await asyncio.sleep(0.3)
    assert registry.open("session-1") is hub and hub.publishing
    with pytest.raises(AlreadyPublishing):
        registry.open("session-1")
    for tag in tags:  # the new connection: the same file, from timestamp 0 again
        send_tag(hub, tag)
    after = source_frames(drain(reader))
    assert len(after) == count_video_frames(tags) and after[0].keyframe
    gap_ms = after[0].dts - before[-1].dts
    assert 300 <= gap_ms < 600, gap_ms
    dts = [frame.dts for frame in before + after]
    assert dts == sorted(dts)
    assert reader.dropped == 0
    hub.close()
    assert registry.get("session-1") is None


async def test_dropped_frames_count_what_lagging_readers_skipped(tags: list[FlvTag]) -> None:
    hub = StreamHub()
    slow = hub.subscribe(webrtc=True, max_queue=20)
    for tag in tags:
        send_tag(hub, tag)
    hub.close()
    drain(slow)
    assert slow.dropped > 0
    assert hub.dropped_frames == slow.dropped + hub.codec_dropped
