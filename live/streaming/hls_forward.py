"""LL-HLS on any replica: one that does not ingest a stream forwards its HLS requests to
the one that does.

Only the stream's origin segments it (live/streaming/hls.py). Another replica asked for
the playlist, a part, a segment or the init segment finds the origin in the stream's
publishing lease, as the WebRTC relay does (live/streaming/relay.py), and passes the
request on to the origin's internal URL (`STREAMCART_REPLICA_URL`) with its query
(`_HLS_msn`, `_HLS_part`: the origin blocks, not this replica), then streams the answer
back with its status and cache headers, so a cache in front keeps each for as long as
the origin says. A forwarded request names the replica it comes from, and is never
forwarded again. No lease: the request is answered here, a 404 as before.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from live.streaming.relay import CONNECT_SECONDS, REPLICA_HEADER
from storage.web import Problem
from storage.web.context import request_id

log = logging.getLogger("streamcart.streaming")

# Longer than the origin's longest blocking wait (three target durations) and as long
# as the proxy's read timeout for /hls/ (deploy/nginx.conf).
FORWARD_SECONDS = 30.0
COPIED_HEADERS = ("Content-Type", "Content-Length", "Cache-Control", "Retry-After")

FindOrigin = Callable[[str], Awaitable[tuple[str, str] | None]]


class HlsForwarder:
    def __init__(self, *, replica: str, find_origin: FindOrigin) -> None:
        """`find_origin(live_session_id)`: (replica, URL) of the stream's origin, if any."""
        self.replica = replica
        self._find_origin = find_origin
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=FORWARD_SECONDS, connect=CONNECT_SECONDS),
            auto_decompress=False,  # bytes pass through as the origin sent them
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def forward(self, request: web.Request) -> web.StreamResponse | None:
        """The origin's answer to `request`, streamed; None if no other replica holds the
        stream (or the request was forwarded here already)."""
        if self._http is None or REPLICA_HEADER in request.headers:
            return None
        origin = await self._find_origin(request.match_info["live_session_id"])
        if origin is None or origin[0] == self.replica:
            return None
        headers = {REPLICA_HEADER: self.replica, "Accept-Encoding": "identity", **_request_id()}
        try:
            upstream = await self._http.request(
                request.method, origin[1].rstrip("/") + request.raw_path, headers=headers
            )
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning("could not reach the origin of %s: %r", request.path, error)
            raise Problem(
                502,
                "hls-origin-unreachable",
                "The replica that holds this stream did not answer; ask again.",
                headers={"Retry-After": "1", "Cache-Control": "no-store"},
            ) from None
        async with upstream:
            return await _stream_back(request, upstream)


async def _stream_back(
    request: web.Request, upstream: aiohttp.ClientResponse
) -> web.StreamResponse:
    copied = {name: upstream.headers[name] for name in COPIED_HEADERS if name in upstream.headers}
    # The request id middleware's header would come after prepare(): too late to be sent.
    response = web.StreamResponse(status=upstream.status, headers={**copied, **_request_id()})
    await response.prepare(request)
    try:
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
    except (aiohttp.ClientError, ConnectionError, TimeoutError) as error:
        # The origin broke off or the viewer left: close the connection, so a cut body
        # cannot pass for a whole one.
        log.info("forwarding %s stopped: %r", request.path, error)
        if request.transport is not None:
            request.transport.close()
    return response


def _request_id() -> dict[str, str]:
    """The request's id as a header: the origin logs the request under the same id."""
    rid = request_id.get()
    return {"X-Request-Id": rid} if rid else {}


HLS_FORWARDER = web.AppKey("hls_forwarder", HlsForwarder)
