"""The typed packets a stream is made of once its FLV tags are parsed.

Every stage after ingest (the stream hub, WebRTC peers, recording, thumbnails, stream
health) speaks these types, never raw FLV, so the RTMP details stay in one place.
Timestamps are milliseconds on the publisher's clock, as RTMP carries them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VideoConfig:
    """The H.264 decoder configuration (an AVC sequence header)."""

    avcc: bytes  # the AVCDecoderConfigurationRecord as received, for muxers
    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]
    nal_length_size: int
    profile: str  # "Baseline", "Main", "High", ...
    level: str  # "3.1", "4.0", ...
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class VideoFrame:
    """One access unit in Annex-B form; an IDR frame carries SPS/PPS in front of it."""

    data: bytes
    keyframe: bool
    dts: int
    pts: int  # dts + composition time offset; differs from dts only with B-frames

    @property
    def composition_offset(self) -> int:
        return self.pts - self.dts


@dataclass(frozen=True, slots=True)
class AudioConfig:
    """The AAC AudioSpecificConfig and what it says."""

    asc: bytes
    sample_rate: int
    channels: int


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """One raw AAC frame (no ADTS header)."""

    data: bytes
    timestamp: int


@dataclass(frozen=True, slots=True)
class OpusFrame:
    """One Opus packet for WebRTC: 60 ms at 48 kHz when transcoded once per stream from
    AAC, or as a WHIP publisher sent it (20 ms, usually)."""

    data: bytes
    timestamp: int  # milliseconds, on the same clock as the video
    samples: int


Packet = VideoConfig | VideoFrame | AudioConfig | AudioFrame | OpusFrame
