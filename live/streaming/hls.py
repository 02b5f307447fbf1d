"""Low-Latency HLS of every live stream this process ingests, served from memory.

One task per stream reads the hub's source packets (B-frames and AAC as published)
into a `Segmenter`; the routes answer from it. Blocking playlist reloads
(`_HLS_msn`/`_HLS_part`) and requests for the hinted next part wait for it, bounded
by three target durations as the spec suggests, then 503. Parts, segments and the
init segment never change once listed, so they are cacheable for good; playlists
for a second. After the stream ends its last playlist (with EXT-X-ENDLIST) stays up
for `linger` seconds, then the stream is forgotten here (the replay takes over).
A request for a stream another replica ingests is answered by `elsewhere` (that
replica's answer, live/streaming/hls_forward.py).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from functools import wraps

from aiohttp import web

from media.hls.dateranges import DateRange
from media.hls.playlist import PART_HOLD_BACK_PARTS, checked_hold_back
from media.hls.segmenter import Segmenter
from media.hub import StreamHub
from storage.web import Problem

log = logging.getLogger("streamcart.streaming")

SOURCE_QUEUE = 1024  # packets: HLS may lag a little behind the viewers, as recording does
WAIT_TARGET_DURATIONS = 3  # a blocking request waits at most this many target durations
MSN_AHEAD_REFUSED = 2  # _HLS_msn beyond the last segment plus this is a 400, per the spec
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
IMMUTABLE = "public, max-age=31536000, immutable"
PLAYLIST_CACHE = "public, max-age=1"
MEDIA_NAME = re.compile(r"^(?:seg(\d+)|part(\d+)\.(\d+))\.m4s$")

DateRanges = Callable[[str], Awaitable[list[DateRange]]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Elsewhere = Callable[[web.Request], Awaitable[web.StreamResponse | None]]


class _Stream:
    def __init__(self, segmenter: Segmenter) -> None:
        self.segmenter = segmenter
        self._changed = asyncio.Event()

    def changed(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(self, ready: Callable[[], bool], seconds: float) -> bool:
        """Wait until `ready()` (or the stream ends); whether it is ready."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not ready():
            remaining = deadline - loop.time()
            if self.segmenter.ended or remaining <= 0:
                return ready()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return ready()
        return True


class HlsOutputs:
    def __init__(
        self,
        *,
        part_target: float = 0.5,
        segment_target: float = 1.0,
        window: float = 60.0,
        hold_back_parts: float = PART_HOLD_BACK_PARTS,
        linger: float = 60.0,
        dateranges: DateRanges | None = None,
        elsewhere: Elsewhere | None = None,
    ) -> None:
        """`dateranges(live_session_id)`: the session's pins and flash sales as
        EXT-X-DATERANGE tags (None: the playlists carry none); `elsewhere(request)`: the
        answer of the replica that ingests a stream this one does not (None: nobody does)."""
        self._part_target = part_target
        self._segment_target = segment_target
        self._window = window
        self._hold_back_parts = checked_hold_back(hold_back_parts)  # at start-up
        self._linger = linger
        self._dateranges = dateranges
        self._elsewhere = elsewhere
        self._streams: dict[str, _Stream] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, live_session_id: str, hub: StreamHub) -> None:
        """Start segmenting a stream that was just accepted (before its first packet)."""
        stream = _Stream(
            Segmenter(
                part_target=self._part_target,
                segment_target=self._segment_target,
                window=self._window,
                hold_back_parts=self._hold_back_parts,
            )
        )
        self._streams[live_session_id] = stream
        task = asyncio.create_task(self._run(live_session_id, hub, stream))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(
            "/hls/{live_session_id}/index.m3u8", self._here_or_elsewhere(self.playlist)
        )
        app.router.add_get("/hls/{live_session_id}/init.mp4", self._here_or_elsewhere(self.init))
        app.router.add_get(
            r"/hls/{live_session_id}/init-{index:\d+}.mp4", self._here_or_elsewhere(self.init)
        )
        app.router.add_get("/hls/{live_session_id}/{name}", self._here_or_elsewhere(self.media))

    def _here_or_elsewhere(self, handler: Handler) -> Handler:
        """`handler` for a stream held here; else the origin's answer, if there is one."""

        @wraps(handler)
        async def answer(request: web.Request) -> web.StreamResponse:
            if (
                self._elsewhere is not None
                and request.match_info["live_session_id"] not in self._streams
            ):
                forwarded = await self._elsewhere(request)
                if forwarded is not None:
                    return forwarded
            return await handler(request)

        return answer

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def playlist(self, request: web.Request) -> web.Response:
        live_session_id = request.match_info["live_session_id"]
        stream = self._stream(live_session_id)
        segmenter = stream.segmenter
        msn, part = _blocking_request(request.query)
        wait = WAIT_TARGET_DURATIONS * segmenter.target_duration
        if msn is not None:
            last = segmenter.segments[-1].msn if segmenter.segments else 0
            if msn > last + MSN_AHEAD_REFUSED:
                raise Problem(400, "hls-msn-too-far", f"Segment {msn} is more than two ahead.")
        ready = await stream.until(
            lambda: segmenter.ready and (msn is None or _has(segmenter, msn, part)), wait
        )
        if not ready:
            raise _not_yet()
        text = segmenter.playlist(await self._ranges(live_session_id)).render()
        return web.Response(
            text=text,
            content_type=PLAYLIST_TYPE,
            headers={"Cache-Control": PLAYLIST_CACHE},
        )

    async def init(self, request: web.Request) -> web.Response:
        """An init segment: the first is waited for; a later one (init-N.mp4, after the
        publisher's codec config changed) is listed only once written."""
        stream = self._stream(request.match_info["live_session_id"])
        segmenter = stream.segmenter
        index = int(request.match_info.get("index", 0))
        coming = index == 0 and segmenter.init is None
        if index not in segmenter.inits and not coming:
            raise _missing("This init segment is not in the stream's window.")
        wait = WAIT_TARGET_DURATIONS * segmenter.target_duration
        if not await stream.until(lambda: index in segmenter.inits, wait):
            raise _not_yet()
        return _media(segmenter.inits[index])

    async def media(self, request: web.Request) -> web.Response:
        """A segment or a part; the next one (the preload hint) is waited for."""
        stream = self._stream(request.match_info["live_session_id"])
        segmenter = stream.segmenter
        match = MEDIA_NAME.match(request.match_info["name"])
        if match is None:
            raise _missing("No such file in this stream.")
        if match.group(1) is not None:
            msn, index = int(match.group(1)), None
        else:
            msn, index = int(match.group(2)), int(match.group(3))
        if not _coming(segmenter, msn, index):
            raise _missing("This part or segment is not in the stream's window.")
        wait = WAIT_TARGET_DURATIONS * segmenter.target_duration
        if not await stream.until(lambda: _body(segmenter, msn, index) is not None, wait):
            raise _not_yet()
        body = _body(segmenter, msn, index)
        assert body is not None
        return _media(body)

    async def _ranges(self, live_session_id: str) -> list[DateRange]:
        """The session's date ranges; without them (the database away) the video plays on."""
        if self._dateranges is None:
            return []
        try:
            return await self._dateranges(live_session_id)
        except Exception:
            log.exception("stream %s: no date ranges for its playlist", live_session_id)
            return []

    def _stream(self, live_session_id: str) -> _Stream:
        stream = self._streams.get(live_session_id)
        if stream is None:
            raise _missing("This live session is not streaming here.")
        return stream

    async def _run(self, live_session_id: str, hub: StreamHub, stream: _Stream) -> None:
        try:
            async for packet in hub.subscribe(webrtc=False, max_queue=SOURCE_QUEUE):
                if stream.segmenter.feed(packet):
                    stream.changed()
                if stream.segmenter.wants_keyframe:
                    hub.request_keyframe()
        finally:
            stream.segmenter.end()
            stream.changed()
        await asyncio.sleep(self._linger)
        if self._streams.get(live_session_id) is stream:
            del self._streams[live_session_id]


def _blocking_request(query: Mapping[str, str]) -> tuple[int | None, int | None]:
    try:
        msn = int(query["_HLS_msn"]) if "_HLS_msn" in query else None
        part = int(query["_HLS_part"]) if "_HLS_part" in query else None
    except ValueError:
        raise Problem(400, "hls-bad-request", "_HLS_msn and _HLS_part are numbers.") from None
    if (part is not None and msn is None) or (msn or 0) < 0 or (part or 0) < 0:
        raise Problem(400, "hls-bad-request", "_HLS_part needs _HLS_msn; both are ≥ 0.")
    return msn, part


def _has(segmenter: Segmenter, msn: int, part: int | None) -> bool:
    """Whether the playlist holds segment `msn` (complete) or its part `part`; a part
    past the end of a complete segment means the first part of the next one."""
    if segmenter.ended:
        return True
    last = segmenter.segments[-1] if segmenter.segments else None
    if last is None:
        return False
    if last.msn > msn and (last.parts or last.msn > msn + 1):
        return True
    segment = segmenter.segment(msn)
    if segment is None:
        return False
    if part is None:
        return segment.complete
    return len(segment.parts) > part


def _coming(segmenter: Segmenter, msn: int, index: int | None) -> bool:
    """In the window already, or the next one to be written."""
    if _body(segmenter, msn, index) is not None:
        return True
    upcoming = segmenter.next_part
    if upcoming is None:
        return False
    if index is None:
        return msn == upcoming[0]
    return (msn, index) == upcoming


def _body(segmenter: Segmenter, msn: int, index: int | None) -> bytes | memoryview | None:
    segment = segmenter.segment(msn)
    if segment is None:
        return None
    if index is None:
        return segment.data if segment.complete else None
    return segment.parts[index].data if index < len(segment.parts) else None


def _media(body: bytes | memoryview) -> web.Response:
    return web.Response(body=body, content_type="video/mp4", headers={"Cache-Control": IMMUTABLE})


def _missing(detail: str) -> Problem:
    return Problem(404, "not-found", detail)


def _not_yet() -> Problem:
    return Problem(
        503,
        "hls-not-ready",
        "Not written yet; ask again.",
        headers={"Retry-After": "1", "Cache-Control": "no-store"},
    )


HLS_OUTPUTS = web.AppKey("hls_outputs", HlsOutputs)
