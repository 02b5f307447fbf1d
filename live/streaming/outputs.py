"""What the server makes of each live stream besides the viewers' copy: its health,
a thumbnail and a recording with the sale timeline.

One task per stream reads the hub's source packets once and feeds the three. Health
and the thumbnail are published through the shared cache every few seconds, so any
server process can answer for a stream ingested by another; health is also pushed to
the seller's sockets as `stream:health`. When the stream ends, the recording is
finished, the session's pins and flash sales are written beside it on the
recording's own clock, and the last thumbnail is kept on disk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from media.health import HealthMeter
from media.hub import StreamHub
from media.packets import VideoFrame
from media.recording import BackgroundRecorder, Timeline, timeline_path
from media.thumbnail import ThumbnailCache
from storage.cache.port import Cache

log = logging.getLogger("streamcart.streaming")

SOURCE_QUEUE = 1024  # packets: the outputs may lag a little behind the viewers
FINISH_SECONDS = 10  # the longest a recording's tail and timeline are waited for
CACHE_TTL_INTERVALS = 3  # a stream whose process vanished stops answering after this
BEHIND_WARNING_SECONDS = 10.0  # the transcode-behind warning stays this long after a skip
RECORDING_TIME = "%Y%m%dT%H%M%SZ"  # a recording's name: when its stream was accepted

Emit = Callable[[str, dict[str, Any], str], Awaitable[None]]


class TimelineSource(Protocol):
    async def timeline(self, live_session_id: str) -> list[Any]:
        """Entries with `at`, `kind`, `product_id`, `flash_sale_id`, `detail`, oldest first."""
        ...


def health_key(live_session_id: str) -> str:
    return f"stream-health:{live_session_id}"


def thumbnail_key(live_session_id: str) -> str:
    return f"stream-thumbnail:{live_session_id}"


@dataclass
class _Stream:
    hub: StreamHub
    meter: HealthMeter = field(default_factory=HealthMeter)
    thumbnails: ThumbnailCache = field(default_factory=ThumbnailCache)
    recorder: BackgroundRecorder | None = None
    recording_started: datetime | None = None
    codec_dropped: int = 0  # the hub's, when last seen to grow
    codec_behind_at: float | None = None


class StreamOutputs:
    def __init__(
        self,
        data_dir: Path,
        cache: Cache,
        emit: Emit,
        timeline: TimelineSource,
        *,
        record: bool,
        health_interval: float,
        staff_room: Callable[[str], str],
        webrtc_viewers: Callable[[str], Awaitable[int]] | None = None,
    ) -> None:
        """`webrtc_viewers` counts a stream's WebRTC viewers on every replica."""
        self.recordings = data_dir / "recordings"
        self.thumbnails = data_dir / "thumbnails"
        self._cache = cache
        self._emit = emit
        self._timeline = timeline
        self._record = record
        self._interval = health_interval
        self._staff_room = staff_room
        self._webrtc_viewers = webrtc_viewers
        self._streams: dict[str, _Stream] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def attach(self, live_session_id: str, hub: StreamHub) -> None:
        """Start the outputs of a stream that was just accepted (before its first packet)."""
        stream = _Stream(hub)
        if self._record:
            started = datetime.now(UTC).strftime(RECORDING_TIME)
            path = self.recordings / live_session_id / f"{started}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            stream.recorder = BackgroundRecorder(path)
        self._streams[live_session_id] = stream
        task = asyncio.create_task(self._run(live_session_id, stream))
        self._tasks[live_session_id] = task
        task.add_done_callback(lambda _: self._forget_task(live_session_id, task))

    def _forget_task(self, live_session_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(live_session_id) is task:
            del self._tasks[live_session_id]

    async def settled(self, live_session_id: str) -> None:
        """Wait for a stream that has ended here to finish its recording and timeline, so
        the replay asked for on `stream:ended` is complete; a live stream is not waited for."""
        task = self._tasks.get(live_session_id)
        stream = self._streams.get(live_session_id)
        if task is None or (stream is not None and not stream.hub.closed):
            return
        await asyncio.wait({task}, timeout=FINISH_SECONDS)

    async def health(self, live_session_id: str) -> dict[str, Any] | None:
        """The latest health report of a stream live on any process, or None."""
        stream = self._streams.get(live_session_id)
        if stream is not None:
            return await self._report(live_session_id, stream)
        raw = await self._cache.get(health_key(live_session_id))
        return None if raw is None else json.loads(raw)

    async def thumbnail(self, live_session_id: str) -> bytes | None:
        """A recent keyframe as JPEG: while live from any process, afterwards from disk."""
        stream = self._streams.get(live_session_id)
        if stream is not None:
            return await stream.thumbnails.jpeg(time.monotonic())
        cached = await self._cache.get(thumbnail_key(live_session_id))
        if cached is not None:
            return cached
        kept = self.thumbnails / f"{live_session_id}.jpg"
        return await asyncio.to_thread(_read, kept)

    async def close(self) -> None:
        """Wait for the outputs of streams that are ending (the hubs are closed first)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks.values()), timeout=FINISH_SECONDS)

    async def _run(self, live_session_id: str, stream: _Stream) -> None:
        publisher = asyncio.create_task(self._publish_every_interval(live_session_id, stream))
        try:
            async for packet in stream.hub.subscribe(webrtc=False, max_queue=SOURCE_QUEUE):
                stream.meter.observe(packet, time.monotonic())
                stream.thumbnails.observe(packet)
                if stream.recorder is not None:
                    if stream.recording_started is None and _is_keyframe(packet):
                        stream.recording_started = datetime.now(UTC)
                    stream.recorder.submit(packet)
        finally:
            publisher.cancel()
            self._streams.pop(live_session_id, None)
            await self._forget_health(live_session_id)
            await self._finish(live_session_id, stream)

    async def _publish_every_interval(self, live_session_id: str, stream: _Stream) -> None:
        ttl = self._interval * CACHE_TTL_INTERVALS
        while True:
            await asyncio.sleep(self._interval)
            try:
                report = await self._report(live_session_id, stream)
                await self._cache.set(health_key(live_session_id), json.dumps(report).encode(), ttl)
                jpeg = await stream.thumbnails.jpeg(time.monotonic())
                if jpeg is not None:
                    await self._cache.set(thumbnail_key(live_session_id), jpeg, ttl)
                await self._emit(
                    "stream:health",
                    {"live_session_id": live_session_id, **report},
                    self._staff_room(live_session_id),
                )
            except Exception:  # a cache outage must not stop the stream's outputs
                log.exception("stream %s: could not publish its health", live_session_id)

    async def _forget_health(self, live_session_id: str) -> None:
        """Every replica answers "not live" at once, not the last report until it expires."""
        try:
            await self._cache.delete(health_key(live_session_id))
        except Exception:  # it expires by itself
            log.exception("stream %s: could not delete its last health report", live_session_id)

    async def _report(self, live_session_id: str, stream: _Stream) -> dict[str, Any]:
        hub, now = stream.hub, time.monotonic()
        if hub.codec_dropped > stream.codec_dropped:
            stream.codec_dropped, stream.codec_behind_at = hub.codec_dropped, now
        recorder_dropped = 0 if stream.recorder is None else stream.recorder.dropped_frames
        report = stream.meter.report(
            now,
            unsupported_video_codec=hub.unsupported_video_codec,
            unsupported_audio_codec=hub.unsupported_audio_codec,
            dropped_frames=hub.dropped_frames + recorder_dropped,
            transcode_behind=stream.codec_behind_at is not None
            and now - stream.codec_behind_at < BEHIND_WARNING_SECONDS,
        ).as_dict()
        report["publisher"] = "connected" if hub.publishing else "reconnecting"
        report["webrtc_video"] = hub.webrtc_video
        if self._webrtc_viewers is not None:
            report["webrtc_viewers"] = await self._webrtc_viewers(live_session_id)
        return report

    async def _finish(self, live_session_id: str, stream: _Stream) -> None:
        try:
            jpeg = await stream.thumbnails.jpeg(time.monotonic())
            if jpeg is not None:
                kept = self.thumbnails / f"{live_session_id}.jpg"
                kept.parent.mkdir(parents=True, exist_ok=True)
                await asyncio.to_thread(kept.write_bytes, jpeg)
            if stream.recorder is not None:
                await stream.recorder.close()
                await self._write_timeline(live_session_id, stream)
        except Exception:
            log.exception("stream %s: could not finish its outputs", live_session_id)

    async def _write_timeline(self, live_session_id: str, stream: _Stream) -> None:
        """The session's pins and flash sales during the recording, on its clock."""
        assert stream.recorder is not None
        started = stream.recording_started
        if started is None or not stream.recorder.path.exists():
            return
        saved = Timeline.load(timeline_path(stream.recorder.path))
        for entry in await self._timeline.timeline(live_session_id):
            at_ms = int((entry.at - started).total_seconds() * 1000)
            data = {"product_id": entry.product_id, **(entry.detail or {})}
            if entry.flash_sale_id is not None:
                data["flash_sale_id"] = entry.flash_sale_id
            saved.append(max(0, at_ms), entry.kind, data)


def _is_keyframe(packet: object) -> bool:
    return isinstance(packet, VideoFrame) and packet.keyframe


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
