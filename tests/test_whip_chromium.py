"""A browser publishes: headless Chromium with a fake camera and microphone publishes over
WHIP from a page of the app's origin (getUserMedia, RTCPeerConnection, fetch); an aiortc
WHEP viewer and another Chromium page watching over WHEP decode its video and audio
(Opus passed through in the browser's 20 ms packets).

Chromium and the app's end of ICE share a network namespace the test creates (see
tests/chromium_support.py), so every candidate and packet stays on loopback.
"""

from __future__ import annotations

import asyncio

import pytest

from live.app import STREAMS
from signaling.routes import WHIP, WHIP_PATH
from tests.chromium_support import (
    CHROMIUM_ARGS,
    GATHERED_JS,
    WAIT,
    ChromiumViewer,
    ViewerStats,
    app_namespace,
    assert_loopback_only,
    chromium_in,
)
from tests.test_chromium_viewer import api_settings, sql_url
from tests.test_streaming import eventually, has_video, show, status
from tests.webrtc_support import DecodingViewer, watch_over_whep

__all__ = ["api_settings", "show", "sql_url"]  # fixtures shared with other browser tests

OPUS_20_MS = 960  # samples in each of the publisher's Opus packets
FAKE_MEDIA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
PUBLISH_JS = (
    """
async ({ whipPath, key, gatherMs }) => {
  const media = await navigator.mediaDevices.getUserMedia({
    video: { width: 320, height: 240, frameRate: 30 }, audio: true });
  const pc = new RTCPeerConnection();
  for (const track of media.getTracks()) pc.addTransceiver(track, { direction: "sendonly" });
  await pc.setLocalDescription(await pc.createOffer());"""
    + GATHERED_JS
    + """  const response = await fetch(whipPath, {
    method: "POST", body: pc.localDescription.sdp,
    headers: { "Content-Type": "application/sdp", "Authorization": `Bearer ${key}` },
  });
  const body = await response.text();
  if (response.status !== 201) return { status: response.status, body };
  await pc.setRemoteDescription({ type: "answer", sdp: body });
  window.publisher = { pc, media, location: response.headers.get("Location") };
  return { status: response.status, body };
}
"""
)
STOP_JS = """
async () => {
  const { pc, media, location } = window.publisher;
  const status = (await fetch(location, { method: "DELETE" })).status;
  media.getTracks().forEach((track) => track.stop());
  pc.close();
  return status;
}
"""


@pytest.fixture
async def chromium(api, tmp_path, monkeypatch):
    app_url = api.make_url("/")
    async with (
        app_namespace(app_url, monkeypatch) as namespace,
        chromium_in(namespace, app_url, tmp_path, [*CHROMIUM_ARGS, *FAKE_MEDIA]) as page,
    ):
        yield page


async def test_chromium_publishes_over_whip_and_a_viewer_decodes_it(api, show, chromium):
    live_id = show["live"]["id"]
    reply = await asyncio.wait_for(
        chromium.page.evaluate(
            PUBLISH_JS, {"whipPath": WHIP_PATH, "key": show["key"], "gatherMs": WAIT * 500}
        ),
        WAIT,
    )
    assert reply["status"] == 201, reply["body"]
    assert_loopback_only(reply["body"])
    assert len(api.app[WHIP]) == 1
    await eventually(lambda: status(api, live_id), "live")
    await eventually(lambda: has_video(api, live_id), True)

    viewer = DecodingViewer()
    try:
        await watch_over_whep(api, live_id, viewer)
        await eventually(lambda: _true(viewer.video_frames > 10 and viewer.audio_frames > 10), True)
        assert viewer.video_sizes == {(320, 240)}
        assert api.app[STREAMS].get(live_id).video_config.width == 320

        browser = await ChromiumViewer.opened(
            await chromium.page.context.new_page(), api.make_url("/healthz")
        )
        assert_loopback_only(await browser.offer())
        watching = await browser.watch(f"/api/live-sessions/{live_id}/whep")
        assert watching.status == 201, watching.body
        await asyncio.wait_for(browser.decoding.wait(), WAIT)
        await eventually(lambda: _true(plays_its_audio(browser.stats)), True)
        assert browser.stats.frame_size == (320, 240), browser.stats
    finally:
        await viewer.close()
    assert await chromium.page.evaluate(STOP_JS) == 204
    await eventually(lambda: status(api, live_id), "ended")


def plays_its_audio(stats: ViewerStats) -> bool:
    """A second of packets in, and most of what came played rather than concealed."""
    played = stats.audio_samples - stats.audio_concealed
    return stats.audio_packets >= 50 and played >= 0.8 * stats.audio_packets * OPUS_20_MS


async def _true(value: bool) -> bool:
    return value
