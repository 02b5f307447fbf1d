"""OBS's side end to end: the ffmpeg CLI publishes over RTMP to a session's stream key;
the session goes live, the seller sees stream health, viewers get a thumbnail, and when
the publisher leaves the session ends and its recording and sale timeline are served."""

from __future__ import annotations

import asyncio

import av
import pytest

from live.app import RTMP_SERVER, STREAMS
from media.packets import VideoFrame
from tests.commerce_support import scheduled_show
from tests.hub_support import joining, open_socket
from tests.media_support import write_test_flv
from tests.rtmp_support import run_ffmpeg
from tests.test_auth import assert_problem, bearer
from tests.webrtc_support import DecodingViewer, keep_ice_on_loopback, settled, watch_over_whep

WAIT_SECONDS = 20


@pytest.fixture
def api_settings():
    return {"stream_grace_period": 0.5, "stream_health_interval": 0.5}


@pytest.fixture
async def show(api):
    """A seller's scheduled session with one product, and its OBS settings."""
    return await scheduled_show(api)


def push(api, source, key: str, *, app: str = "live") -> list[str]:
    """ffmpeg re-publishing an encoded file in real time, as OBS would (no re-encode)."""
    port = api.app[RTMP_SERVER].port
    return [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-i", str(source),
        "-c", "copy", "-f", "flv", f"rtmp://127.0.0.1:{port}/{app}/{key}",
    ]  # fmt: skip


async def status(api, live_id: str) -> str:
    return (await (await api.get(f"/api/live-sessions/{live_id}")).json())["status"]


async def eventually(probe, expected):
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while (value := await probe()) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"{value!r} != {expected!r}"
        await asyncio.sleep(0.1)


async def ended_recording(api, live_id: str, publisher, seller) -> dict:
    """The session's one recording, once `publisher` (ffmpeg) has sent all of its file,
    the session has ended and the seller's socket `seller` is closed."""
    code, errors = await publisher
    assert code == 0, errors
    await eventually(lambda: status(api, live_id), "ended")
    await seller.client.disconnect()
    replay = await (await api.get(f"/api/live-sessions/{live_id}/replay")).json()
    (recording,) = replay["recordings"]
    return recording


async def test_a_stream_goes_live_is_measured_recorded_and_ends(api, show, tmp_path):
    source = write_test_flv(tmp_path / "clean.flv", seconds=4, gop=30)
    live_id, token = show["live"]["id"], show["token"]
    seller = await open_socket(api, token)
    await seller.ok("session:join", joining(live_id))
    publisher = asyncio.create_task(run_ffmpeg(push(api, source, show["key"])))

    await eventually(lambda: status(api, live_id), "live")
    health_event = await seller.wait_for(
        "stream:health", lambda h: h["width"] is not None, within=WAIT_SECONDS
    )
    assert health_event["live_session_id"] == live_id and health_event["width"] == 320
    await seller.ok(
        "product:pin", {"live_session_id": live_id, "product_id": show["product"]["id"]}
    )
    auction = await api.post(
        f"/api/live-sessions/{live_id}/auctions",
        json={
            "product_id": show["product"]["id"],
            "starting_price": 100_000,
            "min_increment": 10_000,
            "duration_seconds": 60,
        },
        headers=bearer(token),
    )
    assert auction.status == 201, await auction.text()

    health = await api.get(f"/api/live-sessions/{live_id}/health", headers=bearer(token))
    assert health.status == 200, await health.text()
    report = await health.json()
    assert (report["width"], report["height"], report["bframes"]) == (320, 240, False)
    assert report["audio_codec"] == "aac" and report["video_codec"] == "h264"
    await assert_problem(
        await api.get(f"/api/live-sessions/{live_id}/health"), 401, "unauthenticated"
    )

    thumbnail = await api.get(f"/api/live-sessions/{live_id}/thumbnail.jpg")
    assert thumbnail.status == 200 and thumbnail.content_type == "image/jpeg"
    jpeg = await thumbnail.read()
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"

    recording = await ended_recording(api, live_id, publisher, seller)
    assert [mark["kind"] for mark in recording["timeline"]][:1] == ["pinned"]
    assert recording["timeline"][0]["data"]["product_id"] == show["product"]["id"]
    started = [m for m in recording["timeline"] if m["kind"] == "auction_started"]
    assert [m["data"]["auction_id"] for m in started] == [(await auction.json())["id"]]
    video = await api.get(recording["video_url"])
    assert video.status == 200
    saved = tmp_path / "replay.mp4"
    saved.write_bytes(await video.read())
    with av.open(str(saved)) as container:
        kinds = sorted(stream.type for stream in container.streams)
        frames = sum(1 for _ in container.decode(video=0))
    assert kinds == ["audio", "video"]
    assert frames >= 0.9 * 4 * 30 * 0.75  # the first GOP may start after the publisher did


async def test_wrong_key_and_second_publisher_are_refused(api, show, tmp_path):
    source = write_test_flv(tmp_path / "clean.flv", seconds=3)
    live_id = show["live"]["id"]
    code, _ = await run_ffmpeg(push(api, source, "not-the-key"))
    assert code != 0
    assert await status(api, live_id) == "scheduled"

    first = asyncio.create_task(run_ffmpeg(push(api, source, show["key"])))
    await eventually(lambda: status(api, live_id), "live")
    code, _ = await run_ffmpeg(push(api, source, show["key"]))
    assert code != 0  # the key is already publishing
    code, errors = await first
    assert code == 0, errors


async def test_ending_the_session_disconnects_its_publisher(api, show, tmp_path):
    source = write_test_flv(tmp_path / "long.flv", seconds=30)
    live_id = show["live"]["id"]
    publisher = asyncio.create_task(run_ffmpeg(push(api, source, show["key"])))
    await eventually(lambda: status(api, live_id), "live")
    ended = await api.post(f"/api/live-sessions/{live_id}/end", headers=bearer(show["token"]))
    assert ended.status == 200, await ended.text()
    await asyncio.wait_for(publisher, WAIT_SECONDS)  # well before its 30 s of media ran out
    assert api.app[STREAMS].get(live_id) is None


async def test_bframes_are_reported_to_the_seller(api, show, tmp_path):
    source = write_test_flv(tmp_path / "bframes.flv", seconds=3, bframes=2)
    live_id, token = show["live"]["id"], show["token"]
    publisher = asyncio.create_task(run_ffmpeg(push(api, source, show["key"])))

    async def health() -> dict:
        response = await api.get(f"/api/live-sessions/{live_id}/health", headers=bearer(token))
        return await response.json() if response.status == 200 else {}

    async def bframes_warned():
        report = await health()
        return report.get("bframes") and any(w["code"] == "b-frames" for w in report["warnings"])

    async def reencode_measured():  # after a window of 2 s of the stream
        return ((await health()).get("webrtc_video") or {}).get("load", 0) > 0

    await eventually(bframes_warned, True)
    await eventually(reencode_measured, True)
    reencoded = (await health())["webrtc_video"]
    assert (reencoded["width"], reencoded["height"]) == (320, 240)  # small: kept as it is
    assert reencoded["reason"] == "the source's own size and rate"
    assert reencoded["load"] < 1
    code, errors = await publisher
    assert code == 0, errors


@pytest.mark.parametrize("bframes", [0, 2], ids=["baseline", "bframes"])
async def test_a_whep_viewer_watches_what_obs_publishes(api, show, tmp_path, monkeypatch, bframes):
    """RTMP in, WebRTC out; with B-frames the server's once-per-stream transcode plays."""
    keep_ice_on_loopback(monkeypatch)
    source = write_test_flv(tmp_path / "show.flv", seconds=5, gop=30, bframes=bframes)
    live_id = show["live"]["id"]
    publisher = asyncio.create_task(run_ffmpeg(push(api, source, show["key"])))
    await eventually(lambda: status(api, live_id), "live")
    await eventually(lambda: has_video(api, live_id), True)

    viewer = DecodingViewer()
    sent = api.app[STREAMS].get(live_id).subscribe(webrtc=True)
    counting = asyncio.create_task(count_video(sent))
    try:
        await watch_over_whep(api, live_id, viewer)
        code, errors = await publisher
        assert code == 0, errors
        frames_sent = await asyncio.wait_for(counting, WAIT_SECONDS)
        await settled(lambda: viewer.video_frames)
        assert viewer.video_frames >= 0.9 * frames_sent, (viewer.video_frames, frames_sent)
        assert viewer.audio_frames > 0
        assert viewer.video_sizes == {(320, 240)}
    finally:
        await viewer.close()


async def has_video(api, live_id: str) -> bool:
    hub = api.app[STREAMS].get(live_id)
    return hub is not None and hub.latest_keyframe is not None


async def count_video(subscription) -> int:
    """Frames the viewers' track carried from now until the stream ended."""
    return sum([1 async for packet in subscription if isinstance(packet, VideoFrame)])
