"""Stream endpoints: health for the seller, a thumbnail and replays for everyone (the
MP4 and a VOD HLS playlist over it carrying the sale timeline)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from commerce.accounts.auth import require_principal
from live.sessions.routes import LIVE_SESSIONS, TAGS
from live.streaming.hls_timeline import HlsTimeline
from live.streaming.outputs import RECORDING_TIME, StreamOutputs
from media.hls.vod import FragmentedMp4, scan, vod_playlist
from media.recording import Timeline, timeline_path
from storage.web import ApiRoutes, Problem

routes = ApiRoutes()
STREAM_OUTPUTS = web.AppKey("stream_outputs", StreamOutputs)
HLS_TIMELINE = web.AppKey("hls_timeline", HlsTimeline)
RECORDING_NAME = re.compile(r"^\d{8}T\d{6}Z$")
THUMBNAIL_MAX_AGE = 5
VOD_MAX_AGE = 5  # a recording still being written grows
HLS_PLAYLIST = "application/vnd.apple.mpegurl"


class HealthWarningOut(BaseModel):
    code: str
    message: str


class WebrtcVideoOut(BaseModel):
    """The B-frame fallback's output: what WebRTC viewers get instead of the source."""

    width: int
    height: int
    frame_rate: float
    reason: str = Field(description="Why this size and rate, in plain words.")
    load: float = Field(description="Share of real time the re-encode took lately (1 = all).")


class StreamHealthOut(BaseModel):
    """What the publisher sends, measured by the server, with advice in plain words."""

    live_session_id: str
    uptime_s: float
    video_codec: str | None
    profile: str | None
    level: str | None
    width: int | None
    height: int | None
    video_kbps: float | None
    frame_rate: float | None
    keyframe_interval_s: float | None
    bframes: bool
    audio_codec: str | None
    audio_sample_rate: int | None
    audio_channels: int | None
    audio_kbps: float | None
    dropped_frames: int | None
    webrtc_viewers: int | None = Field(
        None, description="WebRTC viewers of the stream on every replica (WHEP and Socket.IO)."
    )
    publisher: str = Field(
        "connected", description="`connected`, or `reconnecting` within the grace period."
    )
    webrtc_video: WebrtcVideoOut | None = Field(
        None, description="Set while the stream is re-encoded for WebRTC (B-frames)."
    )
    warnings: list[HealthWarningOut]


class TimelineMarkOut(BaseModel):
    at_ms: int
    kind: str
    data: dict[str, Any]


class RecordingOut(BaseModel):
    video_url: str
    hls_url: str = Field(
        description="The same recording as a VOD HLS playlist, pins and flash sales as "
        "EXT-X-DATERANGE tags on the video's program date-time."
    )
    timeline: list[TimelineMarkOut]


class ReplayOut(BaseModel):
    """One recording per time the seller went on air, oldest first; each timeline is on
    its recording's own clock (milliseconds from its first frame)."""

    live_session_id: str
    status: str
    recordings: list[RecordingOut]


@routes.route(
    "GET",
    "/api/live-sessions/{live_session_id}/health",
    summary="The stream's health",
    tags=TAGS,
    response=StreamHealthOut,
    auth=True,
    errors=(403, 404),
)
async def stream_health(request: web.Request) -> StreamHealthOut:
    """Bitrate, frame rate, keyframe interval, codecs, B-frames, uptime and warnings, for
    the shop's team while the stream is on air (also pushed as `stream:health`)."""
    live = await request.app[LIVE_SESSIONS].require_staff(
        await require_principal(request), request.match_info["live_session_id"]
    )
    report = await request.app[STREAM_OUTPUTS].health(live.id)
    if report is None:
        raise Problem(404, "stream-not-live", "Nothing is being streamed to this session now.")
    return StreamHealthOut(live_session_id=live.id, **report)


@routes.route(
    "GET",
    "/api/live-sessions/{live_session_id}/thumbnail.jpg",
    summary="A recent frame of the stream",
    tags=TAGS,
    errors=(404,),
)
async def stream_thumbnail(request: web.Request) -> web.Response:
    """A JPEG of a recent keyframe while on air; the last one after the stream ended."""
    live = await request.app[LIVE_SESSIONS].get(request.match_info["live_session_id"])
    jpeg = await request.app[STREAM_OUTPUTS].thumbnail(live.id)
    if jpeg is None:
        raise Problem(404, "no-thumbnail", "This session has not streamed a picture yet.")
    return web.Response(
        body=jpeg,
        content_type="image/jpeg",
        headers={"Cache-Control": f"public, max-age={THUMBNAIL_MAX_AGE}"},
    )


@routes.route(
    "GET",
    "/api/live-sessions/{live_session_id}/replay",
    summary="Recordings of the session with their sale timelines",
    tags=TAGS,
    response=ReplayOut,
    errors=(404,),
)
async def replay(request: web.Request) -> ReplayOut:
    """The video URLs and, for each, when products were pinned and flash sales ran, so
    a replay shows the right product at the right moment."""
    live = await request.app[LIVE_SESSIONS].get(request.match_info["live_session_id"])
    outputs = request.app[STREAM_OUTPUTS]
    await outputs.settled(live.id)
    folder = outputs.recordings / live.id
    recordings = [
        RecordingOut(
            video_url=_video_url(live.id, video.stem),
            hls_url=f"/hls/{live.id}/replay/{video.stem}.m3u8",
            timeline=Timeline.load(timeline_path(video)).entries,
        )
        for video in sorted(folder.glob("*.mp4"))
        if RECORDING_NAME.match(video.stem)
    ]
    return ReplayOut(live_session_id=live.id, status=live.status, recordings=recordings)


@routes.route(
    "GET",
    "/api/live-sessions/{live_session_id}/recordings/{name}.mp4",
    summary="One recording (MP4, byte ranges supported)",
    tags=TAGS,
    errors=(404,),
)
async def recording(request: web.Request) -> web.FileResponse:
    video = await _recording_file(request)
    return web.FileResponse(video, headers={"Content-Type": "video/mp4"})


@routes.route(
    "GET",
    "/hls/{live_session_id}/replay/{name}.m3u8",
    summary="One recording as a VOD HLS playlist with the sale timeline",
    tags=TAGS,
    errors=(404,),
    response_media_type=HLS_PLAYLIST,
)
async def recording_playlist(request: web.Request) -> web.Response:
    """Segments are byte ranges of the recording's MP4 (one per fragment); every pin and
    flash sale is an EXT-X-DATERANGE on the same clock as the segments' program date-time."""
    video = await _recording_file(request)
    live_session_id = request.match_info["live_session_id"]
    started = datetime.strptime(video.stem, RECORDING_TIME).replace(tzinfo=UTC)
    mp4 = await asyncio.to_thread(_scan, video)
    dateranges = await request.app[HLS_TIMELINE].replay(
        live_session_id, started, Timeline.load(timeline_path(video)).entries
    )
    playlist = vod_playlist(_video_url(live_session_id, video.stem), mp4, started, dateranges)
    return web.Response(
        text=playlist,
        content_type=HLS_PLAYLIST,
        headers={"Cache-Control": f"public, max-age={VOD_MAX_AGE}"},
    )


async def _recording_file(request: web.Request) -> Path:
    live = await request.app[LIVE_SESSIONS].get(request.match_info["live_session_id"])
    name = request.match_info["name"]
    video = request.app[STREAM_OUTPUTS].recordings / live.id / f"{name}.mp4"
    if not RECORDING_NAME.match(name) or not video.is_file():
        raise Problem(404, "recording-not-found", "No such recording of this session.")
    return video


def _video_url(live_session_id: str, name: str) -> str:
    return f"/api/live-sessions/{live_session_id}/recordings/{name}.mp4"


def _scan(video: Path) -> FragmentedMp4:
    with video.open("rb") as file:
        try:
            return scan(file)
        except ValueError as error:
            raise Problem(
                404, "recording-unreadable", "This recording has no video yet."
            ) from error
