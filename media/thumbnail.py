"""JPEG thumbnails of a live stream, from its latest keyframe.

A keyframe decodes on its own, so a thumbnail costs one H.264 decode and one JPEG encode
whatever the stream's length. Both block for milliseconds: `thumbnail_jpeg` is a plain
function for a worker thread, and `ThumbnailCache` runs it there at most every few
seconds however many clients ask.
"""

from __future__ import annotations

import asyncio
import logging
from fractions import Fraction

import av

from media.h264 import parameter_sets_annexb
from media.packets import Packet, VideoConfig, VideoFrame

log = logging.getLogger(__name__)

DEFAULT_MAX_WIDTH = 640
DEFAULT_MIN_INTERVAL_S = 10.0
# MJPEG quantiser bounds: 2 is near-lossless; 5 keeps a 640 px thumbnail around 15-30 kB.
JPEG_QMIN, JPEG_QMAX = 2, 5


def _scaled_size(width: int, height: int, max_width: int) -> tuple[int, int]:
    """At most `max_width` wide, same aspect ratio, even sides (4:2:0 chroma)."""
    target_width = min(width, max_width)
    target_height = round(height * target_width / width)
    return max(2, target_width // 2 * 2), max(2, target_height // 2 * 2)


def _decode_keyframe(config: VideoConfig, keyframe: VideoFrame) -> av.VideoFrame:
    decoder = av.CodecContext.create("h264", "r")
    # Leading parameter sets make the keyframe decodable even if it arrived without them.
    packet = av.Packet(parameter_sets_annexb(config.sps, config.pps) + keyframe.data)
    frames = decoder.decode(packet) + decoder.decode(None)
    if not frames:
        raise ValueError("the keyframe did not decode to a picture")
    return frames[0]


def thumbnail_jpeg(
    config: VideoConfig, keyframe: VideoFrame, max_width: int = DEFAULT_MAX_WIDTH
) -> bytes:
    """Decode one keyframe and encode it as a JPEG at most `max_width` pixels wide."""
    picture = _decode_keyframe(config, keyframe)
    width, height = _scaled_size(picture.width, picture.height, max_width)
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height = width, height
    encoder.pix_fmt = "yuvj420p"  # full-range YUV, what JPEG viewers expect
    encoder.time_base = Fraction(1, 1)
    encoder.options = {"qmin": str(JPEG_QMIN), "qmax": str(JPEG_QMAX)}
    scaled = picture.reformat(width=width, height=height, format="yuvj420p")
    return b"".join(bytes(packet) for packet in encoder.encode(scaled) + encoder.encode(None))


class ThumbnailCache:
    """Keeps the latest keyframe and a JPEG of it no older than `min_interval_s`.

    Feed it every source packet with `observe`; `jpeg(now)` answers from the cache while
    it is fresh, and concurrent callers share one render in a worker thread.
    """

    def __init__(
        self, min_interval_s: float = DEFAULT_MIN_INTERVAL_S, max_width: int = DEFAULT_MAX_WIDTH
    ) -> None:
        self._min_interval_s = min_interval_s
        self._max_width = max_width
        self._config: VideoConfig | None = None
        self._keyframe: VideoFrame | None = None
        self._rendered_keyframe: VideoFrame | None = None
        self._jpeg: bytes | None = None
        self._rendered_at: float | None = None
        self._render: asyncio.Task[bytes | None] | None = None

    def observe(self, packet: Packet) -> None:
        if isinstance(packet, VideoConfig):
            self._config = packet
        elif isinstance(packet, VideoFrame) and packet.keyframe:
            self._keyframe = packet

    def _is_fresh(self, now: float) -> bool:
        if self._keyframe is None or self._keyframe is self._rendered_keyframe:
            return True  # nothing newer to show
        return self._rendered_at is not None and now - self._rendered_at < self._min_interval_s

    async def jpeg(self, now: float) -> bytes | None:
        """The thumbnail (None before the first keyframe), re-rendered when stale."""
        if self._config is None or self._is_fresh(now):
            return self._jpeg
        if self._render is None:
            self._render = asyncio.create_task(self._render_latest(now))
        # Shielded: one caller giving up must not cancel the render the others wait for.
        return await asyncio.shield(self._render)

    async def _render_latest(self, now: float) -> bytes | None:
        config, keyframe = self._config, self._keyframe
        assert config is not None and keyframe is not None  # checked by jpeg()
        try:
            self._jpeg = await asyncio.to_thread(thumbnail_jpeg, config, keyframe, self._max_width)
        except (av.FFmpegError, ValueError):
            log.warning("thumbnail: could not render a %dx%d keyframe", config.width, config.height)
        finally:
            self._rendered_keyframe, self._rendered_at = keyframe, now
            self._render = None
        return self._jpeg
