"""The per-session stream hub: one publisher in, any number of subscribers out.

The publisher calls the plain sync `on_*` methods (a WHIP one sends its H.264 as FLV tags
too, and its Opus to `on_opus`, passed through); every packet is parsed once and
appended once to a shared, bounded `PacketTrack`. Subscribers read the same packet
objects through their own cursor, so publishing costs O(1) per packet whatever the
audience, a subscriber costs nothing until it reads, and no frame bytes are copied.
Two tracks exist: "source" (the original H.264 + AAC, for recording and thumbnails)
and "webrtc" (B-frame-free H.264 + Opus, what a browser can play).

A hub outlives its publisher's connection: when OBS drops and comes back within the
session's grace period, the same hub is `pause`d and `resume`d, so subscribers (viewers,
the recording, other replicas' pulls) read on without noticing more than a gap. The new
connection's clock restarts near zero; the hub shifts it so that stream time goes on
from where it stopped plus the real length of the gap, as a receiver's clock expects.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from media.flv import FlvDepacketizer, MediaFormatError
from media.packets import AudioConfig, AudioFrame, OpusFrame, Packet, VideoConfig, VideoFrame
from media.transcode import AacToOpus, BframeFreeH264, CodecWorker, OpusToAac

log = logging.getLogger("streamcart.media")

DEFAULT_MAX_QUEUE = 256  # ~3 s of 30 fps video with its audio
RETAINED_PACKETS = 1024  # kept behind the head for readers, beyond the cached GOP
MAX_CACHED_GOP = 4096  # a longer GOP is not cached (memory bound); joiners wait instead
TRANSCODER_MAX_PENDING = 64
KEYFRAME_REQUEST_SECONDS = 1.0  # at most one keyframe request to the publisher per second
CONFIG_TYPES = (VideoConfig, AudioConfig)


class StreamEnded(Exception):
    """The publisher stopped (or the subscription was closed) and nothing is left."""


class PacketTrack:
    """An append-only window of packets with sequence numbers and the last GOP.

    Entries are `(packet, sync)`: a sync point is where a reader may start (a keyframe;
    any audio frame when the stream has no video).
    """

    def __init__(self) -> None:
        self.closed = False
        self.skipped = 0  # packets its readers skipped, all of them together
        self.configs: dict[type, Packet] = {}
        self.config_seq = -1
        self.gop_start: int | None = None
        self.first = 0
        self._entries: deque[tuple[Packet, bool]] = deque()
        self._arrival = asyncio.Event()

    @property
    def head(self) -> int:
        return self.first + len(self._entries)

    def at(self, seq: int) -> tuple[Packet, bool]:
        return self._entries[seq - self.first]

    def append(self, packet: Packet, sync: bool) -> None:
        if isinstance(packet, CONFIG_TYPES):
            self.configs[type(packet)] = packet
            self.config_seq = self.head
        if sync:
            self.gop_start = self.head
        self._entries.append((packet, sync))
        self._trim()
        self._arrival.set()
        self._arrival.clear()

    def gop(self) -> Iterator[Packet]:
        """The packets from the latest sync point on."""
        if self.gop_start is not None:
            for seq in range(self.gop_start, self.head):
                yield self.at(seq)[0]

    def forget_gop(self) -> None:
        """New readers wait for the next sync point (the content is about to change)."""
        self.gop_start = None

    def close(self) -> None:
        self.closed = True
        self._arrival.set()

    def wake(self) -> None:
        self._arrival.set()
        self._arrival.clear()

    async def wait(self) -> None:
        await self._arrival.wait()

    def _trim(self) -> None:
        keep_from = self.head - RETAINED_PACKETS
        if self.gop_start is not None:
            if self.head - self.gop_start > MAX_CACHED_GOP:
                self.gop_start = None
            else:
                keep_from = min(keep_from, self.gop_start)
        while self.first < keep_from:
            self._entries.popleft()
            self.first += 1

    def subscribe(self, max_queue: int) -> Subscription:
        subscription = Subscription(self, max_queue)
        if self.closed:
            subscription.close()  # the stream is over: nothing to start from
        return subscription


class Subscription:
    """One reader of a track: the configs, the cached GOP, then live packets.

    A reader more than `max_queue` packets behind is lagging: it skips ahead to the
    latest keyframe (or drops everything until the next one), counting `dropped`;
    codec configs are never skipped. The packets it gets are shared, not copied.
    """

    def __init__(self, track: PacketTrack, max_queue: int) -> None:
        if not 0 < max_queue <= RETAINED_PACKETS:
            raise ValueError(f"max_queue must be between 1 and {RETAINED_PACKETS}")
        self.dropped = 0
        self._track = track
        self._max_queue = max_queue
        self._preamble: deque[Packet] = deque(track.configs.values())
        self._join_head = track.head
        self._closed = False
        self._cursor = track.head
        self._awaiting_sync = True
        if track.gop_start is not None:
            self._cursor, self._awaiting_sync = track.gop_start, False

    def get_nowait(self) -> Packet | None:
        """The next packet if one is ready; None otherwise."""
        if self._preamble:
            return self._preamble.popleft()
        track = self._track
        if self._closed:
            return None
        head = track.head
        if (
            self._cursor < track.first
            or head - max(self._cursor, self._join_head) > self._max_queue
        ):
            self._skip_ahead()
        while self._cursor < head:
            packet, sync = track.at(self._cursor)
            self._cursor += 1
            if self._awaiting_sync and not sync and not isinstance(packet, CONFIG_TYPES):
                self._drop(1)
                continue
            self._awaiting_sync = False
            return packet
        return None

    async def get(self) -> Packet:
        """Wait for the next packet; raises StreamEnded once the stream is over."""
        while True:
            packet = self.get_nowait()
            if packet is not None:
                return packet
            if self._closed or self._track.closed:
                raise StreamEnded
            await self._track.wait()

    def close(self) -> None:
        self._closed = True
        self._preamble.clear()
        self._track.wake()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Packet:
        try:
            return await self.get()
        except StreamEnded:
            raise StopAsyncIteration from None

    def _drop(self, packets: int) -> None:
        self.dropped += packets
        self._track.skipped += packets

    def _skip_ahead(self) -> None:
        track = self._track
        cursor = max(self._cursor, track.first)
        self._drop(cursor - self._cursor)
        gop_start = track.gop_start
        if gop_start is not None and gop_start > cursor:
            if cursor <= track.config_seq < gop_start:
                self._preamble.extend(track.configs.values())
            self._drop(gop_start - cursor)
            self._cursor, self._awaiting_sync = gop_start, False
        else:
            self._cursor, self._awaiting_sync = cursor, True
        self._join_head = 0


class StreamHub:
    """One live stream: the RTMP publisher's sink and its subscribers' source.

    The `on_*` methods are cheap and never block; codec work (AAC -> Opus, the B-frame
    fallback) runs on worker threads and comes back on the event loop. Create the hub
    on the loop that will call it.
    """

    def __init__(self, name: str = "stream", *, relayed: bool = False) -> None:
        """`relayed`: an edge's copy of another process's stream, fed by `on_relayed`."""
        self.name = name
        self._relayed_video: bool | None = False if relayed else None
        self.metadata: dict[str, Any] = {}
        self.bframes_detected = False
        self.malformed_packets = 0
        self.closed = False
        self._loop = asyncio.get_running_loop()
        self._depacketizer = FlvDepacketizer()
        self._source = PacketTrack()
        self._webrtc = PacketTrack()
        # AAC -> Opus for WebRTC (RTMP), or Opus -> AAC for the source track (WHIP)
        self._audio_worker: (
            CodecWorker[AudioFrame, OpusFrame] | CodecWorker[OpusFrame, AudioFrame] | None
        ) = None
        self._video_worker: CodecWorker[VideoFrame, VideoFrame] | None = None
        self._stopped_workers: list[CodecWorker] = []
        self._fallback: BframeFreeH264 | None = None
        self._close_callbacks: list[Callable[[StreamHub], None]] = []
        self.publishing = True
        self._workers_generation = 0
        self._shift_ms: int | None = 0  # publisher clock -> stream time; None: set on next
        self._resume_at_ms = 0
        self._latest_ms = 0
        self._paused_at = 0.0
        self.last_input_at = self._loop.time()  # a publisher silent for long is gone
        self._converted_audio_config: AudioConfig | None = None
        # How to ask the publisher for a keyframe (a WebRTC publisher can; RTMP cannot).
        self.keyframe_source: Callable[[], None] | None = None
        self._keyframe_requested_at = -KEYFRAME_REQUEST_SECONDS

    @property
    def video_config(self) -> VideoConfig | None:
        return self._depacketizer.video_config

    @property
    def audio_config(self) -> AudioConfig | None:
        return self._depacketizer.audio_config or self._converted_audio_config

    @property
    def unsupported_video_codec(self) -> str | None:
        return self._depacketizer.unsupported_video_codec

    @property
    def unsupported_audio_codec(self) -> str | None:
        return self._depacketizer.unsupported_audio_codec

    @property
    def latest_keyframe(self) -> VideoFrame | None:
        """The source keyframe that starts the cached GOP (for thumbnails)."""
        first = next(self._source.gop(), None)
        return first if isinstance(first, VideoFrame) else None

    def subscribe(self, webrtc: bool, max_queue: int = DEFAULT_MAX_QUEUE) -> Subscription:
        """webrtc=True: H.264 without B-frames + Opus; False: the original packets."""
        return (self._webrtc if webrtc else self._source).subscribe(max_queue)

    def add_close_callback(self, callback: Callable[[StreamHub], None]) -> None:
        self._close_callbacks.append(callback)

    def on_metadata(self, metadata: dict[str, Any]) -> None:
        self.metadata = dict(metadata)

    def pause(self) -> None:
        """The publisher's connection is gone but the stream may go on: readers wait,
        the codec workers stop (the next publisher may send something else)."""
        if self.closed or not self.publishing:
            return
        self.publishing = False
        self.keyframe_source = None
        self._paused_at = self._loop.time()
        self._stop_workers()
        log.info("stream %s: publisher left; waiting for it to come back", self.name)

    def resume(self) -> None:
        """The same stream's publisher is back: its packets continue the stream's time
        after the gap, and a B-frame fallback starts again only if they need one."""
        if self.closed or self.publishing:
            return
        gap_ms = max(1, round((self._loop.time() - self._paused_at) * 1000))
        self._resume_at_ms = self._latest_ms + gap_ms
        self._shift_ms = None
        self.publishing = True
        self.last_input_at = self._loop.time()
        self.bframes_detected = False
        log.info("stream %s: publisher back after %d ms", self.name, gap_ms)

    @property
    def webrtc_video(self) -> dict[str, Any] | None:
        """What WebRTC viewers get when the B-frame fallback re-encodes: its size, rate,
        why that one, and the share of real time it takes (None: passed through)."""
        fallback = self._fallback
        rendition = None if fallback is None else fallback.rendition
        if fallback is None or rendition is None:
            return None
        return {
            "width": rendition.width,
            "height": rendition.height,
            "frame_rate": rendition.frame_rate,
            "reason": rendition.reason,
            "load": round(fallback.load, 2),
        }

    @property
    def codec_dropped(self) -> int:
        """Input frames the codec workers (Opus, the B-frame fallback) had to skip to
        keep up, over the stream's life."""
        workers = (*self._stopped_workers, self._audio_worker, self._video_worker)
        return sum(worker.dropped for worker in workers if worker is not None)

    @property
    def dropped_frames(self) -> int:
        """Frames of the viewers' copy that never reached them: skipped by the codec
        workers, or by readers that fell behind (a lagging fan-out or relay pull)."""
        return self.codec_dropped + self._webrtc.skipped

    def on_video(self, timestamp_ms: int, payload: bytes) -> None:
        timestamp_ms = self._stream_time(timestamp_ms)
        for packet in self._parse(self._depacketizer.video, timestamp_ms, payload):
            if isinstance(packet, VideoFrame):
                self._video_frame(packet)
            else:
                self._source.append(packet, sync=False)

    def on_audio(self, timestamp_ms: int, payload: bytes) -> None:
        timestamp_ms = self._stream_time(timestamp_ms)
        for packet in self._parse(self._depacketizer.audio, timestamp_ms, payload):
            if isinstance(packet, AudioConfig):
                self._source.append(packet, sync=False)
                self._start_audio_transcoder(packet)
                continue
            self._source.append(packet, sync=self._audio_only)
            if self._audio_worker is not None:
                self._audio_worker.submit(packet, sync=True)

    def on_opus(self, frame: OpusFrame) -> None:
        """Opus from a WebRTC publisher (WHIP): to WebRTC readers as it came, and to the
        source track as AAC, converted once per stream, for what needs AAC."""
        if self.closed:
            return
        frame = OpusFrame(frame.data, self._stream_time(frame.timestamp), frame.samples)
        self._deliver_webrtc([frame])
        if self._audio_worker is None:
            self.expect_opus()
        assert self._audio_worker is not None  # started just above
        self._audio_worker.submit(frame, sync=True)

    def expect_opus(self) -> None:
        """The publisher will send Opus: its AAC config goes on the source track now, as
        an RTMP publisher's sequence header does before any frame, so a recording that
        starts at the first keyframe has its audio."""
        converter = OpusToAac()
        self._deliver_source([converter.config])
        self._audio_worker = self._worker("aac", converter, self._deliver_source)

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe (a viewer joined, a segment needs one); at
        most once a second, and only where the publisher can be asked (WHIP)."""
        now = self._loop.time()
        source = self.keyframe_source
        if source is None or now - self._keyframe_requested_at < KEYFRAME_REQUEST_SECONDS:
            return
        self._keyframe_requested_at = now
        source()

    def on_relayed(self, packet: VideoFrame | OpusFrame) -> None:
        """A packet of the origin's WebRTC track, already what a browser plays. Until
        the first video frame the stream counts as audio-only, as on the origin."""
        if isinstance(packet, VideoFrame):
            self._relayed_video = True
        self._deliver_webrtc([packet])

    def close(self) -> None:
        """End the stream: readers drain what is left, workers stop. Never blocks."""
        if self.closed:
            return
        self.closed = True
        self._source.close()
        self._webrtc.close()
        self._stop_workers()
        for callback in self._close_callbacks:
            try:
                callback(self)
            except Exception:
                log.exception("stream %s: close callback failed", self.name)

    async def wait_closed(self) -> None:
        """Wait until the worker threads have stopped (for shutdown and tests)."""
        for worker in self._stopped_workers:
            await asyncio.to_thread(worker.join)

    def _stop_workers(self) -> None:
        """Close the codec workers; whatever they still hand back is ignored."""
        self._workers_generation += 1
        for worker in (self._audio_worker, self._video_worker):
            if worker is not None:
                worker.close()
                self._stopped_workers.append(worker)
        self._audio_worker = self._video_worker = self._fallback = None

    def _stream_time(self, timestamp_ms: int) -> int:
        self.last_input_at = self._loop.time()
        if self._shift_ms is None:  # the first packet since a resume
            self._shift_ms = self._resume_at_ms - timestamp_ms
        stream_ms = timestamp_ms + self._shift_ms
        self._latest_ms = max(self._latest_ms, stream_ms)
        return stream_ms

    @property
    def _audio_only(self) -> bool:
        if self._relayed_video is not None:
            return not self._relayed_video
        return self._depacketizer.video_config is None

    def _parse(
        self, parse: Callable[[int, bytes], list[Packet]], timestamp_ms: int, payload: bytes
    ) -> list[Packet]:
        if self.closed:
            return []
        try:
            return parse(timestamp_ms, payload)
        except MediaFormatError as error:
            self.malformed_packets += 1
            if self.malformed_packets == 1:
                log.warning("stream %s: dropped a malformed packet: %s", self.name, error)
            return []

    def _video_frame(self, frame: VideoFrame) -> None:
        self._source.append(frame, sync=frame.keyframe)
        if self._video_worker is not None:
            self._video_worker.submit(frame, sync=frame.keyframe)
        elif frame.pts != frame.dts:
            self._start_video_fallback()
        else:
            self._webrtc.append(frame, sync=frame.keyframe)

    def _start_video_fallback(self) -> None:
        """B-frames seen: WebRTC readers switch to a once-per-stream re-encode."""
        self.bframes_detected = True
        log.info("stream %s: B-frames detected, re-encoding video for WebRTC", self.name)
        transcoder = self._fallback = BframeFreeH264(
            bitrate=_metadata_number(self.metadata, "videodatarate", scale=1000),
            frame_rate=_metadata_number(self.metadata, "framerate", "fps"),
        )
        self._video_worker = self._worker("h264", transcoder)
        self._webrtc.forget_gop()
        for packet in self._source.gop():
            if isinstance(packet, VideoFrame):
                self._video_worker.submit(packet, sync=packet.keyframe)

    def _start_audio_transcoder(self, config: AudioConfig) -> None:
        if self._audio_worker is not None:
            self._audio_worker.close()
        self._audio_worker = self._worker("opus", AacToOpus(config))

    def _worker(
        self,
        kind: str,
        convert: Callable[[Any], list[Any]],
        to: Callable[[list[Packet]], None] | None = None,
    ) -> CodecWorker:
        """`to`: where its output goes (the WebRTC track unless said)."""
        generation = self._workers_generation
        target = to or self._deliver_webrtc

        def deliver(packets: list[Packet]) -> None:
            if generation == self._workers_generation:
                target(packets)

        return CodecWorker(
            f"{self.name}-{kind}",
            convert,
            deliver,
            self._loop,
            max_pending=TRANSCODER_MAX_PENDING,
        )

    def _deliver_webrtc(self, packets: list[Packet]) -> None:
        if self.closed:
            return
        for packet in packets:
            sync = packet.keyframe if isinstance(packet, VideoFrame) else self._audio_only
            self._webrtc.append(packet, sync=sync)

    def _deliver_source(self, packets: list[Packet]) -> None:
        if self.closed:
            return
        for packet in packets:
            if isinstance(packet, AudioConfig):
                self._converted_audio_config = packet
                self._source.append(packet, sync=False)
            else:
                self._source.append(packet, sync=self._audio_only)


class Publisher:
    """One publisher connection's sink into a hub (what the RTMP server feeds). When the
    connection goes, the hub pauses rather than ends, and `left` is told: the live
    layer decides whether the stream waits for its publisher or is over."""

    def __init__(self, hub: StreamHub, left: Callable[[StreamHub], None]) -> None:
        self.hub = hub
        self.on_metadata = hub.on_metadata
        self.on_audio = hub.on_audio
        self.on_video = hub.on_video
        self.on_opus = hub.on_opus
        self._left: Callable[[StreamHub], None] | None = left

    def close(self) -> None:
        """Idempotent; whatever the old connection still hands in is ignored."""
        left, self._left = self._left, None
        if left is not None:
            self.on_metadata = self.on_audio = self.on_video = self.on_opus = _ignored
            self.hub.pause()
            left(self.hub)


def _ignored(*_: object) -> None:
    return None


def _metadata_number(metadata: dict[str, Any], *keys: str, scale: int = 1) -> float | None:
    for key in keys:
        value = metadata.get(key)
        if isinstance(value, int | float) and value > 0:
            return value * scale
    return None
