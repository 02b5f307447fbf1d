"""The internal relay's wire format: a stream's WebRTC track as bytes, between replicas.

An edge replica that does not ingest a stream pulls the ingesting replica's WebRTC
track (B-frame-free H.264 and the Opus transcoded once) over one HTTP response and
feeds its own stream hub with it, so nothing is decoded or re-encoded on the way. The
body is a greeting (magic and version), then one record per packet, from the cached
GOP on:

    kind (1 byte: 1 video, 2 Opus) | flags (1 byte: 1 = keyframe) |
    two signed 64-bit times (video: dts, pts; Opus: timestamp, samples) |
    payload length (32-bit) | payload

Sans-IO, as the RTMP and FLV parsers are: `encode` gives bytes, `RelayDecoder.feed`
takes any slicing of them and gives packets, refusing what is not a relay stream.
"""

from __future__ import annotations

import struct

from media.packets import OpusFrame, VideoFrame

MAGIC = b"SCRELAY"
VERSION = 1
GREETING = struct.Struct("!7sB")  # magic, version
RECORD = struct.Struct("!BBqqI")
VIDEO, OPUS = 1, 2
KEYFRAME = 1
MAX_PAYLOAD = 8 * 1024 * 1024  # a 4K keyframe is well under this
CONTENT_TYPE = "application/x-streamcart-relay"

RelayedPacket = VideoFrame | OpusFrame


class RelayFormatError(ValueError):
    """The bytes are not a relay stream this version reads."""


def greeting() -> bytes:
    return GREETING.pack(MAGIC, VERSION)


def encode(packet: RelayedPacket) -> bytes:
    if isinstance(packet, VideoFrame):
        head = RECORD.pack(
            VIDEO, KEYFRAME if packet.keyframe else 0, packet.dts, packet.pts, len(packet.data)
        )
    else:
        head = RECORD.pack(OPUS, 0, packet.timestamp, packet.samples, len(packet.data))
    return head + packet.data


class RelayDecoder:
    """Feed it the body as it arrives, in any slices."""

    def __init__(self) -> None:
        self._greeted = False
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[RelayedPacket]:
        self._buffer += data
        packets: list[RelayedPacket] = []
        if not self._greeted and not self._read_greeting():
            return packets
        while len(self._buffer) >= RECORD.size:
            kind, flags, first, second, size = RECORD.unpack_from(self._buffer)
            if kind not in (VIDEO, OPUS) or size > MAX_PAYLOAD:
                raise RelayFormatError(f"bad record: kind {kind}, {size} bytes")
            end = RECORD.size + size
            if len(self._buffer) < end:
                break
            payload = bytes(self._buffer[RECORD.size : end])
            del self._buffer[:end]
            if kind == VIDEO:
                packets.append(VideoFrame(payload, bool(flags & KEYFRAME), first, second))
            else:
                packets.append(OpusFrame(payload, first, second))
        return packets

    def _read_greeting(self) -> bool:
        if len(self._buffer) < GREETING.size:
            if not MAGIC.startswith(bytes(self._buffer[: len(MAGIC)])):
                raise RelayFormatError("not a relay stream")
            return False
        magic, version = GREETING.unpack_from(self._buffer)
        if magic != MAGIC or version != VERSION:
            raise RelayFormatError(f"not a version {VERSION} relay stream")
        del self._buffer[: GREETING.size]
        self._greeted = True
        return True
