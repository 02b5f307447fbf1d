"""One stream's WebRTC fan-out: read the hub once, packetize once, send to every viewer.

A single task reads one hub subscription, turns each frame into shared RTP payloads
and hands them to every attached viewer sender in turn; a send never waits (UDP), so no
viewer can hold the others back. The hub's lag handling applies to the fan-out as a
whole (it skips to the next keyframe if the process falls behind), and each viewer's
own to that viewer. The frames since the last keyframe are kept, so a viewer that
starts mid-stream is sent them at once and decodes from a keyframe.
"""

from __future__ import annotations

import asyncio
import logging

from media.hub import StreamHub
from signaling.aiortc_hooks import ntp_now
from signaling.packetizer import RtpFrame, StreamPacketizer
from signaling.rtp_sender import ViewerRtpSender

log = logging.getLogger("streamcart.signaling")

MAX_CACHED_FRAMES = 1024  # a longer GOP is not kept (memory); joiners wait for a keyframe
AUDIO_FRAMES_PER_SEND = 2  # Opus frames are 20 ms: audio waits at most 20 ms for company


class StreamFanout:
    """The viewers of one stream hub in this process, and the task that feeds them.

    Viewers `join` when they negotiate and `leave` when they close; the fan-out stops
    reading (and releases its subscription) when the last one leaves.
    """

    def __init__(self, hub: StreamHub) -> None:
        self.viewers = 0
        self._subscription = hub.subscribe(webrtc=True)
        self._packetizer = StreamPacketizer()
        self._senders: dict[str, list[ViewerRtpSender]] = {"video": [], "audio": []}
        self._gop: list[RtpFrame] = []
        self._audio: list[RtpFrame] = []
        self._task = asyncio.get_running_loop().create_task(self._run())

    def join(self) -> None:
        self.viewers += 1

    def leave(self) -> bool:
        """True when this was the last viewer: the fan-out has stopped."""
        self.viewers -= 1
        if self.viewers:
            return False
        self._subscription.close()
        self._task.cancel()
        return True

    def attach(self, sender: ViewerRtpSender) -> None:
        """Start sending to `sender`, beginning with the frames since the last keyframe
        (audio still being gathered is sent with the next pair)."""
        for frame in self._gop:
            if frame.kind == sender.kind and frame not in self._audio:
                self._deliver(sender, [frame])
        self._senders[sender.kind].append(sender)

    def detach(self, sender: ViewerRtpSender) -> None:
        senders = self._senders[sender.kind]
        if sender in senders:
            senders.remove(sender)

    async def _run(self) -> None:
        async for packet in self._subscription:
            frame = self._packetizer.packetize(packet)
            if frame is None:
                continue
            frame.ntp = ntp_now()
            self._remember(frame)
            frames = self._gather(frame)
            if frames:
                for sender in tuple(self._senders[frame.kind]):
                    self._deliver(sender, frames)

    def _gather(self, frame: RtpFrame) -> list[RtpFrame]:
        """The frames to send now: a video frame at once; audio frames in pairs, one
        system call per viewer instead of two (an Opus packet is small, and a send
        costs the same for any size). Nothing yet: []."""
        if frame.kind == "video":
            return [frame]
        self._audio.append(frame)
        if len(self._audio) < AUDIO_FRAMES_PER_SEND:
            return []
        frames, self._audio = self._audio, []
        return frames

    def _remember(self, frame: RtpFrame) -> None:
        if frame.kind == "video" and frame.keyframe:
            self._gop = [frame]
        elif self._gop and len(self._gop) < MAX_CACHED_FRAMES:
            self._gop.append(frame)
        else:
            self._gop = []

    def _deliver(self, sender: ViewerRtpSender, frames: list[RtpFrame]) -> None:
        """A viewer whose send fails gets nothing more of that kind; the rest go on."""
        try:
            sender.send(frames)
        except Exception:
            log.exception("sending to a WebRTC viewer failed; stopping its %s", sender.kind)
            sender.stop()
            self.detach(sender)
