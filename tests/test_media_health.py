"""Stream health measured on real ffmpeg-encoded streams, and its advice thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from media.health import HealthMeter, StreamHealth
from media.packets import AudioConfig, AudioFrame, Packet, VideoConfig, VideoFrame
from tests.media_support import depacketize, write_test_flv


def _timestamp(packet: Packet) -> int:
    if isinstance(packet, VideoFrame):
        return packet.dts
    if isinstance(packet, AudioFrame):
        return packet.timestamp
    return 0


def measure(packets: list[Packet], silent_for: float = 0.0, **report_facts) -> StreamHealth:
    """Feed a stream as if it arrived in real time (the clock follows the timestamps), then
    ask for the report `silent_for` seconds after the last packet."""
    meter = HealthMeter()
    now = 0.0
    for packet in packets:
        now = max(now, _timestamp(packet) / 1000)
        meter.observe(packet, now)
    return meter.report(now + silent_for, **report_facts)


def codes(health: StreamHealth) -> set[str]:
    return {warning.code for warning in health.warnings}


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("health")


def test_clean_stream_has_measurements_and_no_warnings(media_dir):
    flv = write_test_flv(media_dir / "clean.flv", seconds=4, gop=60, bframes=0)
    health = measure(depacketize(flv))

    assert health.warnings == []
    assert (health.video_codec, health.width, health.height) == ("h264", 320, 240)
    assert health.profile in {"High", "Main", "Constrained Baseline", "Baseline"}
    assert health.level
    assert health.bframes is False
    assert health.keyframe_interval_s == pytest.approx(2.0, abs=0.1)
    assert health.frame_rate == pytest.approx(30, abs=1)
    assert 250 < health.video_kbps < 1000  # encoder target 500k
    assert (health.audio_codec, health.audio_sample_rate, health.audio_channels) == (
        "aac",
        44_100,
        2,
    )
    assert 32 < health.audio_kbps < 128  # encoder target 64k
    assert health.uptime_s == pytest.approx(4, abs=0.2)
    assert json.loads(json.dumps(health.as_dict()))["width"] == 320


@pytest.mark.parametrize("silent_for", [1.0, 5.0])
def test_a_publisher_gone_silent_reads_zero_and_is_warned(media_dir, silent_for):
    """The rates are measured on the publisher's clock, which stops with it: without the
    wall clock the last figures would be reported as the stream's for as long as asked."""
    flv = write_test_flv(media_dir / "clean.flv", seconds=4, gop=60, bframes=0)
    health = measure(depacketize(flv), silent_for=silent_for)

    if silent_for < 2:
        assert health.warnings == [] and health.video_kbps > 250
        return
    assert (health.video_kbps, health.audio_kbps, health.frame_rate) == (0.0, 0.0, 0.0)
    assert [w.code for w in health.warnings] == ["no-media"]
    assert "5 s" in health.warnings[0].message and "OBS" in health.warnings[0].message
    assert health.width == 320  # what was configured is still known


def test_long_keyframe_interval_is_reported_with_obs_advice(media_dir):
    flv = write_test_flv(media_dir / "gop300.flv", seconds=6, gop=300, bframes=0)
    health = measure(depacketize(flv))

    assert codes(health) == {"keyframe-interval"}
    assert health.keyframe_interval_s > 5
    (warning,) = health.warnings
    assert f"Keyframe interval is {health.keyframe_interval_s:.0f} s" in warning.message
    assert "OBS" in warning.message


def test_bframes_are_detected_and_explained(media_dir):
    flv = write_test_flv(media_dir / "bframes.flv", seconds=3, gop=60, bframes=2)
    health = measure(depacketize(flv))

    assert health.bframes is True
    assert codes(health) == {"b-frames"}
    assert "bframes=0" in health.warnings[0].message


def test_poor_stream_gets_frame_rate_bitrate_and_audio_advice(media_dir):
    flv = write_test_flv(
        media_dir / "poor.flv", seconds=4, size="640x360", fps=15, audio=False, video_bitrate="30k"
    )
    health = measure(depacketize(flv))

    assert health.frame_rate == pytest.approx(15, abs=1)
    assert health.audio_codec is None
    assert codes(health) == {"frame-rate-low", "bitrate-low", "no-audio"}


def _config(width: int, height: int) -> VideoConfig:
    return VideoConfig(
        avcc=b"", sps=(), pps=(), nal_length_size=4, profile="High", level="5.1",
        width=width, height=height,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("width", "height", "warned"),
    [(2560, 1440, True), (1920, 1080, False), (1080, 1920, False), (1440, 2560, True)],
)
def test_resolution_above_1080p_is_warned_in_either_orientation(width, height, warned):
    meter = HealthMeter()
    meter.observe(_config(width, height), 0.0)
    assert ("resolution-high" in codes(meter.report(1.0))) is warned


@pytest.mark.parametrize(("rate", "warned"), [(22_050, True), (44_100, False), (48_000, False)])
def test_unusual_audio_sample_rate_is_warned(rate, warned):
    meter = HealthMeter()
    meter.observe(AudioConfig(asc=b"", sample_rate=rate, channels=2), 0.0)
    assert ("audio-sample-rate" in codes(meter.report(1.0))) is warned


def test_unsupported_codecs_and_drops_reported_by_ingest_are_included():
    health = HealthMeter().report(
        0.0, unsupported_video_codec="VP6", unsupported_audio_codec="MP3", dropped_frames=7
    )
    assert {"video-codec", "audio-codec"} <= codes(health)
    assert "no-audio" not in codes(health)
    assert health.dropped_frames == 7
    assert "VP6" in health.warnings[0].message


@pytest.mark.parametrize("behind", [False, True])
def test_codec_work_that_falls_behind_is_warned_with_the_obs_settings_that_avoid_it(behind):
    health = HealthMeter().report(0.0, transcode_behind=behind)
    assert ("transcode-behind" in codes(health)) is behind
    if behind:
        assert "bframes=0" in health.warnings[0].message


def _frame(dts: int, *, keyframe: bool) -> VideoFrame:
    return VideoFrame(b"\x00" * 1000, keyframe=keyframe, dts=dts, pts=dts)


def test_publisher_clock_restart_does_not_corrupt_rates():
    meter = HealthMeter()
    for second in range(10):
        frame = _frame(second * 1000, keyframe=second % 2 == 0)
        meter.observe(frame, float(second))
    for second in range(3):
        frame = _frame(second * 1000, keyframe=second != 1)
        meter.observe(frame, 10.0 + second)
    health = meter.report(13.0)
    assert health.video_kbps == pytest.approx(8, abs=0.1)  # 1000 bytes a second
    assert health.keyframe_interval_s == pytest.approx(2.0)
    assert health.uptime_s == 13.0
