"""Recording: a live stream remuxed (never re-encoded) to MP4, with its sale timeline.

The MP4 is fragmented (a fragment per keyframe, flushed as written): a crash or a
killed process loses at most the fragment in progress, and what is on disk always
plays. `Recorder` does the blocking PyAV work; `BackgroundRecorder` runs it on its own
thread behind a bounded queue so the event loop never waits for the disk. Pins and
flash sales are marked on the recording's own clock in `<name>.timeline.json`, so a
replay shows the right product at the right moment.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import queue
import threading
from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av
from av.container import OutputContainer
from av.stream import Stream

from media.h264 import NAL_PPS, NAL_SPS, nal_type, split_annexb
from media.packets import AudioConfig, AudioFrame, Packet, VideoConfig, VideoFrame

log = logging.getLogger("streamcart.media.recording")

MILLISECONDS = Fraction(1, 1000)
AAC_SAMPLES_PER_FRAME = 1024
# Fragment at every keyframe and flush each packet to the OS: a crash loses one GOP.
MP4_OPTIONS = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}
DEFAULT_MAX_QUEUED_FRAMES = 900  # ~10 s of 30 fps video with its audio
# AAC channel configurations -> FFmpeg layouts (metadata only: the ASC drives decoding).
AAC_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 8: "7.1"}
# The same names as the live layer's session timeline (live.analytics).
TIMELINE_KINDS = frozenset(
    {
        "pinned",
        "unpinned",
        "flash_started",
        "flash_ended",
        "auction_started",
        "auction_ended",
        "giveaway_started",
        "giveaway_drawn",
        "voucher_dropped",
    }
)


def timeline_path(video_path: Path) -> Path:
    """Where the timeline of a recording lives: `<name>.timeline.json` beside it."""
    return video_path.with_name(f"{video_path.stem}.timeline.json")


def _check_kind(kind: str) -> None:
    if kind not in TIMELINE_KINDS:
        raise ValueError(f"unknown timeline entry kind {kind!r}")


def _avcc_with_4_byte_lengths(avcc: bytes) -> bytes:
    """The avcC record, declaring the 4-byte NAL lengths every sample is written with."""
    return avcc[:4] + bytes([avcc[4] | 0x03]) + avcc[5:]


def _length_prefixed(annexb: bytes, in_sample_entry: frozenset[bytes]) -> bytes:
    """Annex-B -> the AVCC samples MP4 stores, minus parameter sets the header carries."""
    return b"".join(
        len(nal).to_bytes(4, "big") + nal
        for nal in split_annexb(annexb)
        if not (nal_type(nal) in (NAL_SPS, NAL_PPS) and nal in in_sample_entry)
    )


def _mux_streams(
    container: OutputContainer, video: VideoConfig, audio: AudioConfig | None
) -> tuple[Stream, Stream | None]:
    """Streams that take encoded packets as they are, described by the source's configs.

    PyAV opens an encoder for a new stream unless it is copied from a template; an
    unopened encoder stream in a scratch container is that template, and its codec
    parameters are then replaced with the publisher's (avcC, AudioSpecificConfig).
    """
    with av.open(io.BytesIO(), "w", format="mp4") as scratch:
        video_stream = container.add_stream_from_template(scratch.add_stream("h264"))
        video_context = video_stream.codec_context
        video_context.extradata = _avcc_with_4_byte_lengths(video.avcc)
        video_context.width, video_context.height = video.width, video.height
        video_stream.time_base = MILLISECONDS
        audio_stream = None
        if audio is not None:
            audio_stream = container.add_stream_from_template(scratch.add_stream("aac"))
            audio_context = audio_stream.codec_context
            audio_context.extradata = audio.asc
            audio_context.sample_rate = audio.sample_rate
            audio_context.layout = AAC_LAYOUTS.get(audio.channels, "stereo")
            audio_stream.time_base = MILLISECONDS
    return video_stream, audio_stream


class Recorder:
    """Writes one stream's source packets to an MP4 file. Blocking: use a worker thread.

    The file starts at the first keyframe after a video config (with the audio config
    known by then); earlier frames could not be decoded. Audio-only streams are not
    recorded. A packet the muxer refuses (a publisher clock going backwards) is skipped.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.frames_written = 0
        self.frames_refused = 0
        self._video_config: VideoConfig | None = None
        self._audio_config: AudioConfig | None = None
        self._file: BinaryIO | None = None
        self._container: OutputContainer | None = None
        self._video_stream: Stream | None = None
        self._audio_stream: Stream | None = None
        self._in_sample_entry: frozenset[bytes] = frozenset()
        self._origin_ms = 0
        self._position_ms = 0

    @property
    def position_ms(self) -> int:
        """How far the recording has got, on its own clock (0 = its first frame)."""
        return self._position_ms

    def write(self, packet: Packet) -> None:
        if isinstance(packet, VideoFrame):
            self._write_video(packet)
        elif isinstance(packet, AudioFrame):
            self._write_audio(packet)
        elif isinstance(packet, VideoConfig):
            if self._container is None:
                self._video_config = packet
            elif packet != self._video_config:
                log.info("recording %s: video config changed; in-band from here", self.path)
        elif isinstance(packet, AudioConfig) and self._container is None:
            self._audio_config = packet

    def _write_video(self, frame: VideoFrame) -> None:
        if self._container is None:
            if not frame.keyframe or self._video_config is None:
                return
            self._start(frame.dts)
        assert self._video_stream is not None  # set by _start
        data = _length_prefixed(frame.data, self._in_sample_entry)
        self._mux(self._video_stream, data, frame.dts, frame.pts, frame.keyframe, duration=0)

    def _write_audio(self, frame: AudioFrame) -> None:
        if self._audio_stream is None or self._audio_config is None:
            return
        duration = round(AAC_SAMPLES_PER_FRAME * 1000 / self._audio_config.sample_rate)
        timestamp = frame.timestamp
        self._mux(self._audio_stream, frame.data, timestamp, timestamp, True, duration)

    def _start(self, origin_ms: int) -> None:
        config = self._video_config
        assert config is not None  # checked by _write_video
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Opened here, unbuffered, not by FFmpeg: PyAV holds the GIL while FFmpeg opens a
        # file (a stalled disk would freeze the event loop), and Python's writes release it.
        self._file = self.path.open("wb", buffering=0)
        container = av.open(self._file, "w", format="mp4", options=MP4_OPTIONS)
        self._video_stream, self._audio_stream = _mux_streams(container, config, self._audio_config)
        self._container = container
        self._in_sample_entry = frozenset((*config.sps, *config.pps))
        self._origin_ms = origin_ms

    def _mux(
        self, stream: Stream, data: bytes, dts: int, pts: int, keyframe: bool, duration: int
    ) -> None:
        if dts < self._origin_ms:
            return  # before the recording's first keyframe
        assert self._container is not None  # streams exist only once it is open
        packet = av.Packet(data)
        packet.stream = stream
        packet.time_base = MILLISECONDS
        position_ms = dts - self._origin_ms
        packet.dts, packet.pts = position_ms, pts - self._origin_ms
        packet.duration = duration
        packet.is_keyframe = keyframe
        try:
            self._container.mux(packet)
        except (av.FFmpegError, ValueError) as error:
            if not self.frames_refused:
                log.warning("recording %s: muxer refused a packet (%s)", self.path, error)
            self.frames_refused += 1
            return
        self.frames_written += 1
        self._position_ms = max(self._position_ms, position_ms)

    def close(self) -> None:
        """Finish the file (its fragment index); safe to call when nothing was written."""
        if self._container is not None:
            self._container.close()
            self._container = None
        if self._file is not None:
            self._file.close()
            self._file = None


class Timeline:
    """The append-only list of sale events of one recording, saved atomically as JSON."""

    def __init__(self, path: Path, entries: list[dict[str, Any]] | None = None) -> None:
        self.path = path
        self._entries = list(entries or [])

    @classmethod
    def load(cls, path: Path) -> Timeline:
        """The saved timeline; empty when nothing was ever marked."""
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))["entries"]
        except FileNotFoundError:
            entries = []
        return cls(path, entries)

    @property
    def entries(self) -> list[dict[str, Any]]:
        return [dict(entry) for entry in self._entries]

    def append(self, at_ms: int, kind: str, data: Mapping[str, Any]) -> None:
        _check_kind(kind)
        self._entries.append({"at_ms": at_ms, "kind": kind, "data": dict(data)})
        self._save()

    def _save(self) -> None:
        """Write a temporary file and rename it over the old one: never a torn file."""
        partial = self.path.with_name(f"{self.path.name}.partial")
        with partial.open("w", encoding="utf-8") as file:
            json.dump({"entries": self._entries}, file, ensure_ascii=False)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, self.path)


@dataclass(frozen=True, slots=True)
class _Mark:
    kind: str
    data: Mapping[str, Any]


_CLOSE = object()


class BackgroundRecorder:
    """A `Recorder` on its own thread, fed from the event loop without ever blocking it.

    When the disk falls behind and `max_queued_frames` are waiting, frames are dropped
    until the next keyframe that fits (the file then skips, but stays decodable).
    `mark()` stamps a timeline entry at the point the recording has reached.
    """

    def __init__(self, path: Path, max_queued_frames: int = DEFAULT_MAX_QUEUED_FRAMES) -> None:
        self.path = path
        self.dropped_frames = 0
        self._recorder = Recorder(path)
        self._timeline = Timeline(timeline_path(path))
        self._max_queued_frames = max_queued_frames
        self._queue: queue.Queue[Packet | _Mark | object] = queue.Queue()
        self._skipping = False
        self._closed = False
        # A daemon: an unclosed recording must not keep the process alive, and the
        # fragmented file it leaves is playable anyway.
        self._thread = threading.Thread(target=self._run, name=f"recorder {path.name}", daemon=True)
        self._thread.start()

    def submit(self, packet: Packet) -> None:
        """Queue one source packet (others, like Opus, are ignored); never blocks."""
        if self._closed:
            return
        if isinstance(packet, VideoFrame | AudioFrame):
            if not self._admit_frame(packet):
                self.dropped_frames += 1
                return
        elif not isinstance(packet, VideoConfig | AudioConfig):
            return
        self._queue.put_nowait(packet)

    def _admit_frame(self, frame: VideoFrame | AudioFrame) -> bool:
        has_room = self._queue.qsize() < self._max_queued_frames
        if self._skipping:
            if not (has_room and isinstance(frame, VideoFrame) and frame.keyframe):
                return False
            self._skipping = False
            log.info("recording %s: resumed at a keyframe", self.path)
        elif not has_room:
            self._skipping = True
            log.warning("recording %s: disk falling behind; dropping to a keyframe", self.path)
            return False
        return True

    @property
    def backlog(self) -> int:
        """Packets waiting for the disk."""
        return self._queue.qsize()

    def mark(self, kind: str, data: Mapping[str, Any]) -> None:
        """Add a timeline entry (pinned, unpinned, flash_started, flash_ended) here."""
        _check_kind(kind)
        if not self._closed:
            self._queue.put_nowait(_Mark(kind, data))

    async def record(self, packets: AsyncIterable[Packet]) -> None:
        """Record a whole stream (e.g. a hub's source subscription), then close."""
        try:
            async for packet in packets:
                self.submit(packet)
        finally:
            await self.close()

    async def close(self) -> None:
        """Write what is queued, finish the file and stop the thread."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(_CLOSE)
        await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not _CLOSE:
                if isinstance(item, _Mark):
                    self._mark(item)
                else:
                    self._recorder.write(item)
        except Exception:
            self._closed = True
            log.exception("recording %s failed; the file ends here", self.path)
        finally:
            self._close_recorder()

    def _mark(self, mark: _Mark) -> None:
        try:
            self._timeline.append(self._recorder.position_ms, mark.kind, mark.data)
        except OSError:
            log.exception("recording %s: could not save the timeline", self.path)

    def _close_recorder(self) -> None:
        try:
            self._recorder.close()
        except (av.FFmpegError, OSError):
            log.exception("recording %s: could not finish the file", self.path)
