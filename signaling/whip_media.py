"""A WHIP publisher's encoded frames in the stream hub's terms.

H.264 goes in as the FLV video tags an RTMP publisher would send (an AVC sequence
header built from the SPS/PPS in band, then length-prefixed access units), so the hub
parses it once as it does RTMP's and everything downstream (health, recording,
thumbnails, the WebRTC track) sees the same packets. Opus goes in as it came. Both
tracks' RTP clocks start where their first frame arrived on the server's clock, in
milliseconds (the hub's unit): good enough to keep them in step without RTCP sender
reports.
"""

from __future__ import annotations

import asyncio

from media.h264 import NAL_AUD, NAL_IDR, NAL_PPS, NAL_SPS, nal_type, split_annexb
from media.packets import OpusFrame

VIDEO_CLOCK_RATE = 90_000
OPUS_CLOCK_RATE = 48_000
DEFAULT_OPUS_SAMPLES = 960  # 20 ms, what browsers and OBS send
AVC_KEY, AVC_INTER, AVC_CODEC = 0x10, 0x20, 0x07
AVC_SEQUENCE_HEADER, AVC_NALU = 0, 1
OUT_OF_BAND = (NAL_SPS, NAL_PPS, NAL_AUD)


def avcc_record(sps: tuple[bytes, ...], pps: tuple[bytes, ...]) -> bytes:
    """The AVCDecoderConfigurationRecord for these parameter sets (4-byte lengths)."""
    first = sps[0]
    record = bytearray((1, first[1], first[2], first[3], 0xFF, 0xE0 | len(sps)))
    for nal in sps:
        record += len(nal).to_bytes(2, "big") + nal
    record.append(len(pps))
    for nal in pps:
        record += len(nal).to_bytes(2, "big") + nal
    return bytes(record)


class H264Tags:
    """Annex-B access units to FLV video tag bodies; nothing before the first SPS/PPS
    (a decoder could not use it: the publisher is asked for a keyframe instead)."""

    def __init__(self) -> None:
        self._parameter_sets: tuple[tuple[bytes, ...], tuple[bytes, ...]] | None = None

    @property
    def configured(self) -> bool:
        return self._parameter_sets is not None

    def tags(self, access_unit: bytes) -> list[bytes]:
        nals = split_annexb(access_unit)
        types = [nal_type(nal) for nal in nals]
        sps = tuple(nal for nal, kind in zip(nals, types, strict=True) if kind == NAL_SPS)
        pps = tuple(nal for nal, kind in zip(nals, types, strict=True) if kind == NAL_PPS)
        out = []
        if sps and pps and (sps, pps) != self._parameter_sets:
            self._parameter_sets = (sps, pps)
            header = bytes((AVC_KEY | AVC_CODEC, AVC_SEQUENCE_HEADER, 0, 0, 0))
            out.append(header + avcc_record(sps, pps))
        body = b"".join(
            len(nal).to_bytes(4, "big") + nal
            for nal, kind in zip(nals, types, strict=True)
            if kind not in OUT_OF_BAND
        )
        if self._parameter_sets is None or not body:
            return out
        frame_type = AVC_KEY if NAL_IDR in types else AVC_INTER
        out.append(bytes((frame_type | AVC_CODEC, AVC_NALU, 0, 0, 0)) + body)
        return out


def opus_samples(packet: bytes) -> int:
    """The packet's duration in 48 kHz samples, from its TOC byte (RFC 6716, 3.1)."""
    if not packet:
        return DEFAULT_OPUS_SAMPLES
    config, code = packet[0] >> 3, packet[0] & 0x03
    if config < 12:  # SILK: 10, 20, 40, 60 ms
        per_frame = (480, 960, 1920, 2880)[config % 4]
    elif config < 16:  # hybrid: 10, 20 ms
        per_frame = (480, 960)[config % 2]
    else:  # CELT: 2.5, 5, 10, 20 ms
        per_frame = (120, 240, 480, 960)[config % 4]
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        frames = packet[1] & 0x3F if len(packet) > 1 else 1
    return per_frame * max(frames, 1)


class TrackClock:
    """One track's RTP timestamps (counted from its first frame) in server milliseconds,
    starting where that first frame arrived since `origin` (a loop time)."""

    def __init__(self, origin: float, clock_rate: int) -> None:
        self._origin = origin
        self._rate = clock_rate
        self._start_ms: float | None = None

    def ms(self, rtp_timestamp: int) -> int:
        if self._start_ms is None:
            self._start_ms = (asyncio.get_running_loop().time() - self._origin) * 1000
        return round(self._start_ms + rtp_timestamp * 1000 / self._rate)


def opus_frame(packet: bytes, timestamp_ms: int) -> OpusFrame:
    return OpusFrame(packet, timestamp_ms, opus_samples(packet))
