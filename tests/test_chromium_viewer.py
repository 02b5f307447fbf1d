"""A real browser watches: the ffmpeg CLI publishes over RTMP, headless Chromium plays the
session over WHEP and decodes what the server's WebRTC track carried.

Chromium and the app's end of ICE share a network namespace the test creates (see
tests/chromium_support.py), so every candidate and packet stays on loopback.
"""

from __future__ import annotations

import asyncio

import pytest

from live.app import STREAMS
from media.transcode import OPUS_FRAME_SAMPLES
from signaling.routes import WHEP
from tests.chromium_support import assert_loopback_only, chromium_viewer
from tests.media_support import write_test_flv
from tests.rtmp_support import run_ffmpeg
from tests.test_streaming import (
    WAIT_SECONDS,
    count_video,
    eventually,
    has_video,
    push,
    show,
    status,
)
from tests.webrtc_support import settled

__all__ = ["show"]  # a fixture shared with the OBS end-to-end tests


@pytest.fixture
def api_settings():
    """Peers with sockets of their own, which the test binds inside Chromium's namespace
    (the shared port is watched by Chromium across a NAT in tests/test_webrtc_nat.py)."""
    return {"stream_grace_period": 0.5, "stream_health_interval": 0.5, "webrtc_udp_port": 0}


@pytest.fixture
def sql_url(tmp_path) -> str:
    """The browser is under test here, not the database: SQLite only keeps this fast."""
    return f"sqlite:///{tmp_path / 'test.sqlite3'}"


@pytest.fixture
async def chromium(api, tmp_path, monkeypatch):
    async with chromium_viewer(api.make_url("/"), tmp_path, monkeypatch) as viewer:
        yield viewer


async def go_live(api, show, source) -> asyncio.Task[tuple[int, str]]:
    """ffmpeg publishing `source`, once the session is live and has a keyframe to give."""
    publisher = asyncio.create_task(run_ffmpeg(push(api, source, show["key"])))
    live_id = show["live"]["id"]
    await eventually(lambda: status(api, live_id), "live")
    await eventually(lambda: has_video(api, live_id), True)
    return publisher


async def start_watching(api, chromium, live_id: str) -> None:
    """Chromium offers (loopback candidates only, checked before it is sent) and plays."""
    assert_loopback_only(await chromium.offer())
    reply = await chromium.watch(f"/api/live-sessions/{live_id}/whep")
    assert reply.status == 201, reply.body
    assert_loopback_only(reply.body)
    assert api.app[WHEP].viewers(live_id) == 1


@pytest.mark.parametrize("bframes", [0, 2], ids=["baseline", "bframes"])
async def test_chromium_decodes_what_obs_publishes(api, show, chromium, tmp_path, bframes):
    """With B-frames too: the server's once-per-stream fallback is what Chromium plays
    smoothly (a passed-through B-frame stream decodes only its keyframes)."""
    source = write_test_flv(tmp_path / "show.flv", seconds=4, gop=30, bframes=bframes)
    live_id = show["live"]["id"]
    publisher = await go_live(api, show, source)
    counting = asyncio.create_task(
        count_video(api.app[STREAMS].get(live_id).subscribe(webrtc=True))
    )

    await start_watching(api, chromium, live_id)
    code, errors = await publisher
    assert code == 0, errors
    frames_sent = await asyncio.wait_for(counting, WAIT_SECONDS)
    await settled(lambda: chromium.stats.frames_decoded)

    watched = chromium.stats
    assert watched.frames_decoded >= 0.9 * frames_sent, (watched, frames_sent)
    assert watched.frame_size == (320, 240), watched
    assert watched.audio_packets > 0, watched
    played = watched.audio_samples - watched.audio_concealed  # each packet is 60 ms
    assert played >= 0.8 * watched.audio_packets * OPUS_FRAME_SAMPLES, watched


async def test_chromium_leaving_closes_its_viewer(api, show, chromium, tmp_path):
    source = write_test_flv(tmp_path / "show.flv", seconds=3, gop=30)
    live_id = show["live"]["id"]
    publisher = await go_live(api, show, source)

    await start_watching(api, chromium, live_id)
    await asyncio.wait_for(chromium.decoding.wait(), WAIT_SECONDS)
    assert await chromium.leave() == 204
    assert api.app[WHEP].viewers(live_id) == 0
    assert await chromium.leave() == 404  # already gone
    code, errors = await publisher
    assert code == 0, errors


@pytest.mark.parametrize(
    "candidate",
    [
        "a=candidate:1 1 udp 2122063615 192.0.2.2 33548 typ host",
        "a=candidate:1 1 udp 2113937151 bb14adb9-3861-4f59-a064-565d4f282f58.local 56070 typ host",
    ],
    ids=["interface", "mdns"],
)
def test_the_loopback_guard_refuses_other_candidates(candidate):
    loopback = "a=candidate:2 1 udp 2122194687 127.0.0.1 35982 typ host"
    assert_loopback_only(f"v=0\r\n{loopback}\r\n")
    with pytest.raises(AssertionError, match="is not loopback"):
        assert_loopback_only(f"v=0\r\n{loopback}\r\n{candidate}\r\n")
    with pytest.raises(AssertionError, match="no ICE candidates"):
        assert_loopback_only("v=0\r\n")
