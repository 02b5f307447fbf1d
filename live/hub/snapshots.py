"""The `session:join` snapshot, built once per change rather than once per join.

When a notification brings thousands of viewers at once, each join used to read the
session, its pinned product, its flash sale and its chat history from the database.
The parts every viewer shares are now kept per session in this process and rebuilt
only after they changed; what is per viewer (role, staff figures) and what moves all
the time (viewer count, server time) is still read at each join.

What invalidates an entry is the room broadcast that announces the change: every
change a snapshot shows is emitted to `live:{id}` (the snapshot + events contract), and
every process's manager sees every emit to its rooms (`note_emit`, called by
`live.hub.broadcast`). Chat events invalidate only the chat history, the live tools'
events (auctions, giveaways, voucher drops) only the live tools; viewer counts and
reaction tallies nothing. Each entry records the change count it was built at, so an
entry built from a database read that raced a change is never served after it. A
joining socket enters the room before it reads the snapshot: a change after the read
reaches it as an event. Entries also expire after MAX_AGE_SECONDS, for a change that
no event announces.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from storage.single_flight import SingleFlight

MAX_AGE_SECONDS = 2.0
MAX_ENTRIES = 10_000
UNCHANGING = frozenset({"viewers:count", "reaction:counts"})
LIVE_TOOLS = ("auction:", "giveaway:", "voucher:")


@dataclass(frozen=True, slots=True)
class _Entry:
    changes: int
    built: float
    value: Any


class _Part:
    """One cached part per session: its builder, its change counts, its entries."""

    def __init__(self, build: Callable[[str], Awaitable[Any]]) -> None:
        self._build = build
        self._changes: dict[str, int] = {}
        self._entries: dict[str, _Entry] = {}
        self._builds: SingleFlight[Any] = SingleFlight()

    def changed(self, live_session_id: str) -> None:
        self._changes[live_session_id] = self._changes.get(live_session_id, 0) + 1
        self._entries.pop(live_session_id, None)

    async def get(self, live_session_id: str) -> Any:
        changes = self._changes.get(live_session_id, 0)
        entry = self._entries.get(live_session_id)
        if (
            entry is not None
            and entry.changes == changes
            and time.monotonic() - entry.built < MAX_AGE_SECONDS
        ):
            return entry.value
        key = f"{live_session_id}:{changes}"
        return await self._builds.run(key, lambda: self._rebuild(live_session_id, changes))

    async def _rebuild(self, live_session_id: str, changes: int) -> Any:
        built = time.monotonic()
        value = await self._build(live_session_id)
        if self._changes.get(live_session_id, 0) == changes:  # nothing changed meanwhile
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[live_session_id] = _Entry(changes, built, value)
        return value


class Snapshots:
    """`shared(id)`: what every viewer's snapshot shares (and the session row); raises
    what the builder raises for an unknown session. `messages(id)`: the chat history.
    `live_tools(id)`: the running auctions, open giveaways and claimable voucher drops."""

    def __init__(
        self,
        build_shared: Callable[[str], Awaitable[Any]],
        build_messages: Callable[[str], Awaitable[list[dict[str, Any]]]],
        build_live_tools: Callable[[str], Awaitable[dict[str, Any]]],
        room_prefix: str,
    ) -> None:
        self._shared = _Part(build_shared)
        self._messages = _Part(build_messages)
        self._live_tools = _Part(build_live_tools)
        self._prefix = room_prefix  # a session's room is the prefix and its id

    def note_emit(self, event: str, room: Any) -> None:
        """Called for every emit this process delivers (or would, having no listener)."""
        if not isinstance(room, str) or not room.startswith(self._prefix):
            return
        if event in UNCHANGING:
            return
        live_session_id = room[len(self._prefix) :]
        if event.startswith("chat:") and event != "chat:slow_mode":
            self._messages.changed(live_session_id)
        elif event.startswith(LIVE_TOOLS):
            self._live_tools.changed(live_session_id)
        else:
            self._shared.changed(live_session_id)

    async def shared(self, live_session_id: str) -> Any:
        return await self._shared.get(live_session_id)

    async def messages(self, live_session_id: str) -> list[dict[str, Any]]:
        return await self._messages.get(live_session_id)

    async def live_tools(self, live_session_id: str) -> dict[str, Any]:
        return await self._live_tools.get(live_session_id)
