"""WHEP endpoints: POST an SDP offer to watch a live session, DELETE the resource to leave;
WHIP endpoints: POST a publisher's offer with the stream key as its bearer token, DELETE
to stop publishing; and the STUN/TURN servers a viewer may use, with their credentials.
Both answer cross-origin requests (CORS), as the WHIP and WHEP specifications
recommend, so a player or a publishing page served from elsewhere can use them.

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
from signaling.whip import WhipService
from storage.web import ApiRoutes, Problem
from storage.web.routes import SecurityScheme

routes = ApiRoutes()
WHEP = web.AppKey("whep", WhepService)
WHIP = web.AppKey("whip", WhipService)
ICE_SERVERS = web.AppKey("ice_servers", IceServers)
# Who is watching, for the TURN username and the audience count: the composition root
# gives the accounts layer's answer (a user id for a valid bearer token, None for a guest).
ViewerIdentity = Callable[[web.Request], Awaitable[str | None]]
VIEWER_ID = web.AppKey("viewer_id", ViewerIdentity)
SDP = "application/sdp"
TAGS = ("webrtc",)
WHEP_PATH = "/api/live-sessions/{live_session_id}/whep"
WHIP_PATH = "/api/whip"
STREAM_KEY = SecurityScheme(
    "streamKey",
    {
        "type": "http",
        "scheme": "bearer",
        "description": "The live session's stream key (OBS: WHIP output, Bearer Token).",
    },
)
CORS_PATHS = (WHEP_PATH, WHEP_PATH + "/{resource_id}", WHIP_PATH, WHIP_PATH + "/{resource_id}")
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Location, Link",
}
# What the routes serve: no PATCH (no trickle ICE or ICE restart), hence no If-Match or ETag.
PREFLIGHT_HEADERS = {
    **CORS_HEADERS,
    "Access-Control-Allow-Methods": "POST, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "86400",
}
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
    reaches_backends=False,  # a cache outage only leaves the audience count off
)
async def whep_delete(request: web.Request) -> None:
    await request.app[WHEP].delete(
        request.match_info["resource_id"], live_session_id=request.match_info["live_session_id"]
    )


@routes.route(
    "POST",
    WHIP_PATH,
    summary="Publish a live stream over WebRTC (WHIP)",
    tags=TAGS,
    status=201,
    errors=(400, 401, 409, 413, 415, 422, 503),
    request_media_type=SDP,
    response_media_type=SDP,
    security=STREAM_KEY,
    guard=lambda request: _require_stream_key(request),
)
async def whip_offer(request: web.Request) -> web.Response:
    """The body is the publisher's SDP offer, `Authorization: Bearer <stream key>` says
    which live session (OBS 30+: Service WHIP, Server this URL, Bearer Token the key).
    It must send H.264 video and Opus audio, both passed through to viewers. The answer
    comes with a `Location` to DELETE when done. 401 for a wrong key, 409 while the key
    is publishing (over RTMP or WHIP). The session goes live as with RTMP."""
    key = _stream_key(request)
    answer = await request.app[WHIP].offer(key, await _read_offer(request))
    headers = {"Location": f"{WHIP_PATH}/{answer.resource_id}"}
    return web.Response(status=201, text=answer.sdp, content_type=SDP, headers=headers)


@routes.route(
    "DELETE",
    WHIP_PATH + "/{resource_id}",
    summary="Stop publishing over WebRTC (WHIP)",
    tags=TAGS,
    status=204,
    errors=(404,),
    reaches_backends=False,
)
async def whip_delete(request: web.Request) -> None:
    """The publisher leaves as an RTMP one disconnecting: the session waits for it
    through its grace period, then ends."""
    await request.app[WHIP].delete(request.match_info["resource_id"])


@routes.route(
    "GET",
    "/api/webrtc/ice-servers",
    summary="STUN/TURN servers for a WebRTC viewer",
    tags=TAGS,
    response=IceServersOut,
    reaches_backends=False,
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


def add_cors(app: web.Application) -> None:
    """Answer CORS preflights on the WHEP and WHIP paths and let other origins read
    their responses (problems included) and headers."""
    for path in CORS_PATHS:
        app.router.add_route("OPTIONS", path, _preflight)
    app.on_response_prepare.append(_allow_origin)


async def _preflight(_: web.Request) -> web.Response:
    return web.Response(status=204, headers=PREFLIGHT_HEADERS)


async def _allow_origin(request: web.Request, response: web.StreamResponse) -> None:
    route = request.match_info.route.resource
    if route is not None and route.canonical in CORS_PATHS:
        for name, value in CORS_HEADERS.items():
            response.headers.setdefault(name, value)


async def _require_stream_key(request: web.Request) -> None:
    """401 before the body is read when no stream key is sent."""
    _stream_key(request)


def _stream_key(request: web.Request) -> str:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Problem(
            401, "stream-key-required", "Send the stream key as Authorization: Bearer <key>."
        )
    return key.strip()


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
