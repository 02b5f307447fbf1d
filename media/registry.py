"""Which live session is publishing right now, in this process.

The RTMP layer opens a hub when a publisher is accepted; viewers, recording and health
look it up by live session id. A hub whose publisher left stays here, paused, until
the live layer closes it (its grace period is over) or the publisher comes back, when
`open` resumes it. When a stream ends the registry forgets it and tells its listeners.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from media.hub import StreamHub

log = logging.getLogger("streamcart.media")

StreamEndedListener = Callable[[str, StreamHub], None]


class AlreadyPublishing(Exception):
    """A publisher is already live on this session; a second one is refused."""

    def __init__(self, live_session_id: str) -> None:
        super().__init__(f"live session {live_session_id} already has a publisher")
        self.live_session_id = live_session_id


class StreamRegistry:
    """Per-process map live_session_id -> StreamHub of the active publishers."""

    def __init__(self) -> None:
        self._hubs: dict[str, StreamHub] = {}
        self._ended_listeners: list[StreamEndedListener] = []

    def open(self, live_session_id: str) -> StreamHub:
        """Start a stream, or resume its paused hub; the hub leaves the registry when it
        is closed."""
        hub = self._hubs.get(live_session_id)
        if hub is not None:
            if hub.publishing:
                raise AlreadyPublishing(live_session_id)
            hub.resume()
            return hub
        hub = StreamHub(name=live_session_id)
        self._hubs[live_session_id] = hub
        hub.add_close_callback(lambda closed: self._ended(live_session_id, closed))
        return hub

    def get(self, live_session_id: str) -> StreamHub | None:
        return self._hubs.get(live_session_id)

    def __len__(self) -> int:
        return len(self._hubs)

    def on_stream_ended(self, listener: StreamEndedListener) -> None:
        """Call `listener(live_session_id, hub)` whenever a stream ends."""
        self._ended_listeners.append(listener)

    def close_all(self) -> None:
        for hub in list(self._hubs.values()):
            hub.close()

    def _ended(self, live_session_id: str, hub: StreamHub) -> None:
        if self._hubs.get(live_session_id) is hub:
            del self._hubs[live_session_id]
        for listener in self._ended_listeners:
            try:
                listener(live_session_id, hub)
            except Exception:
                log.exception("stream %s: stream-ended listener failed", live_session_id)
