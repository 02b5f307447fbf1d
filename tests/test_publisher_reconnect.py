"""A streamer's connection drops and comes back: viewers never notice more than a gap.

The ffmpeg CLI publishes as OBS does by default (x264 High profile with 2 B-frames,
60 fps, a keyframe every 2 s, AAC at 48 kHz), so what viewers get is the server's
B-frame fallback; it is killed (as a dropped connection is) or stopped, and publishes
again within the grace period. An aiortc viewer and headless Chromium, neither of
which ever re-offers, keep their peer connection and decode the new stream within 2 s
(aiortc's on the same SSRC with sequence numbers that run on without a gap, across a
reconnect at another size too); a viewer arriving while the publisher is away is
answered and plays once it is back; past the grace period viewers get a clean end.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from live.app import RTMP_SERVER, STREAMS
from live.streaming.ingest import STALE_PUBLISHER_SECONDS
from tests.hub_support import joining, open_socket
from tests.rtmp_support import RawClient, finished_within
from tests.test_chromium_viewer import chromium, start_watching
from tests.test_streaming import eventually, has_video, show, status
from tests.webrtc_support import DecodingViewer, keep_ice_on_loopback
from tests.webrtc_support import eventually as until

__all__ = ["chromium", "show"]  # fixtures of the OBS and browser end-to-end tests

GRACE_SECONDS = 6.0
RESUMED_WITHIN = 2.0  # from the new publisher's acceptance to the viewer's next frame
VIDEO_CLOCK = 90_000


@pytest.fixture
def api_settings():
    """Peers with sockets of their own (Chromium's namespace binds them beside it)."""
    return {
        "stream_grace_period": GRACE_SECONDS,
        "stream_health_interval": 0.5,
        "webrtc_udp_port": 0,
    }


@pytest.fixture
def sql_url(tmp_path) -> str:
    """The media path is under test here: SQLite keeps it fast."""
    return f"sqlite:///{tmp_path / 'test.sqlite3'}"


def obs_like(port: int, key: str, seconds: float, size: str = "640x360") -> list[str]:
    """OBS's default encoder settings, at a size two cores publish, re-encode and
    decode in real time beside each other: x264 High, 2 B-frames, 60 fps, keyframes
    every 2 s, AAC 160 kb/s at 48 kHz."""
    return [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=60",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "high", "-bf", "2",
        "-g", "120", "-b:v", "1500k", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "160k", "-ar", "48000",
        "-t", str(seconds), "-f", "flv", f"rtmp://127.0.0.1:{port}/live/{key}",
    ]  # fmt: skip


@dataclass
class RtpLog:
    """The RTP packets a viewer's receivers got: (arrival, ssrc, sequence, timestamp)."""

    video: list[tuple[float, int, int, int]] = field(default_factory=list)

    def install(self, viewer: DecodingViewer) -> None:
        for transceiver in viewer.peer.getTransceivers():
            if transceiver.kind != "video":
                continue
            receiver = transceiver.receiver
            handle = receiver._handle_rtp_packet  # aiortc is pinned exactly

            async def logged(packet, arrival_time_ms, handle=handle):
                entry = (time.perf_counter(), packet.ssrc, packet.sequence_number, packet.timestamp)
                self.video.append(entry)
                await handle(packet, arrival_time_ms)

            receiver._handle_rtp_packet = logged

    def media(self) -> list[tuple[float, int, int, int]]:
        """The media stream's packets (retransmissions come on another SSRC)."""
        ssrc = self.video[0][1]
        return [entry for entry in self.video if entry[1] == ssrc]

    def sequence_gaps(self) -> list[tuple[int, int]]:
        """Consecutive packets whose sequence numbers do not follow on (loopback loses
        nothing, so any gap is the server's)."""
        numbers = [entry[2] for entry in self.media()]
        return [(a, b) for a, b in itertools.pairwise(numbers) if b != (a + 1) & 0xFFFF]


class Publisher:
    def __init__(self, api, key: str, seconds: float, size: str = "640x360") -> None:
        self._args = obs_like(api.app[RTMP_SERVER].port, key, seconds, size)
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> Publisher:
        self.process = await asyncio.create_subprocess_exec(
            *self._args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        return self

    async def finished(self, seconds: float) -> None:
        assert self.process is not None
        code, _, errors = await finished_within(self.process, seconds)
        assert code == 0, errors

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def publishing(api, live_id: str, expected: bool) -> None:
    assert await until(
        lambda: (hub := api.app[STREAMS].get(live_id)) is not None and hub.publishing == expected
    ), f"the stream never became {'publishing' if expected else 'paused'}"


async def resumed_within(
    api, live_id: str, frames: Callable[[], int], publisher: Publisher
) -> float:
    """Start `publisher` after a pause; seconds from its acceptance to the viewer's
    next decoded frame (the frames of before are all decoded by then)."""
    before = frames()
    await publisher.start()
    await publishing(api, live_id, True)
    accepted = time.perf_counter()
    assert await until(lambda: frames() > before, 10), "no frame after the reconnect"
    return time.perf_counter() - accepted


async def test_a_viewer_plays_on_across_a_dropped_and_a_stopped_publisher(
    api, show, tmp_path, monkeypatch
):
    keep_ice_on_loopback(monkeypatch)
    live_id, key = show["live"]["id"], show["key"]
    watcher = await open_socket(api)
    await watcher.ok("session:join", joining(live_id))
    publishers = [
        Publisher(api, key, 60),
        Publisher(api, key, 3),
        Publisher(api, key, 60, size="480x270"),  # back at another size: SPS/PPS in band
    ]
    viewer, late, rtp = DecodingViewer(), DecodingViewer(), RtpLog()
    try:
        await publishers[0].start()
        await eventually(lambda: status(api, live_id), "live")
        await eventually(lambda: has_video(api, live_id), True)
        response = await api.post(
            f"/api/live-sessions/{live_id}/whep",
            data=await viewer.offer(),
            headers={"Content-Type": "application/sdp"},
        )
        assert response.status == 201, await response.text()
        rtp.install(viewer)
        await viewer.accept(await response.text())
        assert await until(lambda: viewer.video_frames >= 30), "the viewer never played"

        await publishers[0].kill()  # the connection drops: no FCUnpublish, no close
        await publishing(api, live_id, False)
        reconnecting = await watcher.wait_for("stream:reconnecting")
        assert reconnecting == {"live_session_id": live_id, "grace_s": GRACE_SECONDS}
        await asyncio.sleep(1.0)
        assert viewer.connected and await status(api, live_id) == "live"
        packets_before = len(rtp.media())
        gap_started = rtp.media()[-1]

        took = await resumed_within(api, live_id, lambda: viewer.video_frames, publishers[1])
        print(f"after a kill: the next frame {1000 * took:.0f} ms after the reconnect")
        assert took < RESUMED_WITHIN
        assert await watcher.wait_for("stream:resumed") == {"live_session_id": live_id}
        gap_ended = rtp.media()[packets_before]
        wall_gap = gap_ended[0] - gap_started[0]
        rtp_gap = ((gap_ended[3] - gap_started[3]) & 0xFFFFFFFF) / VIDEO_CLOCK
        assert abs(rtp_gap - wall_gap) < 0.5, (rtp_gap, wall_gap)  # time went on, as it did

        await publishers[1].finished(30)  # a clean stop (FCUnpublish, deleteStream)
        await publishing(api, live_id, False)
        response = await api.post(  # a viewer arriving meanwhile is answered, not 404
            f"/api/live-sessions/{live_id}/whep",
            data=await late.offer(),
            headers={"Content-Type": "application/sdp"},
        )
        assert response.status == 201, await response.text()
        await late.accept(await response.text())
        await asyncio.sleep(0.5)
        took = await resumed_within(api, live_id, lambda: viewer.video_frames, publishers[2])
        print(f"after a stop: the next frame {1000 * took:.0f} ms after the reconnect")
        assert took < RESUMED_WITHIN
        frames = viewer.video_frames
        assert await until(lambda: viewer.video_frames >= frames + 60), "it did not play on"

        assert viewer.connected
        assert len({entry[1] for entry in rtp.video}) <= 2  # media (and maybe its RTX)
        assert rtp.sequence_gaps() == []
        assert viewer.video_sizes == {(640, 360), (480, 270)}
        assert viewer.audio_frames > 0
        assert await until(lambda: late.video_frames >= 30), "the late viewer never played"
        assert (480, 270) in late.video_sizes

        await publishers[2].kill()  # gone for good: the grace period runs out
        ended = await watcher.wait_for("stream:ended", within=GRACE_SECONDS + 10)
        assert ended == {"live_session_id": live_id, "reason": "the publisher left"}
        assert await until(lambda: viewer.peer.connectionState in {"closed", "failed"}, 10)
        assert await status(api, live_id) == "ended"
    finally:
        for publisher in publishers:
            await publisher.kill()
        await viewer.close()
        await late.close()
        await watcher.client.disconnect()


async def test_chromium_plays_on_across_a_dropped_publisher(api, show, chromium):
    live_id, key = show["live"]["id"], show["key"]
    publishers = [Publisher(api, key, 60), Publisher(api, key, 60)]
    try:
        await publishers[0].start()
        await eventually(lambda: status(api, live_id), "live")
        await eventually(lambda: has_video(api, live_id), True)
        await start_watching(api, chromium, live_id)
        await asyncio.wait_for(chromium.decoding.wait(), 20)

        await publishers[0].kill()
        await publishing(api, live_id, False)
        await asyncio.sleep(1.0)
        took = await resumed_within(
            api, live_id, lambda: chromium.stats.frames_decoded, publishers[1]
        )
        print(f"Chromium: the next frame {1000 * took:.0f} ms after the reconnect")
        assert took < RESUMED_WITHIN + 0.1  # its stats come every 100 ms
        frames = chromium.stats.frames_decoded
        assert await until(lambda: chromium.stats.frames_decoded >= frames + 120, 10)
        assert chromium.stats.state == "connected"
        assert chromium.stats.frame_size == (640, 360)
    finally:
        for publisher in publishers:
            await publisher.kill()


async def test_a_silent_publisher_is_replaced_by_a_new_connection_with_its_key(api, show):
    """A connection a Wi-Fi drop left half open sends nothing: OBS's reconnect takes
    its place at once instead of waiting for the idle timeout; a publisher that is
    still sending is not replaced."""
    live_id, key, port = show["live"]["id"], show["key"], api.app[RTMP_SERVER].port
    clients = [await RawClient.open(port) for _ in range(3)]
    try:
        started = await clients[0].publish(key)
        assert started["code"] == "NetStream.Publish.Start", started
        refused = await clients[1].publish(key)  # the first is not silent for long yet
        assert refused["code"] == "NetStream.Publish.BadName", refused
        hub = api.app[STREAMS].get(live_id)
        silent_at = hub.last_input_at + STALE_PUBLISHER_SECONDS
        await asyncio.sleep(silent_at + 0.2 - asyncio.get_running_loop().time())
        replaced = await clients[2].publish(key)
        assert replaced["code"] == "NetStream.Publish.Start", replaced
        await clients[0].until_closed()
        assert api.app[STREAMS].get(live_id) is hub and hub.publishing and not hub.closed
        assert await status(api, live_id) == "live"
    finally:
        for client in clients:
            client.close()
