"""A publisher whose codec config changes mid-stream: HLS players get the new one.

Segments carry no parameter sets (the init segment's avcC and esds have them), so the
segments after a change need an init segment of their own, behind an
EXT-X-DISCONTINUITY. Checked on the segmenter (every playlist along the way, the
window moving past the change, an audio change, a change announced mid-GOP) and end to
end: an RTMP publish at 640x360 stops and publishes again within the grace period at
320x180; each init segment with the segments its EXT-X-MAP covers decodes without an
error at its own size, and hls.js in Chromium plays across the change.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from media.hls.segmenter import Segmenter, init_uri, segment_uri
from media.packets import Packet, VideoConfig, VideoFrame
from tests.media_support import depacketize, write_test_flv
from tests.rtmp_support import run_ffmpeg
from tests.test_hls import START, assert_low_latency_rules, shifted, tags, values
from tests.test_hls_shoppable import chromium_page, installed_hls_js
from tests.test_streaming import eventually, push, show, status

__all__ = ["show"]  # a seller's scheduled session and its stream key

GRACE_SECONDS = 5.0
GAP_MS = 700  # between the two publishers, on the stream's clock
PLAYER_WAIT = 30.0
# Run in hls.js's test page: the frames shown, counted by size in the order they came.
COUNT_FRAME_SIZES = """() => {
  const video = document.querySelector("video");
  window.sizes = [];
  const count = (now, frame) => {
    const size = `${frame.width}x${frame.height}`;
    if (window.sizes.at(-1)?.[0] !== size) window.sizes.push([size, 0]);
    window.sizes.at(-1)[1] += 1;
    video.requestVideoFrameCallback(count);
  };
  video.requestVideoFrameCallback(count);
}"""


@pytest.fixture
def api_settings():
    return {"stream_grace_period": GRACE_SECONDS, "stream_health_interval": 0.5}


@pytest.fixture
def sql_url(tmp_path) -> str:
    """The media path is under test here: SQLite keeps it fast."""
    return f"sqlite:///{tmp_path / 'test.sqlite3'}"


@pytest.fixture(scope="module")
def two_sizes(tmp_path_factory) -> tuple[list[Packet], list[Packet]]:
    """3 s at 640x360 then 3 s at 320x180, keyframes every second, B-frames, AAC."""
    folder = tmp_path_factory.mktemp("sizes")
    large = write_test_flv(folder / "large.flv", seconds=3, size="640x360", bframes=2)
    small = write_test_flv(folder / "small.flv", seconds=3, size="320x180", bframes=2)
    return depacketize(large), depacketize(small)


def reconnected(first: list[Packet], second: list[Packet]) -> list[Packet]:
    """`second` published after `first` and a gap, on one clock, as the hub makes it."""
    last = max(p.dts for p in first if isinstance(p, VideoFrame))
    return first + shifted(second, last + GAP_MS)


def decoded(path: Path) -> tuple[Counter[str], str]:
    """How many video frames of each size a file decodes to, and FFmpeg's errors."""
    command = ["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries"]
    command += ["frame=width,height", "-of", "csv=p=0", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    sizes = Counter(line.strip(",").replace(",", "x") for line in result.stdout.split())
    return sizes, result.stderr


def audio_rate(path: Path) -> int:
    command = ["ffprobe", "-v", "error", "-select_streams", "a", "-show_streams"]
    result = subprocess.run([*command, "-of", "json", str(path)], capture_output=True, text=True)
    return int(json.loads(result.stdout)["streams"][0]["sample_rate"])


def map_runs(text: str) -> list[tuple[str, list[str]]]:
    """Each EXT-X-MAP's init segment and the whole segments it applies to."""
    runs: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("#EXT-X-MAP:"):
            runs.append((tags(line, "#EXT-X-MAP")[0]["URI"], []))
        elif line and not line.startswith("#"):
            runs[-1][1].append(line)
    return runs


def written(segmenter: Segmenter, folder: Path) -> list[Path]:
    """Each init segment with the segments it decodes, as one file."""
    files = []
    for index, init in segmenter.inits.items():
        path = folder / f"run{index}.mp4"
        segments = [s.data for s in segmenter.segments if s.init_index == index]
        path.write_bytes(init + b"".join(segments))
        files.append(path)
    return files


def test_a_new_codec_config_starts_a_segment_with_its_own_init(two_sizes, tmp_path):
    segmenter = Segmenter(now=lambda: START, part_target=0.5)
    checked = 0
    for packet in reconnected(*two_sizes):
        if segmenter.feed(packet) and segmenter.ready:
            assert_low_latency_rules(segmenter.playlist().render())
            checked += 1
    assert checked >= 8
    segmenter.end()
    assert [s.init_index for s in segmenter.segments] == [0, 0, 0, 1, 1, 1]
    assert [s.discontinuity for s in segmenter.segments] == [False] * 3 + [True] + [False] * 2
    assert all(segment.parts[0].independent for segment in segmenter.segments)

    first, second = written(segmenter, tmp_path)
    assert decoded(first) == (Counter({"640x360": 90}), "")
    assert decoded(second) == (Counter({"320x180": 90}), "")

    text = segmenter.playlist(low_latency=False).render()
    assert map_runs(text) == [
        (init_uri(0), [segment_uri(msn) for msn in range(3)]),
        (init_uri(1), [segment_uri(msn) for msn in range(3, 6)]),
    ]
    lines = text.splitlines()
    change = lines.index('#EXT-X-MAP:URI="init-1.mp4"')
    assert lines[change - 1] == "#EXT-X-DISCONTINUITY"
    assert lines[change - 2] == segment_uri(2)
    assert not values(text, "#EXT-X-DISCONTINUITY-SEQUENCE")


def test_the_discontinuity_sequence_keeps_each_segment_number_as_the_window_moves(two_sizes):
    """Its number (discontinuities before it) and its init segment stay the same in
    every playlist that lists it; the change's discontinuity, once out of the window, is
    counted by EXT-X-DISCONTINUITY-SEQUENCE."""
    segmenter = Segmenter(now=lambda: START, window=2.0)
    numbers: dict[int, tuple[int, str]] = {}
    for packet in reconnected(*two_sizes):
        if not (segmenter.feed(packet) and segmenter.ready):
            continue
        text = segmenter.playlist().render()
        assert_low_latency_rules(text)
        sequence = int((values(text, "#EXT-X-DISCONTINUITY-SEQUENCE") or ["0"])[0])
        msn, init = int(values(text, "#EXT-X-MEDIA-SEQUENCE")[0]), ""
        for line in text.splitlines():
            if line == "#EXT-X-DISCONTINUITY":
                sequence += 1
            elif line.startswith("#EXT-X-MAP:"):
                init = tags(line, "#EXT-X-MAP")[0]["URI"]
            elif line == segment_uri(msn):
                assert numbers.setdefault(msn, (sequence, init)) == (sequence, init)
                msn += 1
    assert numbers == {msn: (0, "init.mp4") if msn < 3 else (1, "init-1.mp4") for msn in range(5)}
    segmenter.end()  # the change's segment leaves the window
    text = segmenter.playlist().render()
    assert values(text, "#EXT-X-DISCONTINUITY-SEQUENCE") == ["1"]
    assert "#EXT-X-DISCONTINUITY\n" not in text
    assert tags(text, "#EXT-X-MAP") == [{"URI": "init-1.mp4"}]
    assert list(segmenter.inits) == [1]  # the first one is no longer needed


def test_an_audio_config_change_gets_its_own_init_too(tmp_path):
    """The same video settings (the same SPS/PPS) with AAC at another sample rate."""
    first = write_test_flv(tmp_path / "a.flv", seconds=2, sample_rate=44100)
    second = write_test_flv(tmp_path / "b.flv", seconds=2, sample_rate=48000)
    segmenter = Segmenter(now=lambda: START)
    for packet in reconnected(depacketize(first), depacketize(second)):
        segmenter.feed(packet)
    segmenter.end()
    assert [s.discontinuity for s in segmenter.segments] == [False, False, True, False]
    runs = written(segmenter, tmp_path)
    assert [audio_rate(path) for path in runs] == [44100, 48000]
    assert [decoded(path) for path in runs] == [(Counter({"320x240": 60}), "")] * 2


def test_frames_of_a_new_config_wait_for_its_first_keyframe(two_sizes, tmp_path):
    """A WHIP publisher's new SPS/PPS may come mid-GOP (a lost keyframe): the frames up
    to the next keyframe cannot be decoded, so they are left out and a keyframe asked for."""
    large, small = two_sizes
    config = next(p for p in small if isinstance(p, VideoConfig))
    frames = [i for i, p in enumerate(small) if isinstance(p, VideoFrame)]
    keyframes = [i for i in frames if small[i].keyframe]
    mid_gop = [config, *small[frames[10] :]]
    segmenter = Segmenter(now=lambda: START)
    asked = False
    for packet in reconnected(large, mid_gop):
        segmenter.feed(packet)
        asked = asked or (segmenter.wants_keyframe and segmenter.init_index == 0)
    segmenter.end()
    assert asked
    _, second = written(segmenter, tmp_path)
    left = sum(1 for i in frames if i >= keyframes[1])
    assert decoded(second) == (Counter({"320x180": left}), "")


async def test_a_publisher_back_at_another_size_plays_on_from_a_new_init(api, show, tmp_path):
    live_id, key = show["live"]["id"], show["key"]
    large = write_test_flv(tmp_path / "large.flv", seconds=4, size="640x360", bframes=2)
    small = write_test_flv(tmp_path / "small.flv", seconds=4, size="320x180", bframes=2)
    base = f"/hls/{live_id}"

    code, errors = await run_ffmpeg(push(api, large, key))
    assert code == 0, errors
    assert await status(api, live_id) == "live"  # paused, within the grace period
    code, errors = await run_ffmpeg(push(api, small, key))
    assert code == 0, errors
    await eventually(lambda: status(api, live_id), "ended")
    text = await (await api.get(f"{base}/index.m3u8")).text()
    assert text.rstrip().endswith("#EXT-X-ENDLIST")

    runs = map_runs(text)
    assert [init for init, _ in runs] == ["init.mp4", "init-1.mp4"]
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1
    assert not values(text, "#EXT-X-DISCONTINUITY-SEQUENCE")  # nothing left the window
    for (init, segments), size in zip(runs, ["640x360", "320x180"], strict=True):
        chunks = [await (await api.get(f"{base}/{uri}")).read() for uri in [init, *segments]]
        assert chunks[0][4:8] == b"ftyp"
        path = tmp_path / init
        path.write_bytes(b"".join(chunks))
        sizes, errors = await asyncio.to_thread(decoded, path)
        assert errors == "" and list(sizes) == [size], (sizes, errors)
        assert sizes[size] >= 3 * 30  # all but the frames of the reconnect's cut
    assert (await api.get(f"{base}/init-7.mp4")).status == 404


async def test_the_low_latency_playlist_keeps_its_rules_across_the_change(api, show, tmp_path):
    """Read while the second publisher is on: the parts after the change follow the
    discontinuity and its map, and the preload hint still names the next part."""
    live_id, key = show["live"]["id"], show["key"]
    large = write_test_flv(tmp_path / "large.flv", seconds=3, size="640x360")
    small = write_test_flv(tmp_path / "small.flv", seconds=6, size="320x180")
    code, errors = await run_ffmpeg(push(api, large, key))
    assert code == 0, errors
    publisher = asyncio.create_task(run_ffmpeg(push(api, small, key)))

    async def changed() -> bool:
        text = await (await api.get(f"/hls/{live_id}/index.m3u8")).text()
        return "#EXT-X-PART:" in text.partition('#EXT-X-MAP:URI="init-1.mp4"')[2]

    await eventually(changed, True)
    text = await (await api.get(f"/hls/{live_id}/index.m3u8")).text()
    assert_low_latency_rules(text)
    code, errors = await publisher
    assert code == 0, errors


async def test_hls_js_plays_across_a_publisher_back_at_another_size(api, show, tmp_path):
    live_id, key = show["live"]["id"], show["key"]
    large = write_test_flv(tmp_path / "large.flv", seconds=6, size="640x360", bframes=2)
    small = write_test_flv(tmp_path / "small.flv", seconds=10, size="320x180", bframes=2)
    hls_js = await asyncio.to_thread(installed_hls_js)
    publisher = asyncio.create_task(run_ffmpeg(push(api, large, key)))
    await eventually(lambda: status(api, live_id), "live")
    async with chromium_page(api.make_url("/"), hls_js) as page:
        src = f"/hls/{live_id}/index.m3u8"
        await page.goto(str(api.make_url("/hls-test/").with_query(src=src)))
        await page.evaluate(COUNT_FRAME_SIZES)
        await page.wait_for_function(
            "() => window.errors.length || window.sizes.length", timeout=PLAYER_WAIT * 1000
        )
        code, errors = await publisher
        assert code == 0, errors
        code, errors = await run_ffmpeg(push(api, small, key))
        assert code == 0, errors
        played = await page.wait_for_function(
            "() => (window.errors.length || window.sizes.some(([size, n]) =>"
            " size === '320x180' && n >= 60)) && [window.sizes, window.errors,"
            " document.querySelector('video').error]",
            timeout=PLAYER_WAIT * 1000,
        )
        sizes, errors, media_error = await played.json_value()
    print(f"hls.js: frames shown by size, in order: {sizes}")
    assert errors == [] and media_error is None
    assert [size for size, _ in sizes] == ["640x360", "320x180"]
