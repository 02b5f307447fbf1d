"""One viewer's audio or video RTP stream: a header before shared bytes, SRTP, one send.

The stream's fan-out hands every viewer the same `RtpFrame`; per packet a viewer only
packs its 12-byte RTP header (SSRC, sequence number, its own timestamp origin) before
the shared extension block and payload, in one buffer where its SRTP session protects
the frame's packets in place (signaling/rtp/srtp_frames.py), and sends them on its ICE
pair's socket. aiortc still negotiates, connects, derives the keys and runs RTCP: its
sender reports carry the counts kept here, and NACKs are answered over RTX from a
short per-viewer history of the frames sent.
"""

from __future__ import annotations

import asyncio
import random
import struct
from collections import deque
from collections.abc import Iterator
from typing import Any, Protocol

from aiortc import RTCRtpCodecParameters, RTCRtpSender

from signaling.adapters.aiortc_private import (
    RTCRtpSendParameters,
    SecureDatagramPath,
    SenderHooks,
    is_rtx,
    random32,
    random_sequence_number,
)
from signaling.rtp.budget import Budget
from signaling.rtp.packetizer import MID_URI, ExtensionLayout, RtpFrame

SEQUENCE_NUMBER = struct.Struct("!H")
RTP_VERSION = 0x80
EXTENSION_BIT = 0x10
NACK_HISTORY_FRAMES = 128  # frames or paced runs: about a second of a 6 Mbps stream
RETRANSMISSIONS_PER_SECOND = 300  # a 2 Mbps stream is about 200 packets a second


class ViewerClock:
    """A viewer's time zero: the stream time of the first frame it is sent.

    Shared by the viewer's audio and video senders, so both RTP timelines start from
    the same instant and stay aligned, whenever in the stream the viewer joined.
    """

    def __init__(self) -> None:
        self._origin_ms: int | None = None

    def origin_ms(self, stream_ms: int) -> int:
        if self._origin_ms is None:
            self._origin_ms = stream_ms
        return self._origin_ms


class Fanout(Protocol):
    """What a viewer's sender registers with (signaling.rtp.fanout.StreamFanout)."""

    def attach(self, sender: ViewerRtpSender) -> None: ...

    def detach(self, sender: ViewerRtpSender) -> None: ...

    def sent_frame(self, kind: str, serial: int) -> RtpFrame | None: ...


class ViewerRtpSender:
    """Replaces the per-packet loop of one aiortc RTCRtpSender.

    It starts when aiortc starts the sender (DTLS is up), on a keyframe; a viewer whose
    socket is full is dropped to the next keyframe, never slowing the others. It stops
    when aiortc stops the sender or its DTLS transport closes.
    """

    def __init__(self, kind: str, clock: ViewerClock, fanout: Fanout) -> None:
        self.kind = kind
        self._clock = clock
        self._fanout = fanout
        self._hooks: SenderHooks | None = None
        self._path: SecureDatagramPath | None = None
        self._layout = ExtensionLayout(None, None)
        self._first_byte = RTP_VERSION
        self._payload_type = 0
        self._ssrc = 0
        self._cname: str | None = None
        self._rtx_payload_type: int | None = None
        self._sequence = random_sequence_number()
        self._rtx_sequence = random_sequence_number()
        self._timestamp_offset: int | None = None
        self._awaiting_keyframe = True
        self._history: deque[tuple[int, int, RtpFrame]] = deque(maxlen=NACK_HISTORY_FRAMES)
        self._retransmissions_pending = False
        self._retransmissions = Budget(
            RETRANSMISSIONS_PER_SECOND,
            f"a WebRTC viewer asks for more than {RETRANSMISSIONS_PER_SECOND} {kind} "
            "retransmissions a second; the rest are not sent",
        )
        self._stopped = asyncio.get_running_loop().create_future()
        self.native_state: Any = None  # set once the C fan-out sends for this viewer
        self._synced = (0, 0, 0, 0)  # its counts already given to aiortc

    def install(self, sender: RTCRtpSender) -> None:
        """Take over `sender`'s RTP: learn its parameters when aiortc starts it."""
        hooks = self._hooks = SenderHooks(sender)
        hooks.replace(self._configure, self._run, self._run_rtcp, self._retransmit)

    def stop(self) -> None:
        if not self._stopped.done():
            self._stopped.set_result(None)

    @property
    def layout(self) -> ExtensionLayout:
        return self._layout

    def send(self, frame: RtpFrame) -> None:
        """Send a shared frame (called by the fan-out, synchronously).

        Once one send has succeeded, the fan-out hands the viewer to the C send path
        where it is built (`go_native`; signaling/rtp/_sendpath.c does what this does)."""
        path, hooks = self._path, self._hooks
        if path is None or hooks is None or not path.connected:
            self.stop()
            return
        if self._awaiting_keyframe and not frame.keyframe:
            return
        offset = self._timestamp_offset
        if offset is None:
            offset = self._offset(frame)
        timestamp = (frame.ticks + offset) & 0xFFFFFFFF
        first = self._sequence
        bodies = frame.bodies(self._layout)
        self._sequence = (first + len(bodies)) & 0xFFFF
        path.protector.protect(
            self._first_byte,
            self._payload_type,
            self._ssrc,
            first,
            timestamp,
            bodies,
            frame.ends_frame,
        )
        if not self._flush(path):
            self._awaiting_keyframe = True  # its socket is full: the viewer is behind
            return
        self._awaiting_keyframe = False
        self._history.append((first, timestamp, frame))
        hooks.count_sent(len(bodies), frame.octets, frame.ntp, timestamp)

    def go_native(self) -> bool:
        """Hand this viewer to the C send path, where it is built, once a send from here
        has fixed its timestamp origin: its state starts where this sender's is now
        (True). From then on the fan-out must not call `send`."""
        path, offset = self._path, self._timestamp_offset
        started = path is not None and offset is not None and not self._awaiting_keyframe
        if self.native_state is None and started and self._hooks is not None:
            counts = self._hooks.counts()
            self.native_state = path.native_state(
                self._first_byte,
                self._payload_type,
                self._ssrc,
                self._sequence,
                offset,
                self._cname,
                counts,
            )
            self._synced = (*counts, 0, 0)
        return self.native_state is not None

    def sync_counts(self) -> None:
        """Give aiortc what the C send path sent since the last call, for getStats()
        (called once a second by the fan-out)."""
        state, path, hooks = self.native_state, self._path, self._hooks
        if state is None or path is None or hooks is None:
            return
        counts = (state.packets, state.octets, state.wire_packets, state.wire_octets)
        before = self._synced
        if counts[0] != before[0]:
            hooks.count_sent(
                counts[0] - before[0], counts[1] - before[1], state.ntp, state.rtp_timestamp
            )
            path.count_sent(counts[2] - before[2], counts[3] - before[3])
            self._synced = counts

    def _flush(self, path: SecureDatagramPath) -> bool:
        """Send what was protected; False if the socket could not take it all."""
        packets = path.protector.take()
        path.count_sent(len(packets.sizes), len(packets.data))
        return path.datagrams.send(packets.data, packets.sizes)

    def _offset(self, frame: RtpFrame) -> int:
        """A random origin (as aiortc picks) minus the viewer's time zero in ticks."""
        origin = self._clock.origin_ms(frame.stream_ms)
        self._timestamp_offset = random32() - origin * frame.ticks_per_ms
        return self._timestamp_offset

    def _configure(self, parameters: RTCRtpSendParameters) -> None:
        codec = parameters.codecs[0]
        self._cname = parameters.rtcp.cname
        self._payload_type = codec.payloadType
        self._rtx_payload_type = next(
            (
                rtx.payloadType
                for rtx in parameters.codecs
                if is_rtx(rtx) and rtx.parameters.get("apt") == codec.payloadType
            ),
            None,
        )
        ids = {extension.uri: extension.id for extension in parameters.headerExtensions}
        self._layout = ExtensionLayout(ids.get(MID_URI), parameters.muxId)
        if self._layout.block():
            self._first_byte = RTP_VERSION | EXTENSION_BIT

    async def _run(self, codec: RTCRtpCodecParameters) -> None:
        """Stands in for aiortc's `_run_rtp`: attached to the fan-out until stopped."""
        hooks = self._hooks
        assert hooks is not None
        hooks.rtp_started()
        self._ssrc = hooks.ssrc
        forget = None
        try:
            self._path = SecureDatagramPath(hooks.sender.transport)
            forget = self._path.on_disconnect(self.stop)
            self._fanout.attach(self)
            await self._stopped
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            self._fanout.detach(self)
            self.sync_counts()
            if forget is not None:
                forget()
            if self._path is not None:
                self._path.datagrams.close()
            hooks.rtp_exited()

    async def _run_rtcp(self) -> None:
        """Stands in for aiortc's `_run_rtcp`: its sender reports, while this viewer is
        served from Python (the fan-out sends them from C afterwards), then BYE."""
        hooks = self._hooks
        assert hooks is not None
        hooks.rtcp_started()
        try:
            while self.native_state is None:
                await asyncio.sleep(0.5 + random.random())  # aiortc's interval
                if self.native_state is None:
                    await hooks.send_report(self._cname)
            await asyncio.get_running_loop().create_future()  # until aiortc cancels it
        except asyncio.CancelledError:
            pass
        await hooks.send_bye()  # aiortc's _send_rtcp ignores a closed connection
        hooks.rtcp_exited()

    async def _retransmit(self, sequence_number: int) -> None:
        """Answer a NACK over RTX; a viewer without RTX gets no retransmission, and one
        asking for more than RETRANSMISSIONS_PER_SECOND gets no more than that."""
        path, hooks = self._path, self._hooks
        if self._rtx_payload_type is None or path is None or hooks is None:
            return
        if not self._retransmissions.take():
            return
        for first, timestamp, frame in self._recent():
            index = (sequence_number - first) & 0xFFFF
            if index < len(frame.payloads):
                body = frame.bodies(self._layout)[index]
                payload = frame.payloads[index]
                extensions = body[: len(body) - len(payload)]
                rtx_body = extensions + SEQUENCE_NUMBER.pack(sequence_number) + payload
                path.protector.protect(
                    self._first_byte,
                    self._rtx_payload_type,
                    hooks.rtx_ssrc,
                    self._rtx_sequence,
                    timestamp,
                    [rtx_body],
                    frame.ends_frame and index == len(frame.payloads) - 1,
                )
                self._rtx_sequence = (self._rtx_sequence + 1) & 0xFFFF
                if not self._retransmissions_pending:
                    self._retransmissions_pending = True
                    asyncio.get_running_loop().call_soon(self._send_retransmissions, path)
                return

    def _recent(self) -> Iterator[tuple[int, int, RtpFrame]]:
        """(first sequence number, RTP timestamp, frame) of the frames sent lately,
        newest first: NACKs are for recent packets."""
        state, offset = self.native_state, self._timestamp_offset
        if state is not None and offset is not None:
            for serial, first in state.history():
                frame = self._fanout.sent_frame(self.kind, serial)
                if frame is not None:
                    yield first, (frame.ticks + offset) & 0xFFFFFFFF, frame
        yield from reversed(self._history)

    def _send_retransmissions(self, path: SecureDatagramPath) -> None:
        """aiortc answers a NACK one sequence number at a time: the retransmissions it
        asks for are gathered and leave together once it is done (or with the next
        frame, whichever comes first)."""
        self._retransmissions_pending = False
        if path.connected:
            self._flush(path)
