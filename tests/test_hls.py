"""Low-Latency HLS: the CMAF boxes read back by FFmpeg, the segmenter's cuts, the
playlist against the spec's rules for low-latency playlists, and an RTMP publish with
B-frames played from /hls/ by ffprobe and ffmpeg, blocking reloads included."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from live.streaming.hls import HLS_OUTPUTS, HlsOutputs
from media.hls import fmp4
from media.hls.dateranges import DateRange
from media.hls.segmenter import Segmenter
from media.hub import StreamHub
from media.packets import AudioConfig, AudioFrame, Packet, VideoFrame
from tests import test_streaming
from tests.media_support import depacketize, write_test_flv
from tests.rtmp_support import run_ffmpeg
from tests.test_streaming import eventually, push, status

show = test_streaming.show  # a seller's scheduled session and its stream key
START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


@pytest.fixture
def api_settings():
    return {"stream_grace_period": 0.5, "stream_health_interval": 0.5}


@pytest.fixture(scope="module")
def bframes_flv(tmp_path_factory) -> Path:
    """6 s, keyframes every 2 s, two B-frames, AAC."""
    path = tmp_path_factory.mktemp("hls") / "bframes.flv"
    return write_test_flv(path, seconds=6, gop=60, bframes=2)


def segmented(packets: list[Packet], **options) -> Segmenter:
    segmenter = Segmenter(now=lambda: START, **options)
    for packet in packets:
        segmenter.feed(packet)
    return segmenter


def ffprobe(target: str, *, count_frames: bool = True) -> dict:
    """The streams of a file (its frames counted) or of a live playlist (probed only)."""
    command = ["ffprobe", "-v", "error", "-show_streams", "-of", "json"]
    command += ["-count_frames"] if count_frames else []
    result = subprocess.run([*command, target], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    streams = json.loads(result.stdout)["streams"]
    return {stream["codec_type"]: stream for stream in streams}


def tags(text: str, name: str) -> list[dict[str, str]]:
    """The attribute lists of every `name` tag."""
    return [
        {key: value.strip('"') for key, value in ATTRIBUTE.findall(line[len(name) + 1 :])}
        for line in text.splitlines()
        if line.startswith(name + ":")
    ]


def values(text: str, name: str) -> list[str]:
    return [line[len(name) + 1 :] for line in text.splitlines() if line.startswith(name + ":")]


def decode_times(fragments: bytes) -> list[tuple[int, int]]:
    """(track id, tfdt time) of every track run: a tfhd box, then a version 1 tfdt."""
    found = []
    for tfhd in re.finditer(b"tfhd", fragments):
        at = tfhd.end()
        track = int.from_bytes(fragments[at + 4 : at + 8])
        found.append((track, int.from_bytes(fragments[at + 20 : at + 28])))
    return found


def shifted(packets: list[Packet], ms: int) -> list[Packet]:
    """`packets` later by `ms`, as the hub moves a publisher's clock after a reconnect."""
    return [
        replace(p, dts=p.dts + ms, pts=p.pts + ms)
        if isinstance(p, VideoFrame)
        else replace(p, timestamp=p.timestamp + ms)
        if isinstance(p, AudioFrame)
        else p
        for p in packets
    ]


def assert_low_latency_rules(text: str) -> None:
    """RFC 8216bis 4.4.3.3, 4.4.3.7, 4.4.3.8, 4.4.4.2, 4.4.4.5, 4.4.4.9, 4.4.5.2, 6.2.2
    as they apply to us."""
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    (target,) = map(int, values(text, "#EXT-X-TARGETDURATION"))
    ((part_info),) = tags(text, "#EXT-X-PART-INF")
    part_target = float(part_info["PART-TARGET"])
    ((control),) = tags(text, "#EXT-X-SERVER-CONTROL")
    assert control["CAN-BLOCK-RELOAD"] == "YES"
    assert float(control["PART-HOLD-BACK"]) >= 2 * part_target
    for duration in values(text, "#EXTINF"):
        assert round(float(duration.rstrip(","))) <= target
    parts = tags(text, "#EXT-X-PART")
    assert parts and all(float(part["DURATION"]) <= part_target for part in parts)
    assert len(tags(text, "#EXT-X-PRELOAD-HINT")) == 1
    assert tags(text, "#EXT-X-PRELOAD-HINT")[0]["TYPE"] == "PART"
    # Segments are numbered on from the media sequence; each one's parts count from 0.
    # A discontinuity (and a new init segment, only behind one) comes before a segment's
    # first part, the discontinuity sequence before the first segment.
    msn = int(values(text, "#EXT-X-MEDIA-SEQUENCE")[0])
    expected_part, listed, discontinuity = 0, False, False
    for line in lines:
        if line.startswith("#EXT-X-PART:"):
            uri = tags(line, "#EXT-X-PART")[0]["URI"]
            assert uri == f"part{msn}.{expected_part}.m4s", line
            expected_part, listed = expected_part + 1, True
        elif line.endswith(".m4s") and not line.startswith("#"):
            assert line == f"seg{msn}.m4s"
            msn, expected_part, listed, discontinuity = msn + 1, 0, True, False
        elif line == "#EXT-X-DISCONTINUITY":
            assert expected_part == 0, "a discontinuity inside a segment"
            discontinuity = True
        elif line.startswith("#EXT-X-MAP:"):
            assert expected_part == 0 and (discontinuity or not listed), line
        elif line.startswith("#EXT-X-DISCONTINUITY-SEQUENCE:"):
            assert not listed, line
    hint = tags(text, "#EXT-X-PRELOAD-HINT")[0]["URI"]
    assert hint == f"part{msn}.{expected_part}.m4s"


def test_init_and_fragments_read_back_as_the_published_stream(bframes_flv, tmp_path):
    segmenter = segmented(depacketize(bframes_flv))
    segmenter.end()
    assert segmenter.init is not None
    movie = tmp_path / "stream.mp4"
    movie.write_bytes(segmenter.init + b"".join(s.data for s in segmenter.segments))
    streams = ffprobe(str(movie))
    video, audio = streams["video"], streams["audio"]
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 320, 240)
    assert video["has_b_frames"] > 0
    assert int(video["nb_read_frames"]) == 6 * 30
    assert (audio["codec_name"], int(audio["sample_rate"]), audio["channels"]) == ("aac", 44100, 2)
    assert int(audio["nb_read_frames"]) >= 6 * 44100 // 1024 - 2


def test_a_stream_without_audio_has_one_track(tmp_path):
    source = write_test_flv(tmp_path / "silent.flv", seconds=1, audio=False)
    segmenter = segmented(depacketize(source))
    segmenter.end()
    movie = tmp_path / "silent.mp4"
    movie.write_bytes(segmenter.init + b"".join(s.data for s in segmenter.segments))
    assert list(ffprobe(str(movie))) == ["video"]


def test_audio_whose_config_comes_after_the_first_keyframe_is_left_out(bframes_flv, tmp_path):
    """The init segment is written at the first keyframe: a late track cannot join."""
    packets = depacketize(bframes_flv)
    config = next(p for p in packets if isinstance(p, AudioConfig))
    first_frame = next(i for i, p in enumerate(packets) if isinstance(p, VideoFrame))
    packets.remove(config)
    packets.insert(first_frame + 1, config)
    segmenter = segmented(packets)
    segmenter.end()
    fragments = b"".join(s.data for s in segmenter.segments)
    assert {track for track, _ in decode_times(fragments)} == {fmp4.VIDEO_TRACK}
    movie = tmp_path / "late.mp4"
    movie.write_bytes(segmenter.init + fragments)
    assert list(ffprobe(str(movie))) == ["video"]
    assert int(ffprobe(str(movie))["video"]["nb_read_frames"]) == 6 * 30


def test_segments_start_at_keyframes_and_parts_stay_within_the_target(bframes_flv):
    segmenter = segmented(depacketize(bframes_flv), part_target=0.3, segment_target=1.0)
    segmenter.end()
    segments = list(segmenter.segments)
    assert [round(s.duration, 1) for s in segments] == [2.0, 2.0, 2.0]  # the keyframe interval
    for segment in segments:
        assert segment.parts[0].independent
        assert not any(part.independent for part in segment.parts[1:])
        assert all(0 < part.duration <= 0.3 for part in segment.parts)
        assert segment.data == b"".join(bytes(part.data) for part in segment.parts)
    assert segmenter.target_duration == 2
    starts = [s.program_date_time for s in segments]
    assert starts == [START + timedelta(seconds=2 * n) for n in range(3)]


@pytest.mark.parametrize(("segment_target", "asked"), [(0.5, {0, 1, 2}), (1.0, set())])
def test_a_segment_run_past_twice_its_target_asks_for_a_keyframe(
    bframes_flv, segment_target, asked
):
    """A WebRTC publisher sends keyframes only when asked; this one sends one every 2 s."""
    segmenter = Segmenter(now=lambda: START, segment_target=segment_target)
    wanted = set()
    for packet in depacketize(bframes_flv):
        segmenter.feed(packet)
        if segmenter.wants_keyframe:
            wanted.add(segmenter.segments[-1].msn)
    assert wanted == asked
    segmenter.end()
    assert not segmenter.wants_keyframe


def test_old_segments_leave_the_window_and_the_media_sequence_moves_on(bframes_flv):
    packets = depacketize(bframes_flv)
    segmenter = segmented(packets, window=2.0)
    text = segmenter.playlist().render()
    assert values(text, "#EXT-X-MEDIA-SEQUENCE") == ["1"]  # 0-2 s dropped: 2-4 s is the window
    assert segmenter.segment(0) is None and segmenter.segment(1) is not None
    assert_low_latency_rules(text)


def test_the_playlist_follows_the_low_latency_rules_at_every_part(bframes_flv):
    segmenter = Segmenter(now=lambda: START, part_target=0.5)
    checked = 0
    for packet in depacketize(bframes_flv):
        if segmenter.feed(packet) and any(s.parts for s in segmenter.segments):
            assert_low_latency_rules(segmenter.playlist().render())
            assert segmenter.ready == segmenter.segments[0].complete  # from one GOP on
            checked += 1
    assert checked >= 10
    segmenter.end()
    ended = segmenter.playlist().render()
    assert ended.rstrip().endswith("#EXT-X-ENDLIST") and "PRELOAD-HINT" not in ended


def test_a_publisher_gap_keeps_every_part_within_the_target(bframes_flv):
    """A reconnect moves the stream's clock on by the gap (the hub does): the frame
    before it does not last the gap."""
    packets = depacketize(bframes_flv)
    half = len(packets) // 2
    segmenter = segmented(packets[:half] + shifted(packets[half:], 800))
    assert_low_latency_rules(segmenter.playlist().render())
    program = [s.program_date_time for s in segmenter.segments]
    assert program == sorted(program)


def test_program_date_times_follow_the_segment_durations(bframes_flv):
    text = segmented(depacketize(bframes_flv)).playlist().render()
    moments = [datetime.fromisoformat(v) for v in values(text, "#EXT-X-PROGRAM-DATE-TIME")]
    durations = [float(v.rstrip(",")) for v in values(text, "#EXTINF")]
    for earlier, later, duration in zip(moments, moments[1:], durations, strict=False):
        assert later - earlier == timedelta(seconds=duration)


def test_the_plain_view_lists_whole_segments_only(bframes_flv):
    text = segmented(depacketize(bframes_flv)).playlist(low_latency=False).render()
    assert "#EXT-X-PART" not in text and "PRELOAD-HINT" not in text
    assert values(text, "#EXTINF") and "SERVER-CONTROL" not in text


@pytest.mark.parametrize(("parts", "seconds"), [(None, "1.500"), (2, "1.000"), (2.5, "1.250")])
def test_the_hold_back_is_set_in_parts_never_under_two(bframes_flv, parts, seconds):
    options = {} if parts is None else {"hold_back_parts": parts}
    text = segmented(depacketize(bframes_flv), **options).playlist().render()
    assert f"CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={seconds}" in text
    with pytest.raises(ValueError, match="PART-HOLD-BACK"):
        HlsOutputs(hold_back_parts=1.5)  # refused at start-up, not at the first stream


def test_date_ranges_over_before_the_window_are_left_out(bframes_flv):
    segmenter = segmented(depacketize(bframes_flv), window=2.0)  # the window starts at 2 s
    ranges = [
        DateRange("old", START, "shop.pin", end=START + timedelta(seconds=1)),
        DateRange("open", START + timedelta(seconds=1), "shop.pin", attributes={"PRICE": 9}),
        DateRange("ahead", START + timedelta(seconds=30), "shop.flash"),
    ]
    text = segmenter.playlist(ranges).render()
    assert [r["ID"] for r in tags(text, "#EXT-X-DATERANGE")] == ["open", "ahead"]
    assert tags(text, "#EXT-X-DATERANGE")[0]["X-PRICE"] == "9"


def test_audio_keeps_its_own_clock_across_parts(bframes_flv):
    """AAC frames are 1024 samples whatever the millisecond timestamps say, so each
    part's audio starts where the one before ended."""
    segmenter = segmented(depacketize(bframes_flv))
    segmenter.end()
    fragments = b"".join(s.data for s in segmenter.segments)
    starts = [time for track, time in decode_times(fragments) if track == fmp4.AUDIO_TRACK]
    assert len(starts) > 10
    steps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert all(step > 0 and step % 1024 == 0 for step in steps)


async def test_an_rtmp_publish_with_bframes_plays_from_the_playlist(api, show, bframes_flv):
    live_id = show["live"]["id"]
    publisher = asyncio.create_task(run_ffmpeg(push(api, bframes_flv, show["key"])))
    await eventually(lambda: status(api, live_id), "live")
    base = f"/hls/{live_id}"
    url = str(api.make_url(f"{base}/index.m3u8"))

    first = await api.get(f"{base}/index.m3u8")
    assert first.status == 200, await first.text()
    assert first.content_type == "application/vnd.apple.mpegurl"
    assert first.headers["Cache-Control"] == "public, max-age=1"
    text = await first.text()
    assert_low_latency_rules(text)

    hint = tags(text, "#EXT-X-PRELOAD-HINT")[0]["URI"]
    msn, part = map(int, re.fullmatch(r"part(\d+)\.(\d+)\.m4s", hint).groups())
    hinted = asyncio.create_task(api.get(f"{base}/{hint}"))
    reload = await api.get(f"{base}/index.m3u8", params={"_HLS_msn": msn, "_HLS_part": part})
    assert reload.status == 200
    reloaded = await reload.text()
    assert f'URI="{hint}"' in reloaded or f"seg{msn}.m4s" in reloaded
    assert_low_latency_rules(reloaded)
    part_response = await hinted
    assert part_response.status == 200
    assert part_response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert part_response.content_type == "video/mp4"
    assert (await part_response.read())[4:8] == b"moof"

    init = await api.get(f"{base}/init.mp4")
    assert (await init.read())[4:8] == b"ftyp"

    too_far = await api.get(f"{base}/index.m3u8", params={"_HLS_msn": msn + 10})
    assert too_far.status == 400
    assert too_far.content_type == "application/problem+json"
    part_alone = await api.get(f"{base}/index.m3u8", params={"_HLS_part": 0})
    assert part_alone.status == 400
    assert (await api.get(f"{base}/seg1.ts")).status == 404
    unknown = await api.get("/hls/no-such-session/index.m3u8")
    assert unknown.status == 404 and unknown.content_type == "application/problem+json"
    gone = await api.get(f"{base}/part{msn + 50}.0.m4s")
    assert gone.status == 404

    whole = await api.get(f"{base}/index.m3u8", params={"_HLS_msn": 1})  # plain players
    assert whole.status == 200 and "seg1.m4s" in await whole.text()  # read whole segments
    streams = await asyncio.to_thread(ffprobe, url, count_frames=False)
    assert streams["video"]["codec_name"] == "h264" and streams["video"]["has_b_frames"] > 0
    assert streams["audio"]["codec_name"] == "aac"
    decode = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", url, "-t", "1"]
    code, errors = await run_ffmpeg([*decode, "-f", "null", "-"], seconds=30)
    assert code == 0 and "error" not in errors.lower(), errors

    code, errors = await publisher
    assert code == 0, errors

    async def ended() -> bool:
        text = await (await api.get(f"{base}/index.m3u8")).text()
        return text.rstrip().endswith("#EXT-X-ENDLIST")

    await eventually(ended, True)


async def test_a_stream_without_a_segment_yet_is_a_503_to_ask_again(api):
    hub = StreamHub("quiet")
    api.app[HLS_OUTPUTS].attach("quiet", hub)
    waiting = await api.get("/hls/quiet/index.m3u8")
    assert waiting.status == 503 and waiting.headers["Retry-After"] == "1"
    assert waiting.content_type == "application/problem+json"
    assert (await api.get("/hls/quiet/part0.0.m4s")).status == 404  # nothing hinted yet
    hub.close()
    over = await api.get("/hls/quiet/index.m3u8")
    assert over.status == 200 and "#EXT-X-ENDLIST" in await over.text()
