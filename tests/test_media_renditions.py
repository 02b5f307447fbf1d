"""The B-frame fallback's output: a ladder no larger than the source, a start that a
small server keeps up with, steps down when re-encoding takes too much of real time
and back up when it is calm; and the real re-encode halving 60 fps to 30."""

from __future__ import annotations

import itertools

import av
import pytest

from media.packets import VideoFrame
from media.renditions import (
    HOLD_AFTER_STEP_DOWN_MS,
    STEP_UP_AFTER_WINDOWS,
    WINDOW_MS,
    LoadMeter,
    Rendition,
    first_rendition,
    ladder_for,
)
from media.transcode import BframeFreeH264
from tests.media_support import depacketize, write_test_flv

FRAME_MS = 1000 / 60


def sizes(ladder: list[Rendition]) -> list[tuple[int, int, float]]:
    return [(r.width, r.height, r.frame_rate) for r in ladder]


def test_the_ladder_starts_at_the_source_and_never_exceeds_it():
    assert sizes(ladder_for(1920, 1080, 60)) == [
        (1920, 1080, 60),
        (1920, 1080, 30),
        (1280, 720, 60),
        (1280, 720, 30),
        (960, 540, 30),
        (640, 360, 30),
    ]
    assert sizes(ladder_for(1280, 720, 30)) == [(1280, 720, 30), (960, 540, 30), (640, 360, 30)]
    assert sizes(ladder_for(320, 240, 25)) == [(320, 240, 25)]
    portrait = ladder_for(1080, 1920, 30)  # a phone held upright: heights are the long side
    assert all(r.width % 2 == 0 and r.width <= 1080 for r in portrait)


def test_a_1080p60_source_starts_at_720p30_and_a_small_one_as_it_is():
    first = first_rendition(ladder_for(1920, 1080, 60))
    assert (first.width, first.height, first.frame_rate) == (1280, 720, 30)
    assert "1920x1080 60 fps" in first.reason
    small = first_rendition(ladder_for(640, 360, 30))
    assert (small.width, small.height) == (640, 360)
    assert small.reason == "the source's own size and rate"


def run(meter: LoadMeter, load: float, windows: int, start_ms: int = 0) -> int:
    """Feed `windows` windows of 60 fps frames, each taking `load` of its time."""
    stream_ms = start_ms
    for _ in range(int(windows * WINDOW_MS / FRAME_MS) + 2):
        stream_ms += FRAME_MS
        meter.observe(load * FRAME_MS / 1000, round(stream_ms))
    return round(stream_ms)


def test_a_busy_reencode_steps_down_a_rung_per_window_and_says_why():
    meter = LoadMeter(ladder_for(1920, 1080, 60))
    run(meter, 0.95, 1)
    assert (meter.current.height, meter.current.frame_rate) == (540, 30)
    assert meter.current.reason.startswith("1280x720 30 fps took 9")  # 95%, give or take
    assert meter.current.reason.endswith("% of real time to re-encode")
    run(meter, 0.95, 5)
    assert meter.current.height == 360  # the bottom rung: nowhere further to go
    assert meter.load == pytest.approx(0.95, abs=0.02)


def test_a_calm_reencode_steps_up_but_not_soon_after_a_step_down():
    meter = LoadMeter(ladder_for(1920, 1080, 60))
    at = run(meter, 0.95, 1)  # down to 540p30
    at = run(meter, 0.01, STEP_UP_AFTER_WINDOWS + 2, at)
    assert meter.current.height == 540  # held: it stepped down moments ago
    run(meter, 0.01, HOLD_AFTER_STEP_DOWN_MS / WINDOW_MS, at)
    assert meter.current.height > 540
    assert "took only 1% of real time" in meter.current.reason


def test_a_load_that_keeps_up_keeps_the_output():
    meter = LoadMeter(ladder_for(1920, 1080, 60))
    first = meter.current
    run(meter, 0.5, 10)  # busy, but the larger rung would cost twice as much
    assert meter.current == first


@pytest.fixture(scope="module")
def source_60fps(tmp_path_factory: pytest.TempPathFactory) -> list[VideoFrame]:
    path = tmp_path_factory.mktemp("renditions") / "60fps.flv"
    write_test_flv(path, seconds=2, size="640x360", fps=60, gop=60, bframes=2, audio=False)
    return [p for p in depacketize(path) if isinstance(p, VideoFrame)]


def test_the_reencode_keeps_every_other_frame_of_60_fps_at_30(source_60fps: list[VideoFrame]):
    reencode = BframeFreeH264(frame_rate=60)
    reencode._meter = LoadMeter(ladder_for(640, 360, 60))
    reencode._meter.current = Rendition(640, 360, 30.0, "a test's choice")
    out = [frame for source in source_60fps for frame in reencode(source)]
    assert len(source_60fps) == 120
    assert 55 <= len(out) <= 61
    spacing = {b.pts - a.pts for a, b in itertools.pairwise(out)}
    assert spacing <= {33, 34}, spacing
    assert out[0].keyframe and all(f.pts == f.dts for f in out)


def test_the_reencode_follows_a_step_down_with_a_keyframe_of_the_new_size(
    source_60fps: list[VideoFrame],
):
    reencode = BframeFreeH264(frame_rate=60)
    before = [frame for source in source_60fps[:60] for frame in reencode(source)]
    assert reencode.rendition is not None and reencode.rendition.height == 360
    assert reencode._meter is not None
    reencode._meter.current = Rendition(320, 180, 30.0, "stepped down")
    after = [frame for source in source_60fps[60:] for frame in reencode(source)]
    assert before and after and after[0].keyframe
    decoder = av.CodecContext.create("h264", "r")  # a viewer's decoder, across the switch
    pictures = [p for f in before + after for p in decoder.decode(av.Packet(f.data))]
    assert {(p.width, p.height) for p in pictures} == {(640, 360), (320, 180)}
