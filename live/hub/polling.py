"""The Socket.IO endpoint, with long-polling POSTs bounded before python-engineio reads them.

python-engineio 4.15 meets a POST over `max_http_buffer_size` by disconnecting its
session and waiting, inside that request, for the client to fetch the close packet with
a GET: a client that never polls again gets no answer, and the request and its session
are held for good (400 such requests held 35 MiB). Here such a POST is answered at once
with 413, its body unread, and its session ends (`end_session`: the Socket.IO disconnect
runs as usual; it takes python-engineio internals, so on its public path the session
instead lasts until its ping timeout). A POST without a Content-Length (chunked) gets
411: python-engineio reads only as many bytes as the header announces, so it would take
nothing of it.

Long-polling itself stays: some Socket.IO clients start on it before upgrading, and
behind proxies without websockets it is the only transport. The web client connects
over websocket directly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import socketio
from aiohttp import web

from storage.web import Problem

PATH = "/socket.io/"
EndSession = Callable[[str], Awaitable[None]]


def attach(
    app: web.Application, sio: socketio.AsyncServer, limit: int, end_session: EndSession | None
) -> None:
    """Serve `sio` at PATH (as `sio.attach` would), refusing POSTs over `limit` bytes (the
    `max_http_buffer_size` it was built with) and ending their session with `end_session`
    (`live.hub.engineio_private`'s; without one, the session lasts until its ping
    timeout)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            problem = _refusal(request.content_length, limit)
            if problem is not None:
                sid = request.query.get("sid")
                if sid and end_session is not None:
                    await end_session(sid)
                return problem.response()
        return await sio.handle_request(request)

    for method in ("GET", "POST", "OPTIONS"):
        app.router.add_route(method, PATH, handle)


def _refusal(length: int | None, limit: int) -> Problem | None:
    if length is None:
        return Problem(411, "length-required", "Send long-polling packets with a Content-Length.")
    if length > limit:
        return Problem(413, "payload-too-large", f"Long-polling bodies are at most {limit} bytes.")
    return None
