"""Reactions (likes, hearts...): taps are summed per second and broadcast as counts.

A popular stream gets thousands of taps a second; relaying each would multiply that by
the number of viewers. Instead each process adds its taps to the current one-second
window in the cache (`reactions:{id}:{second}:{kind}`, one `incr` per kind per tick,
not per tap), and once the second is over the first process to claim
`reactions-sent:{id}:{second}` broadcasts the window's totals as `reaction:counts`.
With Redis that sums every process's taps; in one process the cache is in memory.
A user may send at most `PER_USER_PER_SECOND` taps a second; more are refused.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Literal, get_args

from live.hub.access import require_joined, require_login
from live.hub.context import HubContext, Member
from live.hub.dispatch import Events, Payload
from live.sessions.schemas import Id
from storage.cache.port import Cache
from storage.web import Problem

Kind = Literal["like", "heart", "fire", "clap", "wow"]
KINDS = get_args(Kind)
PER_USER_PER_SECOND = 20
WINDOW_TTL = 30.0  # long enough for the slowest process to flush and announce

events = Events()
Announce = Callable[[str, dict[str, int]], Awaitable[None]]


class ReactionIn(Payload):
    live_session_id: Id
    kind: Kind


class Reactions:
    def __init__(self, cache: Cache, announce: Announce) -> None:
        self._cache = cache
        self._announce = announce
        self._taps: dict[str, Counter[str]] = {}
        self._windows: dict[str, set[int]] = {}  # windows this process added taps to

    async def tap(self, live_session_id: str, viewer: str, kind: str) -> None:
        second = await self._cache.incr(f"reaction-rate:{live_session_id}:{viewer}", 1, ttl=1.0)
        if second > PER_USER_PER_SECOND:
            raise Problem(
                429,
                "rate-limited",
                f"At most {PER_USER_PER_SECOND} reactions a second.",
                retry_after=1,
            )
        self._taps.setdefault(live_session_id, Counter())[kind] += 1

    async def tick(self, now: float) -> None:
        """Flush this process's taps into the current window; announce finished windows."""
        window = int(now)
        taps, self._taps = self._taps, {}
        for live_session_id, counts in taps.items():
            for kind, n in counts.items():
                await self._cache.incr(_key(live_session_id, window, kind), n, WINDOW_TTL)
            self._windows.setdefault(live_session_id, set()).add(window)
        for live_session_id, windows in list(self._windows.items()):
            for done in sorted(w for w in windows if w < window):
                windows.discard(done)
                await self._announce_window(live_session_id, done)
            if not windows:
                del self._windows[live_session_id]

    async def _announce_window(self, live_session_id: str, window: int) -> None:
        claim = f"reactions-sent:{live_session_id}:{window}"
        if not await self._cache.set_if_absent(claim, b"1", ttl=WINDOW_TTL):
            return
        counts = {}
        for kind in KINDS:
            raw = await self._cache.get(_key(live_session_id, window, kind))
            if raw is not None and int(raw) > 0:
                counts[kind] = int(raw)
        if counts:
            await self._announce(live_session_id, counts)


def _key(live_session_id: str, window: int, kind: str) -> str:
    return f"reactions:{live_session_id}:{window}:{kind}"


@events.on("reaction:send", ReactionIn)
async def send(hub: HubContext, member: Member, body: ReactionIn) -> None:
    require_login(member)
    require_joined(member, body.live_session_id)
    await hub.reactions.tap(body.live_session_id, member.viewer_key, body.kind)
