"""One stream's WebRTC fan-out: read the hub once, packetize once, send to every viewer.

A single task reads one hub subscription, turns each frame into shared RTP payloads
and hands them to every attached viewer sender in turn; a send never waits (UDP), so no
viewer can hold the others back. The hub's lag handling applies to the fan-out as a
whole (it skips to the next keyframe if the process falls behind), and each viewer's
own to that viewer. The frames since the last keyframe are kept, so a viewer that
starts mid-stream is sent them at once and decodes from a keyframe.

A viewer's first frames go through its sender in Python; from then on, where the C
send path is built, one call per frame sends to every such viewer of an answer layout
(signaling/rtp/_sendpath.c), so a viewer costs no interpreter work per frame: the
per-viewer state (sequence numbers, counts, which frames went out) lives in C, sender
reports go out from C once a second, and aiortc is given the counts for getStats().
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from media.hub import StreamHub
from signaling.rtp import srtp_frames
from signaling.rtp.pacer import Pacer
from signaling.rtp.packetizer import ExtensionLayout, RtpFrame, StreamPacketizer
from signaling.rtp.rtp_sender import NACK_HISTORY_FRAMES, ViewerRtpSender

log = logging.getLogger("streamcart.signaling")

MAX_CACHED_FRAMES = 1024  # a longer GOP is not kept (memory); joiners wait for a keyframe
SYNC_SECONDS = 1.0  # sender reports once a second, as aiortc sends them; counts with them
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900 (NTP) to 1970 (Unix)


def ntp_now() -> int:
    """The wall clock as a 64-bit NTP timestamp (aiortc's goes through datetime: slower)."""
    return int((time.time() + NTP_EPOCH_OFFSET) * (1 << 32))


class NativeGroup:
    """Viewers of one kind and answer layout that the C send path serves: the senders,
    and their states in the same order (what `fan_out` takes)."""

    def __init__(self) -> None:
        self.senders: list[ViewerRtpSender] = []
        self.states: list[Any] = []

    def add(self, sender: ViewerRtpSender) -> None:
        self.senders.append(sender)
        self.states.append(sender.native_state)

    def remove(self, sender: ViewerRtpSender) -> bool:
        if sender not in self.senders:
            return False
        index = self.senders.index(sender)
        del self.senders[index], self.states[index]
        return True


class StreamFanout:
    """The viewers of one stream hub in this process, and the task that feeds them.

    Viewers `join` when they negotiate and `leave` when they close; the fan-out stops
    reading (and releases its subscription) when the last one leaves.
    """

    def __init__(self, hub: StreamHub, *, pacing: bool = True) -> None:
        """`pacing`: video frames leave in runs spread over time (signaling/rtp/pacer.py)."""
        self.viewers = 0
        self._subscription = hub.subscribe(webrtc=True)
        self._packetizer = StreamPacketizer()
        self._senders: dict[str, list[ViewerRtpSender]] = {"video": [], "audio": []}
        self._native: dict[str, dict[ExtensionLayout, NativeGroup]] = {"video": {}, "audio": {}}
        self._sent: dict[str, deque[RtpFrame]] = {
            kind: deque(maxlen=NACK_HISTORY_FRAMES) for kind in ("video", "audio")
        }
        self._serial = 0
        self._gop: list[RtpFrame] = []
        self._pacer = Pacer(self._send) if pacing else None
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run())
        self._sync_timer = loop.call_later(SYNC_SECONDS, self._sync_counts)

    def join(self) -> None:
        self.viewers += 1

    def leave(self) -> bool:
        """True when this was the last viewer: the fan-out has stopped."""
        self.viewers -= 1
        if self.viewers:
            return False
        self._subscription.close()
        self._task.cancel()
        self._sync_timer.cancel()
        if self._pacer is not None:
            self._pacer.close()
        return True

    def attach(self, sender: ViewerRtpSender) -> None:
        """Start sending to `sender`, beginning with the frames since the last keyframe."""
        for frame in self._gop:
            if frame.kind == sender.kind:
                self._deliver(sender, frame)
        if not self._promote(sender):
            self._senders[sender.kind].append(sender)

    def detach(self, sender: ViewerRtpSender) -> None:
        senders = self._senders[sender.kind]
        if sender in senders:
            senders.remove(sender)
        group = self._native[sender.kind].get(sender.layout)
        if group is not None and group.remove(sender) and not group.senders:
            del self._native[sender.kind][sender.layout]

    @property
    def served_natively(self) -> int:
        """How many of the viewers' senders (audio and video) the C send path serves."""
        return sum(len(g.senders) for groups in self._native.values() for g in groups.values())

    def sent_frame(self, kind: str, serial: int) -> RtpFrame | None:
        """A frame sent lately, by its serial (for NACKs of viewers served from C)."""
        return next((frame for frame in self._sent[kind] if frame.serial == serial), None)

    async def _run(self) -> None:
        async for packet in self._subscription:
            frame = self._packetizer.packetize(packet)
            if frame is None:
                continue
            frame.ntp = ntp_now()
            if self._pacer is not None and frame.kind == "video":
                self._pacer.push(frame)
            else:
                self._send(frame)

    def _send(self, frame: RtpFrame) -> None:
        """A frame, or a paced run of one, to every viewer of its kind."""
        self._serial += 1
        frame.serial = self._serial
        self._sent[frame.kind].append(frame)
        if frame.ends_frame:
            self._remember(frame.whole or frame)
        self._send_natively(frame)  # first: promotions below wait
        for sender in tuple(self._senders[frame.kind]):
            self._deliver(sender, frame)
            if self._promote(sender):
                self._senders[frame.kind].remove(sender)

    def _send_natively(self, frame: RtpFrame) -> None:
        native, kind = srtp_frames.native, frame.kind
        for layout, group in tuple(self._native[kind].items()):
            bodies = frame.bodies(layout)
            shared = (
                frame.serial, frame.ticks, frame.keyframe, frame.ntp, frame.octets, bodies,
                frame.ends_frame,
            )  # fmt: skip
            self._stop_failed(kind, group, native.fan_out(group.states, shared))

    def _report(self, kind: str, group: NativeGroup) -> None:
        failed = srtp_frames.native.report(group.states)
        self._stop_failed(kind, group, failed)

    def _stop_failed(self, kind: str, group: NativeGroup, failed: list[Any]) -> None:
        for state in failed:
            sender = group.senders[group.states.index(state)]
            log.warning(
                "sending to a WebRTC viewer failed (%s %d); stopping its %s",
                "SRTP status" if state.srtp_error else "errno",
                state.error,
                kind,
            )
            sender.stop()
            self.detach(sender)

    def _promote(self, sender: ViewerRtpSender) -> bool:
        """Hand a viewer to the C send path when it can go there."""
        if not sender.go_native():
            return False
        groups = self._native[sender.kind]
        group = groups.get(sender.layout) or groups.setdefault(sender.layout, NativeGroup())
        group.add(sender)
        return True

    def _sync_counts(self) -> None:
        """Counts to aiortc (for getStats) and a sender report to every viewer served
        from C, in one call per group instead of a task per viewer."""
        for kind, groups in self._native.items():
            for group in tuple(groups.values()):
                for sender in group.senders:
                    sender.sync_counts()
                self._report(kind, group)
        self._sync_timer = asyncio.get_running_loop().call_later(SYNC_SECONDS, self._sync_counts)

    def _remember(self, frame: RtpFrame) -> None:
        if frame.kind == "video" and frame.keyframe:
            self._gop = [frame]
        elif self._gop and len(self._gop) < MAX_CACHED_FRAMES:
            self._gop.append(frame)
        else:
            self._gop = []

    def _deliver(self, sender: ViewerRtpSender, frame: RtpFrame) -> None:
        """A viewer whose send fails gets nothing more of that kind; the rest go on."""
        try:
            sender.send(frame)
        except Exception:
            log.exception("sending to a WebRTC viewer failed; stopping its %s", sender.kind)
            sender.stop()
            self.detach(sender)
