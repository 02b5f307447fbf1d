"""FLV tag bodies from real ffmpeg output -> typed packets, checked against PyAV's demuxer."""

from __future__ import annotations

import contextlib
from pathlib import Path

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.flv import FlvDepacketizer, MediaFormatError
from media.h264 import NAL_IDR, NAL_PPS, NAL_SPS, START_CODE, split_annexb
from media.packets import AudioConfig, AudioFrame, VideoConfig, VideoFrame
from tests.media_support import TAG_AUDIO, TAG_VIDEO, depacketize, read_flv_tags, write_test_flv


@pytest.fixture(scope="module")
def plain_flv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_flv(tmp_path_factory.mktemp("flv") / "plain.flv", gop=15)


@pytest.fixture(scope="module")
def bframes_flv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_flv(tmp_path_factory.mktemp("flv") / "bframes.flv", bframes=2)


PACKET_TYPES = (VideoConfig, VideoFrame, AudioConfig, AudioFrame)
AVC_SEQUENCE_HEADER = b"\x17\x00\x00\x00\x00"
FUZZ_HEADERS = [
    b"",
    b"\x17",
    b"\x27\x01",
    b"\xaf",
    b"\xaf\x00",
    AVC_SEQUENCE_HEADER,
    AVC_SEQUENCE_HEADER + b"\x01\x64\x00\x1f\xff\xe1",  # avcC up to the first SPS length
]


def demuxed(path: Path, kind: str) -> list[av.Packet]:
    """PyAV's own reading of the file: the reference our depacketizer must agree with."""
    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[0]
        return [packet for packet in container.demux(stream) if packet.size]


def stream_params(path: Path, kind: str) -> dict[str, object]:
    with av.open(str(path)) as container:
        context = getattr(container.streams, kind)[0].codec_context
        if kind == "video":
            return {"width": context.width, "height": context.height, "profile": context.profile}
        return {"sample_rate": context.sample_rate, "channels": context.channels}


def video_frames(path: Path) -> list[VideoFrame]:
    return [packet for packet in depacketize(path) if isinstance(packet, VideoFrame)]


def test_sequence_header_gives_the_stream_parameters(plain_flv: Path) -> None:
    packets = depacketize(plain_flv)
    config = packets[0]
    assert isinstance(config, VideoConfig)
    expected = stream_params(plain_flv, "video")
    assert (config.width, config.height) == (expected["width"], expected["height"]) == (320, 240)
    assert config.profile == expected["profile"]
    assert config.level == f"{config.avcc[3] // 10}.{config.avcc[3] % 10}"
    assert config.nal_length_size == 4
    assert config.sps[0][0] & 0x1F == NAL_SPS and config.pps[0][0] & 0x1F == NAL_PPS


@pytest.mark.parametrize(
    ("size", "pix_fmt"), [("330x186", "yuv420p"), ("322x182", "yuv444p"), ("338x190", "yuv422p")]
)
def test_resolution_honours_frame_cropping_and_high_profile_chroma(
    tmp_path: Path, size: str, pix_fmt: str
) -> None:
    path = tmp_path / "cropped.flv"
    write_test_flv(path, seconds=0.2, size=size, audio=False, pix_fmt=pix_fmt)
    config = depacketize(path)[0]
    assert isinstance(config, VideoConfig)
    expected = stream_params(path, "video")
    assert f"{config.width}x{config.height}" == size
    assert (config.width, config.height, config.profile) == (
        expected["width"],
        expected["height"],
        expected["profile"],
    )


def test_every_idr_is_annexb_with_parameter_sets_in_front(plain_flv: Path) -> None:
    frames = video_frames(plain_flv)
    keyframes = [frame for frame in frames if frame.keyframe]
    assert len(keyframes) >= 3
    for frame in frames:
        assert frame.data.startswith(START_CODE)
        types = [nal[0] & 0x1F for nal in split_annexb(frame.data)]
        assert (NAL_IDR in types) == frame.keyframe
        if frame.keyframe:
            before_idr = types[: types.index(NAL_IDR)]
            assert NAL_SPS in before_idr and NAL_PPS in before_idr


@pytest.mark.parametrize("fixture", ["plain_flv", "bframes_flv"])
def test_timestamps_match_the_demuxer(fixture: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(fixture)
    frames = video_frames(path)
    reference = demuxed(path, "video")
    assert [(frame.dts, frame.pts) for frame in frames] == [(p.dts, p.pts) for p in reference]
    has_offsets = any(frame.composition_offset for frame in frames)
    assert has_offsets == (fixture == "bframes_flv")


def test_annexb_frames_decode_without_extradata(plain_flv: Path) -> None:
    decoder = av.CodecContext.create("h264", "r")
    decoded = 0
    for frame in video_frames(plain_flv):
        decoded += len(decoder.decode(av.Packet(frame.data)))
    decoded += len(decoder.decode(None))
    assert decoded == len(video_frames(plain_flv))


def test_aac_config_and_frames_match_the_demuxer(plain_flv: Path) -> None:
    packets = depacketize(plain_flv)
    config = next(packet for packet in packets if isinstance(packet, AudioConfig))
    expected = stream_params(plain_flv, "audio")
    assert (config.sample_rate, config.channels) == (expected["sample_rate"], expected["channels"])
    frames = [packet for packet in packets if isinstance(packet, AudioFrame)]
    reference = demuxed(plain_flv, "audio")
    assert [(f.timestamp, f.data) for f in frames] == [(p.pts, bytes(p)) for p in reference]


def test_frames_before_their_config_are_dropped(plain_flv: Path) -> None:
    tags = list(read_flv_tags(plain_flv))
    video = [tag for tag in tags if tag.tag_type == TAG_VIDEO]
    audio = [tag for tag in tags if tag.tag_type == TAG_AUDIO]
    depacketizer = FlvDepacketizer()
    assert depacketizer.video(video[1].timestamp_ms, video[1].body) == []
    assert depacketizer.audio(audio[1].timestamp_ms, audio[1].body) == []
    assert isinstance(depacketizer.video(0, video[0].body)[0], VideoConfig)
    assert isinstance(depacketizer.video(video[1].timestamp_ms, video[1].body)[0], VideoFrame)


def test_unsupported_codecs_are_reported_not_parsed() -> None:
    depacketizer = FlvDepacketizer()
    assert depacketizer.video(0, bytes([0x14, 0, 0, 0])) == []  # keyframe, VP6
    assert depacketizer.audio(0, bytes([0x2F, 0xFF, 0xFB])) == []  # MP3
    assert depacketizer.video(0, b"\x90hvc1\x00") == []  # enhanced RTMP HEVC
    assert depacketizer.unsupported_video_codec is not None
    assert "hvc1" in depacketizer.unsupported_video_codec
    assert depacketizer.unsupported_audio_codec == "MP3"


@pytest.mark.parametrize(
    "body",
    [
        b"\x17",  # AVC keyframe without packet type
        b"\x17\x00\x00\x00\x00",  # empty sequence header
        b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f\xff\xe1\x00\x40\x67",  # SPS longer than record
        b"\x17\x07\x00\x00\x00",  # unknown AVC packet type
    ],
)
def test_malformed_video_raises_media_format_error(body: bytes) -> None:
    with pytest.raises(MediaFormatError):
        FlvDepacketizer().video(0, body)


def test_truncated_frames_and_configs_raise_media_format_error(plain_flv: Path) -> None:
    tags = [tag for tag in read_flv_tags(plain_flv) if tag.tag_type == TAG_VIDEO]
    depacketizer = FlvDepacketizer()
    depacketizer.video(0, tags[0].body)
    with pytest.raises(MediaFormatError):
        depacketizer.video(tags[1].timestamp_ms, tags[1].body[:-1])
    with pytest.raises(MediaFormatError):
        FlvDepacketizer().video(0, tags[0].body[:12])
    with pytest.raises(MediaFormatError):
        FlvDepacketizer().audio(0, b"\xaf\x00\x00")  # AAC config with object type 0


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=64), header=st.sampled_from(FUZZ_HEADERS))
def test_arbitrary_bytes_parse_or_raise_media_format_error(body: bytes, header: bytes) -> None:
    depacketizer = FlvDepacketizer()
    for feed in (depacketizer.video, depacketizer.audio):
        with contextlib.suppress(MediaFormatError):
            assert all(isinstance(packet, PACKET_TYPES) for packet in feed(0, header + body))


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_corrupted_real_tags_parse_or_raise_media_format_error(
    data: st.DataObject, plain_flv: Path
) -> None:
    tags = [tag for tag in read_flv_tags(plain_flv) if tag.tag_type in (TAG_AUDIO, TAG_VIDEO)]
    depacketizer = FlvDepacketizer()
    for tag in tags[:6]:
        body = bytearray(tag.body)
        for _ in range(data.draw(st.integers(0, 4))):
            body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
        body = body[: data.draw(st.integers(0, len(body)))]
        feed = depacketizer.video if tag.tag_type == TAG_VIDEO else depacketizer.audio
        with contextlib.suppress(MediaFormatError):
            packets = feed(tag.timestamp_ms, bytes(body))
            assert all(isinstance(packet, PACKET_TYPES) for packet in packets)
