"""Viewers on any replica: three real `streamcart serve` processes on PostgreSQL and
Redis. ffmpeg publishes RTMP to the first; aiortc viewers join through WHEP on the
second and third, which pull the stream from the first; the origin counts them all,
an edge whose viewers left stops pulling, and when the publisher stops every
replica's viewers end."""

from __future__ import annotations

import asyncio
import time

import pytest
from yarl import URL

from tests.netns_support import scheduled_session, until_live
from tests.rtmp_support import ffmpeg_publish_args, run_ffmpeg
from tests.server_process import ServerApi, replica_settings, serving
from tests.test_auth import bearer
from tests.webrtc_support import DecodingViewer, eventually, keep_ice_on_loopback

pytestmark = [
    pytest.mark.parametrize("sql_url", ["postgresql"], indirect=True),
    pytest.mark.postgres,
    pytest.mark.redis,
]

SDP = "application/sdp"
PUBLISH_SECONDS = 60.0  # longer than the test: it is stopped on purpose
FIRST_FRAME_WITHIN = 1.0


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    keep_ice_on_loopback(monkeypatch)


@pytest.fixture
async def replicas(sql_engine, sql_url, tmp_path):
    settings = replica_settings(
        sql_url, STREAMCART_RELAY_IDLE_SECONDS="1", STREAMCART_STREAM_HEALTH_INTERVAL="0.5"
    )
    async with serving(tmp_path, ("origin", "edge1", "edge2"), settings) as servers:
        yield servers


async def watch(api: ServerApi, whep: str, viewer: DecodingViewer) -> tuple[str, float]:
    """POST the viewer's offer to `api`; its Location and when the POST was sent."""
    offer = await viewer.offer()
    asked = time.perf_counter()
    response = await api.post(whep, data=offer.encode(), headers={"Content-Type": SDP})
    assert response.status == 201, await response.text()
    await viewer.accept(await response.text())
    return response.headers["Location"], asked


async def webrtc_viewers(api: ServerApi, live_id: str, token: str) -> int | None:
    response = await api.get(f"/api/live-sessions/{live_id}/health", headers=bearer(token))
    return (await response.json()).get("webrtc_viewers") if response.status == 200 else None


async def test_viewers_on_other_replicas_watch_the_stream_the_first_ingests(replicas):
    origin, edge1, edge2 = replicas
    show = await scheduled_session(origin)
    live_id, token = show["live"]["id"], show["token"]
    whep = f"/api/live-sessions/{live_id}/whep"
    rtmp_port = URL(show["live"]["stream"]["server_url"]).port
    publisher = asyncio.create_task(
        run_ffmpeg(ffmpeg_publish_args(rtmp_port, show["key"], PUBLISH_SECONDS), 90)
    )
    viewers = [DecodingViewer() for _ in range(3)]
    try:
        await until_live(origin, live_id)
        await asyncio.sleep(1.5)  # past the first keyframe: edges start on the cached GOP
        joins = [(edge1, viewers[0]), (edge2, viewers[1]), (edge2, viewers[2])]
        asked = [await watch(api, whep, viewer) for api, viewer in joins]
        for viewer, (_, sent) in zip(viewers, asked, strict=True):
            assert await eventually(lambda v=viewer: v.first_video_at is not None)
            print(f"first frame {1000 * (viewer.first_video_at - sent):.0f} ms after the POST")
            assert viewer.first_video_at - sent < FIRST_FRAME_WITHIN
        assert await eventually(lambda: all(v.video_frames >= 60 for v in viewers))
        assert await eventually(lambda: all(v.audio_frames >= 10 for v in viewers))
        assert all(v.video_sizes == {(320, 240)} for v in viewers)

        counted = None
        for _ in range(50):  # the edges count into Redis every second
            counted = await webrtc_viewers(origin, live_id, token)
            if counted == 3:
                break
            await asyncio.sleep(0.2)
        assert counted == 3

        left = await edge1.request("DELETE", asked[0][0])
        assert left.status == 204
        assert await eventually(
            lambda: any("stopped pulling it" in line for line in edge1.server.log_lines()), 10
        ), edge1.server.explain("the idle relay did not stop")
        assert not any("stopped pulling it" in line for line in edge2.server.log_lines())

        publisher.cancel()  # the publisher stops: every replica's viewers end
        await asyncio.gather(publisher, return_exceptions=True)
        assert await eventually(
            lambda: all(v.peer.connectionState in {"closed", "failed"} for v in viewers[1:]), 45
        ), [v.peer.connectionState for v in viewers]
    finally:
        publisher.cancel()
        for viewer in viewers:
            await viewer.close()


async def test_a_replica_without_the_stream_or_its_origin_says_it_is_not_live(replicas):
    origin, edge1, _ = replicas
    show = await scheduled_session(origin)
    viewer = DecodingViewer()
    try:
        response = await edge1.post(
            f"/api/live-sessions/{show['live']['id']}/whep",
            data=(await viewer.offer()).encode(),
            headers={"Content-Type": SDP},
        )
        assert response.status == 404
        assert (await response.json())["type"].endswith("stream-not-live")
    finally:
        await viewer.close()
    refused = await origin.get(f"/internal/relay/{show['live']['id']}")
    assert refused.status == 401  # only replicas, with the shared secret, may pull
