"""Thumbnails from real keyframes: valid JPEGs, the right size, rendered sparingly."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import av
import pytest

from media.packets import Packet, VideoConfig, VideoFrame
from media.thumbnail import ThumbnailCache, thumbnail_jpeg
from tests.media_support import depacketize, write_test_flv


def decode_jpeg(data: bytes) -> av.VideoFrame:
    assert data[:2] == b"\xff\xd8"  # SOI
    assert data[-2:] == b"\xff\xd9"  # EOI
    with av.open(io.BytesIO(data), format="image2pipe") as container:
        return next(container.decode(video=0))


def config_and_keyframes(packets: list[Packet]) -> tuple[VideoConfig, list[VideoFrame]]:
    config = next(p for p in packets if isinstance(p, VideoConfig))
    return config, [p for p in packets if isinstance(p, VideoFrame) and p.keyframe]


@pytest.fixture(scope="module")
def stream_720p(tmp_path_factory) -> list[Packet]:
    path = tmp_path_factory.mktemp("thumb") / "hd.flv"
    return depacketize(write_test_flv(path, seconds=2, size="1280x720", gop=30, bframes=2))


def test_thumbnail_is_a_jpeg_scaled_to_the_width_limit_keeping_aspect(stream_720p):
    config, keyframes = config_and_keyframes(stream_720p)
    picture = decode_jpeg(thumbnail_jpeg(config, keyframes[0], max_width=640))
    assert (picture.width, picture.height) == (640, 360)


def test_small_stream_is_not_upscaled(tmp_path: Path):
    packets = depacketize(write_test_flv(tmp_path / "portrait.flv", seconds=1, size="240x426"))
    config, keyframes = config_and_keyframes(packets)
    picture = decode_jpeg(thumbnail_jpeg(config, keyframes[-1], max_width=640))
    assert (picture.width, picture.height) == (240, 426)


def test_keyframe_without_inline_parameter_sets_still_decodes(stream_720p):
    config, keyframes = config_and_keyframes(stream_720p)
    parameter_sets = b"".join(b"\x00\x00\x00\x01" + nal for nal in (*config.sps, *config.pps))
    bare = VideoFrame(keyframes[0].data.removeprefix(parameter_sets), keyframe=True, dts=0, pts=0)
    assert bare.data != keyframes[0].data
    picture = decode_jpeg(thumbnail_jpeg(config, bare, max_width=320))
    assert (picture.width, picture.height) == (320, 180)


async def test_cache_renders_at_most_once_per_interval_from_the_latest_keyframe(stream_720p):
    config, keyframes = config_and_keyframes(stream_720p)
    cache = ThumbnailCache(min_interval_s=10)
    assert await cache.jpeg(now=0) is None  # nothing seen yet

    cache.observe(config)
    cache.observe(keyframes[0])
    concurrent = await asyncio.gather(*(cache.jpeg(now=0) for _ in range(5)))
    first = concurrent[0]
    assert first is not None and all(jpeg is first for jpeg in concurrent)

    cache.observe(keyframes[1])
    assert await cache.jpeg(now=5) is first  # still fresh: not re-rendered
    later = await cache.jpeg(now=10)
    assert later != first  # the newer keyframe shows a later picture
    assert decode_jpeg(later).width == 640
    assert await cache.jpeg(now=30) is later  # no newer keyframe: nothing to redo
