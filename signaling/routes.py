"""WHEP endpoints: POST an SDP offer to watch a live session, DELETE the resource to leave;
and the STUN/TURN servers a viewer may use, with their credentials.

Bodies are `application/sdp`, not JSON, so the handlers read them themselves; errors
are still problem documents. Guests may watch: no token is needed to view a stream. A
valid bearer token puts the viewer's user id in its TURN username and counts the
viewer in the audience as that user (a user's socket and peer count once); an invalid
or expired one is not refused here (the viewer is a guest).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import NotRequired

from aiohttp import web
from multidict import CIMultiDict
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from signaling.ice_servers import IceServers, IssuedIceServers, link_headers
from signaling.offers import MAX_SDP_BYTES, malformed_sdp, sdp_too_large
from signaling.whep import WhepService
from storage.web import ApiRoutes, Problem

routes = ApiRoutes()
WHEP = web.AppKey("whep", WhepService)
ICE_SERVERS = web.AppKey("ice_servers", IceServers)
# Who is watching, for the TURN username and the audience count: the composition root
# gives the accounts layer's answer (a user id for a valid bearer token, None for a guest).
ViewerIdentity = Callable[[web.Request], Awaitable[str | None]]
VIEWER_ID = web.AppKey("viewer_id", ViewerIdentity)
SDP = "application/sdp"
TAGS = ("webrtc",)
WHEP_PATH = "/api/live-sessions/{live_session_id}/whep"
NO_ICE_SERVERS = IssuedIceServers()


class RtcIceServer(TypedDict):
    """A browser `RTCIceServer`: pass the list as `new RTCPeerConnection({iceServers})`.
    `username` and `credential` are there for TURN only; with time-limited credentials
    the username is `<unix expiry>:<user id or guest>`."""

    urls: list[str]
    username: NotRequired[str]
    credential: NotRequired[str]


class IceServersOut(BaseModel):
    ice_servers: list[RtcIceServer]
    expires_at: datetime | None = Field(
        description="When the TURN credentials stop working (UTC); null when they do not "
        "expire. Fetch new ones before then."
    )


@routes.route(
    "POST",
    WHEP_PATH,
    summary="Watch a live stream over WebRTC (WHEP)",
    tags=TAGS,
    status=201,
    errors=(400, 404, 413, 415, 422, 503),
    request_media_type=SDP,
    response_media_type=SDP,
)
async def whep_offer(request: web.Request) -> web.Response:
    """The body is the viewer's SDP offer; the answer is returned with a `Location` to
    DELETE when leaving, and one `Link: <url>; rel="ice-server"` header per STUN/TURN
    server (with `username`, `credential` and `credential-type` for TURN; RFC 9725).
    H.264 video is required, Opus audio optional. 503 with `Retry-After` when this server
    has reached its viewer limit. A bearer token is optional: it puts the viewer's user
    id in its TURN username and counts the viewer once with that user's sockets."""
    live_session_id = request.match_info["live_session_id"]
    user_id = await _viewer_id(request)
    ice = await _ice_servers_for(request, user_id)
    answer = await request.app[WHEP].offer(
        live_session_id, await _read_offer(request), user_id=user_id
    )
    headers = CIMultiDict(
        {"Location": f"/api/live-sessions/{live_session_id}/whep/{answer.resource_id}"}
    )
    for link in link_headers(ice.servers):
        headers.add("Link", link)
    return web.Response(status=201, text=answer.sdp, content_type=SDP, headers=headers)


@routes.route(
    "DELETE",
    WHEP_PATH + "/{resource_id}",
    summary="Stop watching (close the WebRTC peer)",
    tags=TAGS,
    status=204,
    errors=(404,),
)
async def whep_delete(request: web.Request) -> None:
    await request.app[WHEP].delete(
        request.match_info["resource_id"], live_session_id=request.match_info["live_session_id"]
    )


@routes.route(
    "GET",
    "/api/webrtc/ice-servers",
    summary="STUN/TURN servers for a WebRTC viewer",
    tags=TAGS,
    response=IceServersOut,
)
async def ice_servers(request: web.Request) -> web.Response:
    """The servers to create the viewer's `RTCPeerConnection` with, as browser
    `RTCIceServer` dictionaries (no username or credential for STUN). Open to guests; with
    a valid bearer token the TURN username carries the user id. Time-limited TURN
    credentials expire at `expires_at`. Never cached (`Cache-Control: no-store`)."""
    issued = await _ice_servers_for(request, await _viewer_id(request))
    body = IceServersOut(
        ice_servers=[server.as_rtc() for server in issued.servers],
        expires_at=issued.expires_at,
    )
    return web.Response(
        body=body.model_dump_json(),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def _viewer_id(request: web.Request) -> str | None:
    identify = request.app.get(VIEWER_ID)
    return None if identify is None else await identify(request)


async def _ice_servers_for(request: web.Request, user_id: str | None) -> IssuedIceServers:
    ice = request.app.get(ICE_SERVERS)
    if ice is None:
        return NO_ICE_SERVERS
    return ice.for_viewer(user_id if ice.per_viewer else None)


async def _read_offer(request: web.Request) -> str:
    if request.content_type != SDP:
        raise Problem(415, "unsupported-media-type", f"Send the SDP offer as {SDP}.")
    if (request.content_length or 0) > MAX_SDP_BYTES:
        raise sdp_too_large()  # before reading it; a chunked body is bounded by the app
    try:
        return (await request.read()).decode("utf-8")
    except UnicodeDecodeError:
        raise malformed_sdp("it is not UTF-8 text") from None
