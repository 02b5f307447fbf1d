"""WHEP endpoints: POST an SDP offer to watch a live session, DELETE the resource to leave.

Bodies are `application/sdp`, not JSON, so the handlers read them themselves; errors
are still problem documents. Guests may watch: no token is needed to view a stream.
"""

from __future__ import annotations

from aiohttp import web

from signaling.offers import MAX_SDP_BYTES, malformed_sdp, sdp_too_large
from signaling.whep import WhepService
from storage.web import ApiRoutes, Problem

routes = ApiRoutes()
WHEP = web.AppKey("whep", WhepService)
SDP = "application/sdp"
TAGS = ("webrtc",)
WHEP_PATH = "/api/live-sessions/{live_session_id}/whep"


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
    DELETE when leaving. H.264 video is required, Opus audio optional. 503 with
    `Retry-After` when this server has reached its viewer limit."""
    live_session_id = request.match_info["live_session_id"]
    answer = await request.app[WHEP].offer(live_session_id, await _read_offer(request))
    return web.Response(
        status=201,
        text=answer.sdp,
        content_type=SDP,
        headers={"Location": f"/api/live-sessions/{live_session_id}/whep/{answer.resource_id}"},
    )


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


async def _read_offer(request: web.Request) -> str:
    if request.content_type != SDP:
        raise Problem(415, "unsupported-media-type", f"Send the SDP offer as {SDP}.")
    if (request.content_length or 0) > MAX_SDP_BYTES:
        raise sdp_too_large()  # before reading it; a chunked body is bounded by the app
    try:
        return (await request.read()).decode("utf-8")
    except UnicodeDecodeError:
        raise malformed_sdp("it is not UTF-8 text") from None
