"""Once-per-stream codec work: AAC -> Opus and a B-frame-free H.264 fallback for WebRTC,
and Opus -> AAC for what needs AAC (recording, HLS) when the publisher sent Opus (WHIP).

Browsers play neither AAC nor (smoothly) H.264 with B-frames over WebRTC, so the hub
runs these pipelines once per stream, never per viewer. Each runs in its own daemon
thread (PyAV releases the GIL inside codec calls) behind a bounded input queue: when
a pipeline falls behind, input is dropped up to the next keyframe rather than queued
without bound, and results go back to the event loop with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from typing import Generic, TypeVar

import av
from av.video.frame import PictureType

from media.packets import AudioConfig, AudioFrame, OpusFrame, VideoFrame
from media.renditions import LoadMeter, Rendition, ladder_for

log = logging.getLogger("streamcart.media")

MILLISECONDS = Fraction(1, 1000)
OPUS_RATE = 48000
OPUS_FRAME_SAMPLES = 2880
OPUS_FRAME_MS = 60
AUDIO_RESYNC_MS = 200
OPUS_BITRATE = 64_000
AAC_FRAME_SAMPLES = 1024
AAC_BITRATE = 128_000
FALLBACK_KEYFRAME_SECONDS = 2
FALLBACK_PRESET = "superfast"  # keeping real time matters more than veryfast's finer quality
DEFAULT_FALLBACK_BITRATE = 2_500_000
DEFAULT_FRAME_RATE = 30.0
FAILURES_PER_LOG_LINE = 100

In = TypeVar("In")
Out = TypeVar("Out")


def _packet(data: bytes, pts: int, dts: int) -> av.Packet:
    packet = av.Packet(data)
    packet.pts, packet.dts, packet.time_base = pts, dts, MILLISECONDS
    return packet


class _AudioReencoder:
    """Decodes, resamples to 48 kHz stereo and encodes fixed-size frames, stamped by
    counting them from the first input timestamp (millisecond-rounded input timestamps
    would jitter); a jump in the publisher's audio clock beyond `AUDIO_RESYNC_MS` moves
    them along. Subclasses pick the codecs and wrap what comes out."""

    def __init__(
        self,
        decoder: av.CodecContext,
        encoder: str,
        sample_format: str,
        frame_samples: int,
        bit_rate: int,
        *,
        unstamp_decoded: bool = False,
    ) -> None:
        self._decoder = decoder
        self._resampler = av.AudioResampler(
            format=sample_format, layout="stereo", rate=OPUS_RATE, frame_size=frame_samples
        )
        self._encoder = av.CodecContext.create(encoder, "w")
        self._encoder.sample_rate = OPUS_RATE
        self._encoder.layout = "stereo"
        self._encoder.format = sample_format
        self._encoder.time_base = Fraction(1, OPUS_RATE)
        self._encoder.bit_rate = bit_rate
        self._frame_ms = frame_samples * 1000 / OPUS_RATE
        self._unstamp_decoded = unstamp_decoded
        self._input_ms: float | None = None
        self._output_ms = 0.0

    def _reencode(self, data: bytes, timestamp: int) -> list[tuple[bytes, int]]:
        """The encoded frames made from one input frame, each with its timestamp (ms)."""
        if self._input_ms is None:
            self._input_ms = self._output_ms = float(timestamp)
        gap = timestamp - self._input_ms
        if abs(gap) > AUDIO_RESYNC_MS:
            self._input_ms += gap
            self._output_ms += gap
        out = []
        for decoded in self._decoder.decode(av.Packet(data)):
            self._input_ms += decoded.samples * 1000 / decoded.sample_rate
            if self._unstamp_decoded:
                decoded.pts = None
            for resampled in self._resampler.resample(decoded):
                for packet in self._encoder.encode(resampled):
                    out.append((bytes(packet), round(self._output_ms)))
                    self._output_ms += self._frame_ms
        return out


class AacToOpus(_AudioReencoder):
    """Decodes AAC, resamples to 48 kHz stereo s16 and encodes 60 ms Opus packets: a third
    of the packets (and of the per-viewer sends) 20 ms ones would be (docs/webrtc.md).

    Output timestamps advance exactly 60 ms per packet, as `_AudioReencoder` stamps them.
    """

    def __init__(self, config: AudioConfig) -> None:
        decoder = av.CodecContext.create("aac", "r")
        decoder.extradata = config.asc
        super().__init__(decoder, "libopus", "s16", OPUS_FRAME_SAMPLES, OPUS_BITRATE)
        self._encoder.options = {"frame_duration": str(OPUS_FRAME_MS)}

    def __call__(self, frame: AudioFrame) -> list[OpusFrame]:
        return [
            OpusFrame(data, timestamp, OPUS_FRAME_SAMPLES)
            for data, timestamp in self._reencode(frame.data, frame.timestamp)
        ]


class OpusToAac(_AudioReencoder):
    """Decodes a WebRTC publisher's Opus and encodes 48 kHz stereo AAC: the mirror of
    `AacToOpus`. `config` is known before any input (it depends on nothing the publisher
    sends); the output is raw AAC frames stamped as there.
    """

    def __init__(self) -> None:
        decoder = av.CodecContext.create("opus", "r")
        super().__init__(
            decoder, "aac", "fltp", AAC_FRAME_SAMPLES, AAC_BITRATE, unstamp_decoded=True
        )
        self._encoder.open()
        self.config = AudioConfig(bytes(self._encoder.extradata or b""), OPUS_RATE, 2)

    def __call__(self, frame: OpusFrame) -> list[AudioFrame]:
        return [
            AudioFrame(data, timestamp)
            for data, timestamp in self._reencode(frame.data, frame.timestamp)
        ]


class BframeFreeH264:
    """Re-encodes H.264 without B-frames (libx264, zerolatency), keyframes every ~2 s, at
    the size and rate the machine keeps up with (media/renditions.py).

    libx264 without global headers repeats SPS/PPS before every IDR, so its Annex-B
    output is ready for late joiners as is, and a new output size reaches viewers in
    band. Timestamps stay in milliseconds on the publisher's clock, in presentation
    order with pts == dts. A lower output rate keeps every n-th decoded frame.
    """

    def __init__(self, bitrate: float | None = None, frame_rate: float | None = None) -> None:
        self._bitrate = int(bitrate or DEFAULT_FALLBACK_BITRATE)
        self._frame_rate = frame_rate or DEFAULT_FRAME_RATE
        self._decoder = av.CodecContext.create("h264", "r")
        self._encoder: av.VideoCodecContext | None = None
        self._encoding: Rendition | None = None
        self._meter: LoadMeter | None = None
        self._last_kept_pts: int | None = None

    @property
    def rendition(self) -> Rendition | None:
        """What viewers get now, and why (None before the first picture)."""
        return None if self._meter is None else self._meter.current

    @property
    def load(self) -> float:
        """The share of real time the last measured window took to re-encode."""
        return 0.0 if self._meter is None else self._meter.load

    def __call__(self, frame: VideoFrame) -> list[VideoFrame]:
        started = time.perf_counter()
        out = []
        for decoded in self._decoder.decode(_packet(frame.data, frame.pts, frame.dts)):
            meter = self._meter_for(decoded)
            rendition = meter.current
            if not self._due(decoded.pts, rendition.frame_rate):
                continue
            encoder = self._encoder_for(rendition, meter.ladder[0])
            picture = decoded
            if (decoded.width, decoded.height) != (rendition.width, rendition.height):
                picture = decoded.reformat(
                    rendition.width, rendition.height, "yuv420p", interpolation="FAST_BILINEAR"
                )
                picture.pts, picture.time_base = decoded.pts, decoded.time_base
            picture.pict_type = PictureType.NONE  # let x264 place keyframes
            for packet in encoder.encode(picture):
                out.append(VideoFrame(bytes(packet), packet.is_keyframe, packet.pts, packet.pts))
        if self._meter is not None:
            self._meter.observe(time.perf_counter() - started, frame.dts)
        return out

    def _meter_for(self, decoded: av.VideoFrame) -> LoadMeter:
        """The load meter choosing the output; a new ladder when the source's size
        changes."""
        meter = self._meter
        if meter is None or (meter.ladder[0].width, meter.ladder[0].height) != (
            decoded.width,
            decoded.height,
        ):
            meter = self._meter = LoadMeter(
                ladder_for(decoded.width, decoded.height, self._frame_rate)
            )
        return meter

    def _due(self, pts: int, frame_rate: float) -> bool:
        """Whether this decoded frame is one the output rate keeps."""
        last = self._last_kept_pts
        source_interval, interval = 1000 / self._frame_rate, 1000 / frame_rate
        if last is not None and last <= pts < last + interval - source_interval / 2:
            return False
        self._last_kept_pts = pts
        return True

    def _encoder_for(self, rendition: Rendition, source: Rendition) -> av.VideoCodecContext:
        """The open encoder, (re)opened on the first frame and when the output changes;
        its bitrate the source's, scaled by the share of its pixels it keeps."""
        if self._encoder is None or self._encoding != rendition:
            if self._encoding is not None:
                log.info("B-frame fallback: now %s (%s)", rendition.label(), rendition.reason)
            share = min(1.0, max(rendition.pixel_rate / source.pixel_rate, 0.25))
            self._encoder = self._open_encoder(rendition, int(self._bitrate * share))
            self._encoding = rendition
        return self._encoder

    def _open_encoder(self, rendition: Rendition, bitrate: int) -> av.VideoCodecContext:
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height = rendition.width, rendition.height
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = MILLISECONDS
        encoder.framerate = Fraction(rendition.frame_rate).limit_denominator(1001)
        encoder.gop_size = max(1, round(rendition.frame_rate * FALLBACK_KEYFRAME_SECONDS))
        encoder.max_b_frames = 0
        encoder.bit_rate = bitrate
        encoder.options = {"tune": "zerolatency", "preset": FALLBACK_PRESET}
        encoder.open()
        return encoder


class CodecWorker(Generic[In, Out]):
    """Runs `convert` on a daemon thread; delivers each non-empty result on the loop.

    `submit` never blocks: past `max_pending` queued inputs the worker drops input until
    the next sync point (a keyframe; every audio frame is one), so a slow pipeline costs
    a skip, never memory or publisher time.
    """

    def __init__(
        self,
        name: str,
        convert: Callable[[In], list[Out]],
        deliver: Callable[[list[Out]], None],
        loop: asyncio.AbstractEventLoop,
        *,
        max_pending: int,
    ) -> None:
        self.dropped = 0
        self.failures = 0
        self._convert = convert
        self._deliver = deliver
        self._loop = loop
        self._max_pending = max_pending
        self._pending: deque[In] = deque()
        self._wakeup = threading.Condition()
        self._skipping = True
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: In, sync: bool) -> None:
        with self._wakeup:
            if self._closed:
                return
            if len(self._pending) >= self._max_pending or (self._skipping and not sync):
                self._skipping = True
                self.dropped += 1
                return
            self._skipping = False
            self._pending.append(item)
            self._wakeup.notify()

    def close(self) -> None:
        """Stop after the item in progress; queued input is discarded. Never blocks."""
        with self._wakeup:
            self._closed = True
            self._pending.clear()
            self._wakeup.notify()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _next(self) -> In | None:
        with self._wakeup:
            while not self._pending and not self._closed:
                self._wakeup.wait()
            return None if self._closed else self._pending.popleft()

    def _run(self) -> None:
        while (item := self._next()) is not None:
            try:
                out = self._convert(item)
            except (av.FFmpegError, ValueError) as error:
                self.failures += 1
                if self.failures % FAILURES_PER_LOG_LINE == 1:
                    log.warning(
                        "%s: skipped input it could not convert (%d so far): %s",
                        self._thread.name,
                        self.failures,
                        error,
                    )
                continue
            if out:
                try:
                    self._loop.call_soon_threadsafe(self._deliver, out)
                except RuntimeError:  # the loop is closed: nobody is left to deliver to
                    return
