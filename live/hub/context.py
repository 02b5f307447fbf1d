"""What every hub handler works with: the services, the socket's member, the room names.

This module imports no other hub module at run time, so handler modules can import it
without cycles; the stateful parts (presence, reactions) are typed only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.accounts.service import AccountService
from commerce.accounts.tokens import Principal
from live.sessions.service import LiveSessionService
from storage.cache.port import Cache
from storage.documents.port import DocumentStore

if TYPE_CHECKING:
    import socketio

    from commerce.shops.access import ShopTeams
    from live.auctions.service import AuctionService
    from live.giveaways.service import GiveawayService
    from live.hub.presence import Presence
    from live.hub.reactions import Reactions
    from live.hub.snapshots import Snapshots
    from live.vouchers.service import VoucherDrops
    from signaling.whep import WhepService


def live_room(live_session_id: str) -> str:
    """Every socket watching the session (viewers and staff alike)."""
    return f"live:{live_session_id}"


def staff_room(live_session_id: str) -> str:
    """The sockets of the session's seller, moderators and admins (sales figures)."""
    return f"staff:{live_session_id}"


def user_room(user_id: str) -> str:
    """All sockets of one signed-in user, on every tab, device and server process."""
    return f"user:{user_id}"


@dataclass
class Pace:
    """How often one socket did something in its current fixed window. Kept with the
    socket, not in the cache: a socket lives on one process, so nobody else counts it."""

    started: float = -math.inf
    count: int = 0

    def take(self, limit: int, window: float, now: float) -> float:
        """Count one more: 0 while within `limit` per `window`, else the seconds until
        the window ends (a refusal is not counted)."""
        if now - self.started >= window:
            self.started, self.count = now, 0
        if self.count >= limit:
            return self.started + window - now
        self.count += 1
        return 0.0


@dataclass
class Member:
    """Who is behind one socket. Kept in the socket's session for its whole life: the token
    is checked once, at connect, so a client reconnects with a fresh token to refresh it."""

    sid: str
    principal: Principal | None
    display_name: str
    joined: set[str] = field(default_factory=set)
    moves: Pace = field(default_factory=Pace)  # its joins and leaves

    @property
    def user_id(self) -> str | None:
        return None if self.principal is None else self.principal.user_id

    @property
    def viewer_key(self) -> str:
        """What makes a viewer unique: the user (several tabs count once) or a guest socket."""
        return self.user_id or f"guest:{self.sid}"


class Visits(Protocol):
    """Where the hub notes each socket's visit to a session, and which it starts and stops
    with itself. `live.analytics.visits.VisitRecorder` is the one; the composition root
    hands it in, so the hub stays below analytics (docs/architecture.md, "Inside `live`")."""

    def open(
        self, live_session_id: str, socket_id: str, viewer_key: str, signed_in: bool
    ) -> None: ...

    def close(self, live_session_id: str, socket_id: str) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class HubContext:
    sio: socketio.AsyncServer
    sessions: async_sessionmaker[AsyncSession]
    cache: Cache
    documents: DocumentStore
    accounts: AccountService
    live_sessions: LiveSessionService
    presence: Presence
    reactions: Reactions
    whep: WhepService
    teams: ShopTeams
    snapshots: Snapshots
    visits: Visits
    vouchers: VoucherDrops
    auctions: AuctionService
    giveaways: GiveawayService

    async def emit(self, event: str, data: dict[str, Any], room: str) -> None:
        """To every socket in `room`, on every process when the Redis manager is in use."""
        await self.sio.emit(event, data, to=room)

    async def member(self, sid: str) -> Member:
        return (await self.sio.get_session(sid))["member"]
