"""Real encoded media for tests, without a server: ffmpeg-written FLV files and a reader.

`write_test_flv` runs the Debian ffmpeg CLI once (test pattern + tone, libx264, AAC);
`read_flv_tags` yields the tag bodies an RTMP publisher would send for that file,
`depacketize` turns them into packets with the production depacketizer, and `send_tag` /
`publish` push them into anything with the RTMP sink methods (`on_video`, `on_audio`).
"""

from __future__ import annotations

import asyncio
import struct
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple, Protocol

from media.flv import FlvDepacketizer
from media.packets import Packet

TAG_AUDIO = 8
TAG_VIDEO = 9
TAG_SCRIPT = 18
FLV_TAG_HEADER = struct.Struct(">BHBHBB3s")  # type, size (24 bit), ts (24 + 8 bit), stream id


class MediaSink(Protocol):
    def on_video(self, timestamp_ms: int, payload: bytes) -> None: ...

    def on_audio(self, timestamp_ms: int, payload: bytes) -> None: ...


class FlvTag(NamedTuple):
    tag_type: int
    timestamp_ms: int
    body: bytes


def write_test_flv(
    path: Path,
    *,
    seconds: float = 2.0,
    size: str = "320x240",
    fps: int = 30,
    gop: int = 30,
    bframes: int = 0,
    audio: bool = True,
    video_bitrate: str = "500k",
    pix_fmt: str = "yuv420p",
    sample_rate: int = 44100,
) -> Path:
    """Encode a test pattern (and a 440 Hz tone) to an FLV file with the ffmpeg CLI."""
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    command += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}"]
    if audio:
        command += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={sample_rate}"]
    command += ["-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast"]
    command += ["-pix_fmt", pix_fmt, "-g", str(gop), "-bf", str(bframes)]
    command += ["-b:v", video_bitrate]
    if audio:
        command += ["-c:a", "aac", "-b:a", "64k", "-ac", "2"]
    command += ["-f", "flv", str(path)]
    subprocess.run(command, check=True, timeout=60)
    return path


def read_flv_tags(path: Path) -> Iterator[FlvTag]:
    """Yield every tag of an FLV file: its type, timestamp (ms) and body."""
    data = path.read_bytes()
    if data[:3] != b"FLV":
        raise ValueError(f"{path} is not an FLV file")
    offset = struct.unpack_from(">I", data, 5)[0] + 4  # header, then PreviousTagSize0
    while offset + FLV_TAG_HEADER.size <= len(data):
        tag_type, size_high, size_low, ts_low, ts_high, ts_ext, _ = FLV_TAG_HEADER.unpack_from(
            data, offset
        )
        size = size_high << 8 | size_low
        timestamp = ts_ext << 24 | ts_low << 8 | ts_high
        body_start = offset + FLV_TAG_HEADER.size
        yield FlvTag(tag_type & 0x1F, timestamp, data[body_start : body_start + size])
        offset = body_start + size + 4  # skip PreviousTagSize


def depacketize(path: Path) -> list[Packet]:
    """Every packet of an FLV file, as the stream hub would see them."""
    depacketizer = FlvDepacketizer()
    packets: list[Packet] = []
    for tag in read_flv_tags(path):
        if tag.tag_type == TAG_VIDEO:
            packets += depacketizer.video(tag.timestamp_ms, tag.body)
        elif tag.tag_type == TAG_AUDIO:
            packets += depacketizer.audio(tag.timestamp_ms, tag.body)
    return packets


def send_tag(sink: MediaSink, tag: FlvTag) -> None:
    """Deliver one audio or video tag the way the RTMP server does (script tags skipped)."""
    if tag.tag_type == TAG_VIDEO:
        sink.on_video(tag.timestamp_ms, tag.body)
    elif tag.tag_type == TAG_AUDIO:
        sink.on_audio(tag.timestamp_ms, tag.body)


async def publish(sink: MediaSink, tags: Iterable[FlvTag], *, speed: float = 4.0) -> None:
    """Send tags paced by their timestamps, like a live publisher, `speed` x real time."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for tag in tags:
        delay = start + tag.timestamp_ms / 1000 / speed - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        send_tag(sink, tag)
