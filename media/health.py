"""Stream health: what the publisher is sending, and plain-language advice to fix it.

Streamers cannot see their stream the way the server does. `HealthMeter` watches the
source packets and measures rates on the publisher's own timestamps (so a burst after a
network hiccup does not read as a bitrate spike); `report()` turns the measurements into
a `StreamHealth` with warnings that say what to change in OBS. Warning codes are stable:
clients may key translations or help links on them.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from media.packets import AudioConfig, AudioFrame, Packet, VideoConfig, VideoFrame

WINDOW_MS = 5_000  # sliding window for bitrate and frame rate
MIN_MEASURED_SPAN_MS = 1_000  # below this a rate is noise, not a measurement
MAX_KEYFRAME_INTERVAL_S = 4.0
RECOMMENDED_KEYFRAME_INTERVAL_S = 2
MIN_FRAME_RATE = 20.0
MIN_BITS_PER_PIXEL = 0.03  # per frame; 720p30 -> ~830 kbps, 1080p30 -> ~1,900 kbps
MAX_VIDEO_KBPS = 8_000  # passthrough: every viewer needs this much bandwidth
MAX_SHORT_SIDE = 1080  # 1080p, landscape or portrait
NO_AUDIO_AFTER_MS = 3_000
SILENT_AFTER_S = 2.0  # wall-clock seconds without a packet before the rates read zero
SUPPORTED_SAMPLE_RATES = (44_100, 48_000)


@dataclass(frozen=True, slots=True)
class HealthWarning:
    code: str
    message: str


@dataclass(slots=True)
class StreamHealth:
    """One snapshot of a live stream's health, JSON-ready through `as_dict()`."""

    uptime_s: float
    video_codec: str | None = None
    profile: str | None = None
    level: str | None = None
    width: int | None = None
    height: int | None = None
    video_kbps: float | None = None
    frame_rate: float | None = None
    keyframe_interval_s: float | None = None
    bframes: bool = False
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    audio_kbps: float | None = None
    dropped_frames: int | None = None
    warnings: list[HealthWarning] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _RateWindow:
    """Sizes of the last few seconds of one track, keyed by their media timestamps."""

    def __init__(self) -> None:
        self._entries: deque[tuple[int, int]] = deque()
        self._bytes = 0  # of every entry but the first: the bytes sent over the span

    def add(self, timestamp: int, size: int) -> None:
        if self._entries and timestamp < self._entries[-1][0]:
            self._entries.clear()  # the publisher's clock restarted
            self._bytes = 0
        if self._entries:
            self._bytes += size
        self._entries.append((timestamp, size))
        while timestamp - self._entries[0][0] > WINDOW_MS:
            self._entries.popleft()
            self._bytes -= self._entries[0][1]

    def _span_ms(self) -> int | None:
        if not self._entries:
            return None
        span = self._entries[-1][0] - self._entries[0][0]
        return span if span >= MIN_MEASURED_SPAN_MS else None

    def kbps(self) -> float | None:
        span = self._span_ms()
        return None if span is None else self._bytes * 8 / span  # bits per ms = kbit/s

    def per_second(self) -> float | None:
        span = self._span_ms()
        return None if span is None else (len(self._entries) - 1) * 1000 / span


class HealthMeter:
    """Observes one stream's source packets; cheap enough to call for every packet."""

    def __init__(self) -> None:
        self._started_at: float | None = None
        self._last_packet_at: float | None = None
        self._video_config: VideoConfig | None = None
        self._audio_config: AudioConfig | None = None
        self._video = _RateWindow()
        self._audio = _RateWindow()
        self._first_video_dts: int | None = None
        self._latest_video_dts: int | None = None
        self._last_keyframe_dts: int | None = None
        self._keyframe_spacing_ms: int | None = None
        self._bframes = False

    def observe(self, packet: Packet, now: float) -> None:
        """Account for one packet; `now` is a monotonic clock reading in seconds."""
        if self._started_at is None:
            self._started_at = now
        self._last_packet_at = now
        if isinstance(packet, VideoFrame):
            self._observe_video_frame(packet)
        elif isinstance(packet, AudioFrame):
            self._audio.add(packet.timestamp, len(packet.data))
        elif isinstance(packet, VideoConfig):
            self._video_config = packet
        elif isinstance(packet, AudioConfig):
            self._audio_config = packet

    def _observe_video_frame(self, frame: VideoFrame) -> None:
        self._video.add(frame.dts, len(frame.data))
        if self._latest_video_dts is not None and frame.dts < self._latest_video_dts:
            self._first_video_dts = self._last_keyframe_dts = self._keyframe_spacing_ms = None
        if self._first_video_dts is None:
            self._first_video_dts = frame.dts
        self._latest_video_dts = frame.dts
        self._bframes = self._bframes or frame.composition_offset != 0
        if frame.keyframe:
            if self._last_keyframe_dts is not None:
                self._keyframe_spacing_ms = frame.dts - self._last_keyframe_dts
            self._last_keyframe_dts = frame.dts

    def _keyframe_interval_s(self) -> float | None:
        """The last IDR spacing, or longer while the next keyframe is overdue."""
        if self._last_keyframe_dts is None or self._latest_video_dts is None:
            return None
        since_last = (self._latest_video_dts - self._last_keyframe_dts) / 1000
        if self._keyframe_spacing_ms is None:
            return since_last if since_last > MAX_KEYFRAME_INTERVAL_S else None
        return max(self._keyframe_spacing_ms / 1000, since_last)

    def _video_duration_ms(self) -> int:
        if self._first_video_dts is None or self._latest_video_dts is None:
            return 0
        return self._latest_video_dts - self._first_video_dts

    def report(
        self,
        now: float,
        *,
        unsupported_video_codec: str | None = None,
        unsupported_audio_codec: str | None = None,
        dropped_frames: int | None = None,
        transcode_behind: bool = False,
    ) -> StreamHealth:
        """A snapshot; the unsupported codecs and drops are known to ingest and the hub
        (`transcode_behind`: its codec work skipped frames lately)."""
        video, audio = self._video_config, self._audio_config
        health = StreamHealth(
            uptime_s=round(now - self._started_at, 1) if self._started_at is not None else 0.0,
            bframes=self._bframes,
            dropped_frames=dropped_frames,
        )
        if video is not None:
            health.video_codec = "h264"
            health.profile, health.level = video.profile, video.level
            health.width, health.height = video.width, video.height
        if audio is not None:
            health.audio_codec = "aac"
            health.audio_sample_rate, health.audio_channels = audio.sample_rate, audio.channels
        silent_s = self._silent_s(now)
        if silent_s is None:
            health.video_kbps = _rounded(self._video.kbps())
            health.audio_kbps = _rounded(self._audio.kbps())
            health.frame_rate = _rounded(self._video.per_second())
        health.keyframe_interval_s = _rounded(self._keyframe_interval_s())
        health.warnings = _warnings(
            health,
            unsupported_video_codec,
            unsupported_audio_codec,
            audio_missing=audio is None and self._video_duration_ms() >= NO_AUDIO_AFTER_MS,
            transcode_behind=transcode_behind,
        )
        if silent_s is not None:  # the last rates measured are history, not the stream now
            health.video_kbps = health.audio_kbps = health.frame_rate = 0.0
            health.warnings.insert(0, _silent_warning(silent_s))
        return health

    def _silent_s(self, now: float) -> float | None:
        """Seconds since the last packet, once that is long enough to mean nothing arrives."""
        if self._last_packet_at is None or now - self._last_packet_at < SILENT_AFTER_S:
            return None
        return now - self._last_packet_at


def _silent_warning(silent_s: float) -> HealthWarning:
    return HealthWarning(
        "no-media",
        f"Nothing has arrived from the encoder for {silent_s:.0f} s: check that OBS is still "
        "streaming and that its network connection holds.",
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _seconds(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _min_kbps(health: StreamHealth) -> float | None:
    if health.width is None or health.height is None or health.frame_rate is None:
        return None
    return health.width * health.height * health.frame_rate * MIN_BITS_PER_PIXEL / 1000


def _warnings(
    health: StreamHealth,
    unsupported_video_codec: str | None,
    unsupported_audio_codec: str | None,
    *,
    audio_missing: bool,
    transcode_behind: bool = False,
) -> list[HealthWarning]:
    """Every piece of advice that applies, most disruptive first."""
    found: list[HealthWarning] = []

    def warn(code: str, message: str) -> None:
        found.append(HealthWarning(code, message))

    if unsupported_video_codec:
        warn(
            "video-codec",
            f"The video codec {unsupported_video_codec} is not supported, so viewers see "
            "nothing. In OBS choose x264 or a hardware H.264 encoder (Settings > Output).",
        )
    if unsupported_audio_codec:
        warn(
            "audio-codec",
            f"The audio codec {unsupported_audio_codec} is not supported, so viewers hear "
            "nothing. In OBS choose the AAC audio encoder (Settings > Output).",
        )
    elif audio_missing:
        warn(
            "no-audio",
            "No audio is arriving. Check that a microphone or desktop audio source is "
            "active and not muted in OBS.",
        )
    if transcode_behind:
        warn(
            "transcode-behind",
            "The server cannot re-encode your stream as fast as it arrives, so viewers "
            "miss frames. In OBS set the x264 option bframes=0 (or the zerolatency tune, "
            "or the Baseline profile) so it needs no re-encoding, or lower the resolution "
            "or frame rate (Settings > Output, Settings > Video).",
        )
    if health.bframes:
        warn(
            "b-frames",
            "Your stream uses B-frames, which browsers cannot play over WebRTC; the server "
            "is re-encoding it (see webrtc_video for the size and rate viewers get), which "
            "adds delay and CPU. In OBS set x264 Options to bframes=0 (or Tune to "
            "zerolatency, or Profile to baseline) in Settings > Output.",
        )
    interval = health.keyframe_interval_s
    if interval is not None and interval > MAX_KEYFRAME_INTERVAL_S:
        warn(
            "keyframe-interval",
            f"Keyframe interval is {_seconds(interval)} s: set Keyframe Interval to "
            f"{RECOMMENDED_KEYFRAME_INTERVAL_S} s in OBS (Settings > Output).",
        )
    kbps, min_kbps = health.video_kbps, _min_kbps(health)
    if kbps is not None and min_kbps is not None and kbps < min_kbps:
        suggested = math.ceil(min_kbps / 100) * 100
        warn(
            "bitrate-low",
            f"Video bitrate is {kbps:.0f} kbps, too low for {health.width}x{health.height}: "
            f"the picture will look blocky. In OBS set Bitrate to at least {suggested} kbps "
            "or lower the resolution (Settings > Output).",
        )
    if kbps is not None and kbps > MAX_VIDEO_KBPS:
        warn(
            "bitrate-high",
            f"Video bitrate is {kbps:.0f} kbps: every viewer receives the video as sent, so "
            f"many phones will stall. In OBS set Bitrate to {MAX_VIDEO_KBPS} kbps or less "
            "(Settings > Output).",
        )
    if health.frame_rate is not None and health.frame_rate < MIN_FRAME_RATE:
        warn(
            "frame-rate-low",
            f"Frame rate is {health.frame_rate:.0f} fps, so motion looks choppy. In OBS set "
            "Common FPS Values to 30 (Settings > Video); if OBS reports skipped frames, "
            "lower the resolution or use a faster encoder preset.",
        )
    short_side = min(health.width or 0, health.height or 0)
    if short_side > MAX_SHORT_SIDE:
        warn(
            "resolution-high",
            f"Resolution is {health.width}x{health.height}, above 1080p: it costs viewers "
            "bandwidth without a visible gain on phones. In OBS set Output (Scaled) "
            "Resolution to 1920x1080 or lower (Settings > Video).",
        )
    rate = health.audio_sample_rate
    if rate is not None and rate not in SUPPORTED_SAMPLE_RATES:
        warn(
            "audio-sample-rate",
            f"Audio sample rate is {rate} Hz: set Sample Rate to 48 kHz in OBS (Settings > Audio).",
        )
    return found
