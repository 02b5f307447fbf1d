"""Cuts a stream hub's source packets into CMAF segments and partial segments.

A segment starts at a keyframe once the one before has lasted `segment_target`, so
segments are as long as the publisher's keyframe interval (at least the target). Parts
are cut every `part_target` or less whatever the frame types: a part that begins with
a keyframe is independent. A frame's duration is known only when the next one arrives,
so a part closes one frame late; that is what keeps every part within the target.
Segments older than `window` seconds are dropped and the media sequence moves on.

Segments carry no parameter sets: the init segment's avcC (and esds) has them. When
the publisher's codec config changes (a WHIP publisher scaling its video, an RTMP one
back at another size), the next keyframe starts a segment with an init segment of its
own, marked as a discontinuity; frames of the new config before that keyframe are
dropped, as nothing could decode them.

Program date-time: the wall clock when the first frame arrived, moved along by the
stream's own timestamps, so it is monotonic and on the video's clock.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from media.hls import fmp4
from media.hls.dateranges import DateRange
from media.hls.playlist import (
    PART_HOLD_BACK_PARTS,
    MediaPlaylist,
    PartEntry,
    SegmentEntry,
    checked_hold_back,
)
from media.packets import AudioConfig, AudioFrame, Packet, VideoConfig, VideoFrame

AAC_FRAME_SAMPLES = 1024
AUDIO_RESYNC_MS = 100  # audio timestamps further than this from the count restart it
PART_HORIZON_TARGETS = 3  # parts listed for the last 3 target durations, as the spec asks
KEYFRAME_WANTED_AFTER = 2  # segment targets without a keyframe before one is asked for


@dataclass(slots=True)
class Part:
    data: bytes | memoryview
    duration: float  # seconds
    independent: bool


@dataclass(slots=True)
class Segment:
    msn: int
    start_ms: int
    program_date_time: datetime
    parts: list[Part] = field(default_factory=list)
    complete: bool = False
    data: bytes = b""  # the parts joined, once complete
    init_index: int = 0  # which init segment decodes it
    discontinuity: bool = False  # the first one of a new init segment

    @property
    def duration(self) -> float:
        return sum(part.duration for part in self.parts)


class Segmenter:
    """Feed it packets; read `init`, `segments` and the playlist. Pure: no I/O, no clock
    but the `now` it is given for the first frame."""

    def __init__(
        self,
        *,
        part_target: float = 0.5,
        segment_target: float = 1.0,
        window: float = 60.0,
        hold_back_parts: float = PART_HOLD_BACK_PARTS,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.hold_back_parts = checked_hold_back(hold_back_parts)
        self.part_target = part_target
        self.segment_target = segment_target
        self.window = window
        self.init: bytes | None = None  # the latest init segment
        self.init_index = -1  # and its number (init_uri), -1 before the first
        self.inits: dict[int, bytes] = {}  # those the segments in the window need
        self.segments: deque[Segment] = deque()
        self.ended = False
        self.discontinuity_sequence = 0  # discontinuities that have left the window
        self._now = now
        self._video_config: VideoConfig | None = None
        self._audio_config: AudioConfig | None = None
        self._init_video: VideoConfig | None = None  # the configs the latest init has
        self._init_audio: AudioConfig | None = None  # (None: it has no audio track)
        self._clock: tuple[int, datetime] | None = None  # (first dts, its wall time)
        self._held: VideoFrame | None = None  # the frame whose duration is not known yet
        self._last_frame_ms = 0
        self._part_frames: list[tuple[VideoFrame, int]] = []
        self._audio: list[AudioFrame] = []
        self._audio_next: int | None = None  # next AAC sample time, in the sample rate
        self._fragments = 0
        self._longest = 0.0

    @property
    def target_duration(self) -> int:
        """EXT-X-TARGETDURATION: no segment so far rounds to more (it only grows)."""
        return max(1, math.ceil(self.segment_target), round(self._longest))

    @property
    def ready(self) -> bool:
        """Whether a playlist may be served: once the first segment is complete, so its
        target duration (the keyframe interval, rounded) does not change afterwards."""
        return self._longest > 0 or self.ended

    @property
    def next_part(self) -> tuple[int, int] | None:
        """(msn, part index) of the part being written, for the preload hint."""
        if not self.segments or self.ended:
            return None
        last = self.segments[-1]
        return (last.msn + 1, 0) if last.complete else (last.msn, len(last.parts))

    @property
    def wants_keyframe(self) -> bool:
        """The open segment has run past KEYFRAME_WANTED_AFTER times its target with no
        keyframe to cut at: a WebRTC publisher sends one only when asked."""
        if self._held is None or not self.segments or self.ended:
            return False
        if self._reconfigured:
            return True
        running_ms = self._held.dts - self.segments[-1].start_ms
        return running_ms >= KEYFRAME_WANTED_AFTER * self.segment_target * 1000

    def feed(self, packet: Packet) -> bool:
        """Take one packet; True when a part (or the init segment) was added."""
        if isinstance(packet, VideoConfig):
            self._video_config = packet
        elif isinstance(packet, AudioConfig):
            self._audio_config = packet
        elif isinstance(packet, AudioFrame):
            if self._init_audio is not None and self._audio_config == self._init_audio:
                self._audio.append(packet)
        elif isinstance(packet, VideoFrame):
            return self._video(packet)
        return False

    def end(self) -> None:
        """The stream is over: its last frame and part are written, the segment closed."""
        if self._held is not None and not self.ended:
            duration = self._last_frame_ms or round(self.part_target * 1000)
            self._add_held(duration)
            self._close_part(self._held.dts + duration)
            self._close_segment()
        self.ended = True

    def segment(self, msn: int) -> Segment | None:
        first = self.segments[0].msn if self.segments else 0
        if 0 <= msn - first < len(self.segments):
            return self.segments[msn - first]
        return None

    def playlist(
        self, dateranges: Sequence[DateRange] = (), *, low_latency: bool = True
    ) -> MediaPlaylist:
        """The live media playlist, with the date ranges that overlap its window."""
        horizon = PART_HORIZON_TARGETS * self.target_duration
        entries: list[SegmentEntry] = []
        behind = 0.0
        for segment in reversed(self.segments):
            with_parts = low_latency and (behind < horizon or not segment.complete)
            entries.append(_entry(segment, with_parts))
            behind += segment.duration
        entries.reverse()
        hint = self.next_part if low_latency else None
        return MediaPlaylist(
            segments=entries,
            target_duration=self.target_duration,
            part_target=self.part_target if low_latency else None,
            dateranges=dateranges,
            preload_hint=None if hint is None else part_uri(*hint),
            ended=self.ended,
            init_uri=init_uri(self.segments[0].init_index if self.segments else 0),
            media_sequence=self.segments[0].msn if self.segments else 0,
            discontinuity_sequence=self.discontinuity_sequence,
            hold_back_parts=self.hold_back_parts,
        )

    @property
    def _reconfigured(self) -> bool:
        """The publisher's codec config is no longer the latest init segment's (a stream
        whose first init had no audio track gets none later)."""
        if self.init is None:
            return False
        audio_changed = self._init_audio is not None and self._audio_config != self._init_audio
        return self._video_config != self._init_video or audio_changed

    def _video(self, frame: VideoFrame) -> bool:
        if self.ended:
            return False
        if self.init is None:
            if not frame.keyframe or self._video_config is None:
                return False
            self._new_init(self._audio_config)
            self._clock = (frame.dts, self._now())
            self._held = frame
            self._open_segment(frame.dts)
            return True
        if self._video_config != self._init_video and not frame.keyframe:
            return False  # it needs the new parameter sets: wait for a keyframe
        held = self._held
        assert held is not None
        duration = frame.dts - held.dts
        if not 0 < duration <= self.part_target * 1000:  # a gap: a publisher came back
            duration = self._last_frame_ms or 1
        self._last_frame_ms = duration
        added = self._add_held(duration)
        self._held = frame
        segment = self.segments[-1]
        reconfigured = frame.keyframe and self._reconfigured
        if reconfigured or (
            frame.keyframe and frame.dts - segment.start_ms >= self.segment_target * 1000
        ):
            self._close_part(frame.dts)
            self._close_segment()
            if reconfigured:
                self._new_init(self._audio_config if self._init_audio is not None else None)
            self._open_segment(frame.dts, discontinuity=reconfigured)
            return True
        return added

    def _new_init(self, audio: AudioConfig | None) -> None:
        """An init segment for the current video config and `audio` (None: no audio)."""
        assert self._video_config is not None
        if audio != self._init_audio:
            self._audio.clear()  # frames of the old config: the new init cannot decode them
        self._init_video, self._init_audio = self._video_config, audio
        self.init = fmp4.init_segment(self._video_config, audio)
        self.init_index += 1
        self.inits[self.init_index] = self.init
        self._audio_next = None  # a new audio config starts its own sample count

    def _add_held(self, duration: int) -> bool:
        """The held frame goes into the open part, or opens the next one when it would
        take the part past the target."""
        assert self._held is not None
        added = False
        part_ms = sum(ms for _, ms in self._part_frames)
        if self._part_frames and part_ms + duration > self.part_target * 1000:
            self._close_part(self._held.dts)
            added = True
        self._part_frames.append((self._held, duration))
        return added

    def _close_part(self, until_ms: int) -> None:
        frames, self._part_frames = self._part_frames, []
        if not frames:
            return
        audio = [a for a in self._audio if a.timestamp < until_ms]
        self._audio = self._audio[len(audio) :]
        runs = [
            fmp4.TrackRun(
                fmp4.VIDEO_TRACK,
                frames[0][0].dts * 90,
                [
                    fmp4.Sample(
                        fmp4.length_prefixed(frame.data),
                        ms * 90,
                        frame.keyframe,
                        frame.composition_offset * 90,
                    )
                    for frame, ms in frames
                ],
            )
        ]
        if audio and self._init_audio is not None:
            runs.append(self._audio_run(audio, self._init_audio.sample_rate))
        self._fragments += 1
        part = Part(
            fmp4.fragment(self._fragments, runs),
            sum(ms for _, ms in frames) / 1000,
            frames[0][0].keyframe,
        )
        self.segments[-1].parts.append(part)

    def _audio_run(self, frames: list[AudioFrame], rate: int) -> fmp4.TrackRun:
        stamped = frames[0].timestamp * rate // 1000
        if (
            self._audio_next is None
            or abs(self._audio_next - stamped) > AUDIO_RESYNC_MS * rate // 1000
        ):
            self._audio_next = stamped
        start = self._audio_next
        self._audio_next += AAC_FRAME_SAMPLES * len(frames)
        samples = [fmp4.Sample(frame.data, AAC_FRAME_SAMPLES, True) for frame in frames]
        return fmp4.TrackRun(fmp4.AUDIO_TRACK, start, samples)

    def _open_segment(self, start_ms: int, *, discontinuity: bool = False) -> None:
        assert self._clock is not None
        first_ms, wall = self._clock
        msn = self.segments[-1].msn + 1 if self.segments else 0
        moment = wall + timedelta(milliseconds=start_ms - first_ms)
        self.segments.append(
            Segment(msn, start_ms, moment, init_index=self.init_index, discontinuity=discontinuity)
        )

    def _close_segment(self) -> None:
        segment = self.segments[-1]
        segment.complete = True
        segment.data = b"".join(part.data for part in segment.parts)
        view, offset = memoryview(segment.data), 0
        for part in segment.parts:  # one copy of the bytes: parts are views of it
            size = len(part.data)
            part.data, offset = view[offset : offset + size], offset + size
        self._longest = max(self._longest, segment.duration)
        kept = sum(s.duration for s in self.segments if s.complete)
        while len(self.segments) > 1 and kept - self.segments[0].duration >= self.window:
            dropped = self.segments.popleft()
            kept -= dropped.duration
            self.discontinuity_sequence += dropped.discontinuity
        needed = {segment.init_index for segment in self.segments}
        self.inits = {index: init for index, init in self.inits.items() if index in needed}


def init_uri(index: int) -> str:
    """The first init segment keeps the name it always had; later ones are numbered."""
    return "init.mp4" if index == 0 else f"init-{index}.mp4"


def segment_uri(msn: int) -> str:
    return f"seg{msn}.m4s"


def part_uri(msn: int, index: int) -> str:
    return f"part{msn}.{index}.m4s"


def _entry(segment: Segment, with_parts: bool) -> SegmentEntry:
    parts = (
        tuple(
            PartEntry(part_uri(segment.msn, index), part.duration, part.independent)
            for index, part in enumerate(segment.parts)
        )
        if with_parts
        else ()
    )
    return SegmentEntry(
        uri=segment_uri(segment.msn),
        duration=segment.duration,
        program_date_time=segment.program_date_time,
        parts=parts,
        complete=segment.complete,
        init_uri=init_uri(segment.init_index),
        discontinuity=segment.discontinuity,
    )
