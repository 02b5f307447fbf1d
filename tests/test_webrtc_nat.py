"""Viewers beyond loopback: headless Chromium watches across a NAT.

The server runs in one network namespace, Chromium in another behind a third that NATs
it (tests/netns_support.py); ffmpeg publishes RTMP inside the server's namespace. The
server offers only its advertised public host on its one UDP port (and one TCP port),
so a viewer plays only if that is enough: through the NAT, through coturn with relay
candidates only (its credentials taken from the WHEP answer's Link headers), and over
ICE-TCP when the router drops UDP.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.chromium_support import ChromiumViewer, candidate_addresses
from tests.netns_support import (
    SERVER_IP,
    Coturn,
    NatTopology,
    require_netns,
    scheduled_session,
    until_live,
)
from tests.webrtc_support import eventually

WEBRTC_PORT = 8189
PUBLIC = {
    "STREAMCART_WEBRTC_UDP_PORT": str(WEBRTC_PORT),
    "STREAMCART_WEBRTC_TCP_PORT": str(WEBRTC_PORT),
    "STREAMCART_WEBRTC_PUBLIC_HOSTS": SERVER_IP,
    "STREAMCART_WEBRTC_INTERFACE_CANDIDATES": "false",
}
PLAY_SECONDS = 20.0
FRAMES = 30  # a second of video decoded
LINK = re.compile(r'<([^>]+)>((?:\s*;\s*[\w-]+="(?:[^"\\]|\\.)*")*)')
PARAMETER = re.compile(r'([\w-]+)="((?:[^"\\]|\\.)*)"')

LEARN_ICE_SERVERS_JS = """
async (whepPath) => {
  // A first offer, only to read the ICE servers from the answer's Link headers.
  const probe = new RTCPeerConnection();
  probe.addTransceiver("video", { direction: "recvonly" });
  await probe.setLocalDescription(await probe.createOffer());
  const response = await fetch(whepPath, {
    method: "POST", headers: { "Content-Type": "application/sdp" },
    body: probe.localDescription.sdp,
  });
  probe.close();
  await fetch(response.headers.get("Location"), { method: "DELETE" });
  return { status: response.status, links: response.headers.get("Link") ?? "" };
}
"""

SELECTED_PAIR_JS = """
async () => {
  const stats = await window.viewer.pc.getStats();
  let pair = null;
  stats.forEach((s) => { if (s.type === "transport" && s.selectedCandidatePairId)
    pair = stats.get(s.selectedCandidatePairId); });
  if (!pair) return null;
  const local = stats.get(pair.localCandidateId), remote = stats.get(pair.remoteCandidateId);
  return { local: local.candidateType + "/" + local.protocol,
           remote: remote.address + ":" + remote.port + "/" + remote.protocol };
}
"""


def ice_servers_from(links: str) -> list[dict[str, Any]]:
    """RTCIceServer dicts from a fetch()'s joined Link header values."""
    servers = []
    for url, parameters in LINK.findall(links):
        fields = dict(PARAMETER.findall(parameters))
        assert fields.get("rel") == "ice-server", links
        server: dict[str, Any] = {"urls": [url]}
        if "username" in fields:
            server.update(username=fields["username"], credential=fields["credential"])
        servers.append(server)
    return servers


@asynccontextmanager
async def live_stream(
    net: NatTopology, tmp_path: Path, settings: dict[str, str]
) -> AsyncIterator[tuple[Any, str]]:
    """The server with `settings` and a session ffmpeg publishes to; (api, WHEP path)."""
    async with net.serving(tmp_path, settings) as api:
        show = await scheduled_session(api)
        live_id = show["live"]["id"]
        publisher = asyncio.create_task(net.publish(show["key"], PLAY_SECONDS + 20))
        try:
            await until_live(api, live_id)
            yield api, f"/api/live-sessions/{live_id}/whep"
        finally:
            publisher.cancel()
            await asyncio.gather(publisher, return_exceptions=True)


async def plays(viewer: ChromiumViewer, whep: str, config: dict[str, Any] | None = None) -> str:
    """Offer (with `config`), watch, and wait until a second of video is decoded; the
    answer."""
    await viewer.offer(config)
    reply = await viewer.watch(whep)
    assert reply.status == 201, reply.body
    stats = viewer.stats
    assert await eventually(
        lambda: viewer.stats.frames_decoded >= FRAMES and viewer.stats.audio_packets > 0,
        PLAY_SECONDS,
    ), f"{stats} then {viewer.stats}"
    return reply.body


async def udp_sockets_of(net: NatTopology, pid: int) -> list[str]:
    """The local address of each UDP socket the process holds, as `ss` lists them in
    the server's namespace."""
    code, out, err = await net.run(net.server, "ss", "-uanpH")
    assert code == 0, err
    return [line.split()[3] for line in out.splitlines() if f"pid={pid}," in line]


async def test_three_viewers_behind_nat_play_on_the_advertised_host_and_one_udp_port(
    tmp_path,
):
    require_netns("ffmpeg", "chromium", "ss")
    with NatTopology() as net:
        async with (
            live_stream(net, tmp_path, PUBLIC) as (api, whep),
            net.chromium(tmp_path) as first,
        ):
            context = first.page.context
            viewers = [first] + [
                await ChromiumViewer.opened(await context.new_page(), first.page.url)
                for _ in range(2)
            ]
            answers = await asyncio.gather(*(plays(viewer, whep) for viewer in viewers))
            for answer in answers:
                assert set(candidate_addresses(answer)) == {SERVER_IP}, answer
            sockets = await udp_sockets_of(net, api.server.process.pid)
            assert sockets == [f"0.0.0.0:{WEBRTC_PORT}"], sockets
            for viewer in viewers:
                pair = await viewer.page.evaluate(SELECTED_PAIR_JS)
                assert pair["remote"] == f"{SERVER_IP}:{WEBRTC_PORT}/udp", pair
            decoded = [v.stats.frames_decoded for v in viewers]
            await asyncio.sleep(1.0)
            assert all(v.stats.frames_decoded > d for v, d in zip(viewers, decoded, strict=True))
            assert all(v.stats.frame_size == (320, 240) for v in viewers), [
                v.stats.frame_size for v in viewers
            ]


async def test_a_relay_only_viewer_plays_through_coturn_with_the_link_credentials(tmp_path):
    require_netns("ffmpeg", "chromium", "turnserver")
    with NatTopology() as net:
        async with (
            Coturn(net, tmp_path) as turn,
            live_stream(net, tmp_path, {**PUBLIC, **turn.app_settings()}) as (_, whep),
            net.chromium(tmp_path) as viewer,
        ):
            learned = await viewer.page.evaluate(LEARN_ICE_SERVERS_JS, whep)
            assert learned["status"] == 201
            servers = ice_servers_from(learned["links"])
            assert {url for s in servers for url in s["urls"]} == set(turn.urls())
            relay_only = {"iceServers": servers, "iceTransportPolicy": "relay"}
            await plays(viewer, whep, relay_only)
            pair = await viewer.page.evaluate(SELECTED_PAIR_JS)
            assert pair["local"].startswith("relay/"), pair
            assert viewer.stats.audio_samples > 0


async def test_a_relay_only_viewer_with_credentials_of_another_secret_cannot_play(tmp_path):
    require_netns("ffmpeg", "chromium", "turnserver")
    with NatTopology() as net:
        async with Coturn(net, tmp_path) as turn:
            wrong = {**turn.app_settings(), "STREAMCART_TURN_SECRET": "not-coturns-secret"}
            async with (
                live_stream(net, tmp_path, {**PUBLIC, **wrong}) as (_, whep),
                net.chromium(tmp_path) as viewer,
            ):
                learned = await viewer.page.evaluate(LEARN_ICE_SERVERS_JS, whep)
                servers = ice_servers_from(learned["links"])
                assert servers and all("credential" in s for s in servers)
                offer = await viewer.offer({"iceServers": servers, "iceTransportPolicy": "relay"})
                assert not candidate_addresses(offer), offer  # coturn refused to allocate
                reply = await viewer.watch(whep)
                assert reply.status == 201
                await asyncio.sleep(5.0)
                assert viewer.stats.frames_decoded == 0
                assert viewer.stats.state != "connected"


async def test_a_viewer_whose_network_drops_udp_plays_over_ice_tcp(tmp_path):
    require_netns("ffmpeg", "chromium")
    with NatTopology(block_udp=True) as net:
        async with (
            live_stream(net, tmp_path, PUBLIC) as (_, whep),
            net.chromium(tmp_path) as viewer,
        ):
            answer = await plays(viewer, whep)
            assert f"{SERVER_IP} {WEBRTC_PORT} typ host tcptype passive" in answer
            pair = await viewer.page.evaluate(SELECTED_PAIR_JS)
            assert pair["remote"] == f"{SERVER_IP}:{WEBRTC_PORT}/tcp", pair
            assert viewer.stats.audio_samples > 0
