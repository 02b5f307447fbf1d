"""Recording real ffmpeg-encoded streams: a byte-exact remux that plays, even after a crash."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path

import av
import pytest

from media.hub import StreamHub
from media.packets import AudioFrame, Packet, VideoFrame
from media.recording import BackgroundRecorder, Recorder, Timeline, timeline_path
from tests.media_support import TAG_AUDIO, TAG_VIDEO, depacketize, read_flv_tags, write_test_flv

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bframes_flv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("recording") / "bframes.flv"
    return write_test_flv(path, seconds=3, gop=30, bframes=2)


def source_samples(flv: Path) -> tuple[list[bytes], list[bytes], list[int]]:
    """The encoded video and audio frames as the publisher sent them, and video CTS."""
    video, audio, composition = [], [], []
    for tag in read_flv_tags(flv):
        if tag.tag_type == TAG_VIDEO and tag.body[1] == 1:
            video.append(tag.body[5:])
            composition.append(int.from_bytes(tag.body[2:5], "big", signed=True))
        elif tag.tag_type == TAG_AUDIO and tag.body[1] == 1:
            audio.append(tag.body[2:])
    return video, audio, composition


def recorded_samples(mp4: Path) -> tuple[list[bytes], list[bytes], list[int]]:
    video, audio, composition = [], [], []
    with av.open(str(mp4)) as container:
        for packet in container.demux():
            if packet.size == 0:
                continue
            if packet.stream.type == "video":
                video.append(bytes(packet))
                offset = (packet.pts - packet.dts) * packet.time_base * 1000
                composition.append(round(offset))
            else:
                audio.append(bytes(packet))
    return video, audio, composition


def decoded_video_frames(mp4: Path) -> int:
    with av.open(str(mp4)) as container:
        return sum(1 for _ in container.decode(video=0))


async def record(path: Path, packets: list[Packet], **options) -> BackgroundRecorder:
    recorder = BackgroundRecorder(path, **options)
    for packet in packets:
        recorder.submit(packet)
    await recorder.close()
    return recorder


async def test_remux_keeps_every_frame_byte_for_byte_and_plays(bframes_flv, tmp_path):
    mp4 = tmp_path / "session.mp4"
    recorder = await record(mp4, depacketize(bframes_flv))

    assert recorder.dropped_frames == 0
    with av.open(str(mp4)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264"
        assert (video.codec_context.width, video.codec_context.height) == (320, 240)
        assert audio.codec_context.name == "aac"
        assert audio.codec_context.sample_rate == 44_100
        assert container.duration / 1_000_000 == pytest.approx(3.0, abs=0.5)

    source = source_samples(bframes_flv)
    recorded = recorded_samples(mp4)
    assert recorded[0] == source[0]  # video: the very bytes, no re-encode
    assert recorded[1] == source[1]  # audio
    assert recorded[2] == source[2]  # B-frame composition offsets survive
    assert any(source[2])
    assert decoded_video_frames(mp4) == len(source[0])


async def test_records_a_hub_source_subscription_until_the_stream_ends(bframes_flv, tmp_path):
    hub = StreamHub("recorded")
    mp4 = tmp_path / "from-hub.mp4"
    recording = asyncio.create_task(BackgroundRecorder(mp4).record(hub.subscribe(webrtc=False)))
    for tag in read_flv_tags(bframes_flv):
        if tag.tag_type == TAG_VIDEO:
            hub.on_video(tag.timestamp_ms, tag.body)
        elif tag.tag_type == TAG_AUDIO:
            hub.on_audio(tag.timestamp_ms, tag.body)
        await asyncio.sleep(0)
    hub.close()
    await asyncio.wait_for(recording, 30)
    await hub.wait_closed()

    assert recorded_samples(mp4)[:2] == source_samples(bframes_flv)[:2]


async def test_recording_starts_at_a_keyframe_on_its_own_clock(bframes_flv, tmp_path):
    packets = depacketize(bframes_flv)
    keyframes = [i for i, p in enumerate(packets) if isinstance(p, VideoFrame) and p.keyframe]
    mp4 = tmp_path / "joined-late.mp4"
    await record(mp4, packets[: keyframes[0]] + packets[keyframes[0] + 1 :])  # first one lost

    source_video = source_samples(bframes_flv)[0]
    before_second_keyframe = sum(1 for p in packets[: keyframes[1]] if isinstance(p, VideoFrame))
    assert recorded_samples(mp4)[0] == source_video[before_second_keyframe:]
    with av.open(str(mp4)) as container:
        first = next(container.demux(video=0))
        assert first.dts * first.time_base == 0


def test_audio_without_video_writes_no_file(tmp_path):
    recorder = Recorder(tmp_path / "silent.mp4")
    recorder.write(AudioFrame(b"\x21\x00", timestamp=0))
    recorder.close()
    assert not (tmp_path / "silent.mp4").exists()


CRASHING_RECORDER = """
import os, signal, sys
from pathlib import Path
from media.recording import Recorder
from tests.media_support import depacketize

packets = depacketize(Path(sys.argv[1]))
recorder = Recorder(Path(sys.argv[2]))
for packet in packets[: len(packets) * 3 // 4]:
    recorder.write(packet)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_recording_of_a_killed_process_still_plays(bframes_flv, tmp_path):
    mp4 = tmp_path / "crashed.mp4"
    result = subprocess.run(
        [sys.executable, "-c", CRASHING_RECORDER, str(bframes_flv), str(mp4)],
        cwd=PROJECT_ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == -9

    total = len(source_samples(bframes_flv)[0])
    decoded = decoded_video_frames(mp4)
    assert total // 3 <= decoded < total  # whole fragments up to the last keyframe
    with av.open(str(mp4)) as container:
        assert len(container.streams.audio) == 1


async def test_timeline_marks_land_on_the_recording_clock(bframes_flv, tmp_path):
    packets = depacketize(bframes_flv)
    marks = {len(packets) // 3: "pinned", 2 * len(packets) // 3: "unpinned"}
    origin = next(p.dts for p in packets if isinstance(p, VideoFrame) and p.keyframe)
    mp4 = tmp_path / "sale.mp4"
    recorder = BackgroundRecorder(mp4)
    expected, latest = [], origin
    for index, packet in enumerate(packets):
        recorder.submit(packet)
        if isinstance(packet, VideoFrame | AudioFrame):
            latest = max(latest, packet.dts if isinstance(packet, VideoFrame) else packet.timestamp)
        if index in marks:
            recorder.mark(marks[index], {"product_id": "p-1"})
            expected.append(latest - origin)
    await recorder.close()

    saved = json.loads(timeline_path(mp4).read_text())
    assert [entry["kind"] for entry in saved["entries"]] == ["pinned", "unpinned"]
    assert [entry["at_ms"] for entry in saved["entries"]] == expected
    assert saved["entries"][0]["data"] == {"product_id": "p-1"}
    assert timeline_path(mp4).name == "sale.timeline.json"
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".partial")]


def test_timeline_is_append_only_and_reloads(tmp_path):
    path = tmp_path / "replay.timeline.json"
    assert Timeline.load(path).entries == []
    timeline = Timeline(path)
    timeline.append(1500, "flash_started", {"flash_sale_id": "f-1", "price": 99_000})
    timeline.append(9500, "flash_ended", {"flash_sale_id": "f-1"})
    with pytest.raises(ValueError, match="unknown timeline entry kind"):
        timeline.append(9600, "delete-everything", {})

    reloaded = Timeline.load(path)
    assert [(e["at_ms"], e["kind"]) for e in reloaded.entries] == [
        (1500, "flash_started"),
        (9500, "flash_ended"),
    ]
    reloaded.entries.clear()  # a copy: the timeline itself cannot be edited
    assert len(reloaded.entries) == 2


def gaps_end(recorded: list[bytes], source: list[bytes]) -> list[int]:
    """Where the recording picks up again after each run of dropped source frames."""
    resumed_at, expected = [], 0
    for sample in recorded:
        found = source.index(sample, expected)
        if found != expected:
            resumed_at.append(found)
        expected = found + 1
    return resumed_at


async def until_backlog_below(recorder: BackgroundRecorder, limit: int) -> None:
    for _ in range(1000):
        if recorder.backlog < limit:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"the recorder's backlog stayed at {recorder.backlog}")


async def test_slow_disk_drops_to_the_next_keyframe_and_the_file_still_decodes(
    bframes_flv, tmp_path
):
    packets = depacketize(bframes_flv)
    half = len(packets) // 2
    fifo = tmp_path / "stalled.mp4"
    os.mkfifo(fifo)  # the recorder blocks opening it until a reader arrives: a stalled disk
    recorder = BackgroundRecorder(fifo, max_queued_frames=10)
    for packet in packets[:half]:
        recorder.submit(packet)
    received = bytearray()
    reader = threading.Thread(target=lambda: received.extend(fifo.read_bytes()))
    reader.start()
    assert recorder.dropped_frames > 0
    await until_backlog_below(recorder, 1)  # the disk catches up
    for packet in packets[half:]:  # now at the pace the disk takes
        await until_backlog_below(recorder, 10)
        recorder.submit(packet)
    await recorder.close()
    await asyncio.to_thread(reader.join, 30)

    mp4 = tmp_path / "copy.mp4"
    mp4.write_bytes(received)
    recorded_video = recorded_samples(mp4)[0]
    source_video = source_samples(bframes_flv)[0]
    keyframes = [p.keyframe for p in packets if isinstance(p, VideoFrame)]
    resumed_at = gaps_end(recorded_video, source_video)
    assert resumed_at  # frames were dropped...
    assert all(keyframes[index] for index in resumed_at)  # ...each time up to a keyframe
    assert recorded_video[-1] == source_video[-1]  # and the recording caught up
    assert decoded_video_frames(mp4) == len(recorded_video)


def test_packet_time_base_is_milliseconds_in_the_file(bframes_flv, tmp_path):
    mp4 = tmp_path / "timing.mp4"
    recorder = Recorder(mp4)
    packets = depacketize(bframes_flv)
    for packet in packets:
        recorder.write(packet)
    recorder.close()
    source_dts = [p.dts for p in packets if isinstance(p, VideoFrame)]
    with av.open(str(mp4)) as container:
        recorded_dts = [
            round(p.dts * p.time_base / Fraction(1, 1000))
            for p in container.demux(video=0)
            if p.size
        ]
    assert recorded_dts == [dts - source_dts[0] for dts in source_dts]


def test_a_frame_from_the_past_is_refused_and_the_recording_goes_on(bframes_flv, tmp_path):
    packets = depacketize(bframes_flv)
    frames = [i for i, p in enumerate(packets) if isinstance(p, VideoFrame)]
    replayed = packets[frames[5]]  # a publisher glitch: an old frame sent again later
    mp4 = tmp_path / "glitch.mp4"
    recorder = Recorder(mp4)
    for index, packet in enumerate(packets):
        recorder.write(packet)
        if index == frames[20]:
            recorder.write(replayed)
    recorder.close()

    assert recorder.frames_refused == 1
    assert recorded_samples(mp4)[0] == source_samples(bframes_flv)[0]
