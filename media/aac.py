"""AAC AudioSpecificConfig parsing (ISO 14496-3): what the publisher's audio is."""

from __future__ import annotations

from dataclasses import dataclass

from media.errors import MediaFormatError
from media.h264 import BitReader

SAMPLE_RATES = (
    96000,
    88200,
    64000,
    48000,
    44100,
    32000,
    24000,
    22050,
    16000,
    12000,
    11025,
    8000,
    7350,
)
EXPLICIT_RATE_INDEX = 15
CHANNELS_BY_CONFIG = (0, 1, 2, 3, 4, 5, 6, 8)
SBR_OBJECT_TYPES = (5, 29)  # HE-AAC v1/v2: the output rate is the extension rate


@dataclass(frozen=True, slots=True)
class AudioSpecificConfig:
    object_type: int
    sample_rate: int
    channels: int


def _object_type(reader: BitReader) -> int:
    object_type = reader.bits(5)
    return 32 + reader.bits(6) if object_type == 31 else object_type


def _sample_rate(reader: BitReader) -> int:
    index = reader.bits(4)
    if index == EXPLICIT_RATE_INDEX:
        rate = reader.bits(24)
    elif index < len(SAMPLE_RATES):
        rate = SAMPLE_RATES[index]
    else:
        raise MediaFormatError("reserved AAC sampling frequency index")
    if rate == 0:
        raise MediaFormatError("AAC sample rate 0")
    return rate


def parse_audio_specific_config(asc: bytes) -> AudioSpecificConfig:
    reader = BitReader(asc)
    object_type = _object_type(reader)
    if object_type == 0:
        raise MediaFormatError("AAC object type 0")
    sample_rate = _sample_rate(reader)
    channel_config = reader.bits(4)
    if channel_config >= len(CHANNELS_BY_CONFIG):
        raise MediaFormatError("reserved AAC channel configuration")
    if object_type in SBR_OBJECT_TYPES:
        sample_rate = _sample_rate(reader)
    return AudioSpecificConfig(object_type, sample_rate, CHANNELS_BY_CONFIG[channel_config])
