"""FLV audio/video tag bodies (what RTMP media messages carry) -> typed packets.

Sans-IO and stateful per stream: the AVC sequence header and the AAC config arrive
once and give meaning to every later frame, so one `FlvDepacketizer` lives as long as
its stream.
"""

from __future__ import annotations

from media.aac import parse_audio_specific_config
from media.errors import MediaFormatError
from media.h264 import parameter_sets_annexb, parse_avcc, parse_sps, split_avcc, to_annexb
from media.packets import AudioConfig, AudioFrame, Packet, VideoConfig, VideoFrame

__all__ = ["FlvDepacketizer", "MediaFormatError"]

VIDEO_CODEC_AVC = 7
FRAME_TYPE_KEY = 1
FRAME_TYPE_COMMAND = 5
AVC_SEQUENCE_HEADER = 0
AVC_NALU = 1
AVC_END_OF_SEQUENCE = 2
ENHANCED_VIDEO_HEADER = 0x80

AUDIO_FORMAT_AAC = 10
AAC_SEQUENCE_HEADER = 0
AAC_RAW = 1

VIDEO_CODEC_NAMES = {
    2: "Sorenson H.263",
    3: "Screen video",
    4: "VP6",
    5: "VP6 alpha",
    6: "Screen 2",
}
AUDIO_FORMAT_NAMES = {
    0: "PCM",
    1: "ADPCM",
    2: "MP3",
    3: "PCM little-endian",
    4: "Nellymoser 16 kHz",
    5: "Nellymoser 8 kHz",
    6: "Nellymoser",
    7: "G.711 A-law",
    8: "G.711 mu-law",
    9: "enhanced audio (Opus, FLAC, AC-3...)",
    11: "Speex",
    14: "MP3 8 kHz",
}


def _signed_24(data: bytes) -> int:
    value = int.from_bytes(data, "big")
    return value - (1 << 24) if value & 0x800000 else value


class FlvDepacketizer:
    """Turns one stream's tag bodies into packets; frames before their config are dropped.

    `unsupported_video_codec` / `unsupported_audio_codec` name a codec the publisher
    sent that the server cannot use, so stream health can tell the streamer.
    """

    def __init__(self) -> None:
        self.video_config: VideoConfig | None = None
        self.audio_config: AudioConfig | None = None
        self.unsupported_video_codec: str | None = None
        self.unsupported_audio_codec: str | None = None
        self._parameter_sets = b""

    def video(self, timestamp_ms: int, payload: bytes) -> list[Packet]:
        if not payload:
            raise MediaFormatError("empty video tag")
        header = payload[0]
        if header & ENHANCED_VIDEO_HEADER:
            fourcc = bytes(payload[1:5]).decode("latin-1") or "unknown"
            self.unsupported_video_codec = f"enhanced RTMP {fourcc!r}"
            return []
        frame_type, codec = header >> 4, header & 0x0F
        if codec != VIDEO_CODEC_AVC:
            self.unsupported_video_codec = VIDEO_CODEC_NAMES.get(codec, f"codec id {codec}")
            return []
        if frame_type == FRAME_TYPE_COMMAND:
            return []
        if len(payload) < 5:
            raise MediaFormatError("AVC video tag shorter than its header")
        packet_type = payload[1]
        if packet_type == AVC_SEQUENCE_HEADER:
            return [self._video_config(bytes(payload[5:]))]
        if packet_type == AVC_NALU:
            return self._video_frame(timestamp_ms, payload, frame_type == FRAME_TYPE_KEY)
        if packet_type == AVC_END_OF_SEQUENCE:
            return []
        raise MediaFormatError(f"unknown AVC packet type {packet_type}")

    def audio(self, timestamp_ms: int, payload: bytes) -> list[Packet]:
        if not payload:
            raise MediaFormatError("empty audio tag")
        sound_format = payload[0] >> 4
        if sound_format != AUDIO_FORMAT_AAC:
            self.unsupported_audio_codec = AUDIO_FORMAT_NAMES.get(
                sound_format, f"format {sound_format}"
            )
            return []
        if len(payload) < 2:
            raise MediaFormatError("AAC audio tag shorter than its header")
        packet_type = payload[1]
        if packet_type == AAC_SEQUENCE_HEADER:
            asc = bytes(payload[2:])
            parsed = parse_audio_specific_config(asc)
            self.audio_config = AudioConfig(asc, parsed.sample_rate, parsed.channels)
            return [self.audio_config]
        if packet_type != AAC_RAW:
            raise MediaFormatError(f"unknown AAC packet type {packet_type}")
        if self.audio_config is None or len(payload) == 2:
            return []
        return [AudioFrame(bytes(payload[2:]), timestamp_ms)]

    def _video_config(self, avcc: bytes) -> VideoConfig:
        record = parse_avcc(avcc)
        sps = parse_sps(record.sps[0])
        self.video_config = VideoConfig(
            avcc=avcc,
            sps=record.sps,
            pps=record.pps,
            nal_length_size=record.nal_length_size,
            profile=sps.profile,
            level=sps.level,
            width=sps.width,
            height=sps.height,
        )
        self._parameter_sets = parameter_sets_annexb(record.sps, record.pps)
        return self.video_config

    def _video_frame(self, timestamp_ms: int, payload: bytes, key: bool) -> list[Packet]:
        config = self.video_config
        if config is None:
            return []
        nals = split_avcc(memoryview(payload)[5:], config.nal_length_size)
        if not nals:
            return []
        data, keyframe = to_annexb(nals, self._parameter_sets, flagged_key=key)
        pts = timestamp_ms + _signed_24(payload[2:5])
        return [VideoFrame(data, keyframe, timestamp_ms, pts)]
