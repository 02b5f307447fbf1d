"""A WHIP stream on every replica: two real `streamcart serve` processes on PostgreSQL
and Redis. An aiortc publisher publishes over WHIP to the first; an aiortc viewer joins
through WHEP on the second, which pulls the stream from the first; the same key
offered to the second is refused (one publisher per session on every replica)."""

from __future__ import annotations

import pytest

from signaling.routes import WHIP_PATH
from tests.netns_support import scheduled_session, until_live
from tests.server_process import replica_settings, serving
from tests.test_auth import assert_problem
from tests.test_whip import WhipPublisher
from tests.webrtc_support import (
    DecodingViewer,
    eventually,
    keep_ice_on_loopback,
    watch_over_whep,
)

pytestmark = [
    pytest.mark.parametrize("sql_url", ["postgresql"], indirect=True),
    pytest.mark.postgres,
    pytest.mark.redis,
]

SDP = "application/sdp"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    keep_ice_on_loopback(monkeypatch)


@pytest.fixture
async def replicas(sql_engine, sql_url, tmp_path):
    async with serving(tmp_path, ("origin", "edge"), replica_settings(sql_url)) as servers:
        yield servers


async def offer_to(api, publisher: WhipPublisher, key: str):
    headers = {"Content-Type": SDP, "Authorization": f"Bearer {key}"}
    return await api.post(WHIP_PATH, data=(await publisher.offer()).encode(), headers=headers)


async def test_a_whip_stream_plays_on_another_replica_and_its_key_is_held_there(replicas):
    origin, edge = replicas
    show = await scheduled_session(origin)
    live_id = show["live"]["id"]
    publisher, second, viewer = WhipPublisher(), WhipPublisher(), DecodingViewer()
    try:
        response = await offer_to(origin, publisher, show["key"])
        assert response.status == 201, await response.text()
        await publisher.accept(await response.text())
        await until_live(origin, live_id)

        await assert_problem(await offer_to(edge, second, show["key"]), 409, "already-publishing")

        await watch_over_whep(edge, live_id, viewer)
        assert await eventually(lambda: viewer.video_frames >= 30 and viewer.audio_frames >= 30)
        assert viewer.video_sizes == {(640, 480)}
    finally:
        for peer in (viewer, second, publisher):
            await peer.close()
