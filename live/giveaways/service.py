"""Starting, entering, listing and cancelling giveaways.

An entry is decided by the database, so it holds across server processes: the
giveaway's row is read `FOR SHARE` (still open, not yet closed) in the entry's
transaction, so the draw's UPDATE waits for entries in flight and an entry arriving
after it finds the giveaway drawn; SQLite serialises writers anyway. The entry is an
INSERT ... ON CONFLICT DO NOTHING on (giveaway, user): entering twice counts once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.accounts.models import User
from commerce.accounts.tokens import Principal
from commerce.catalog.sellable import sellable_units
from commerce.follows.models import ShopFollow
from commerce.orders.checkout import Line
from commerce.shops.access import ShopTeams
from live.giveaways import draw
from live.giveaways.models import EntryMode, Giveaway, GiveawayEntry, GiveawayStatus
from live.giveaways.public import giveaway_data, record
from live.sessions.models import LiveStatus
from live.sessions.service import LiveSessionService
from storage.ids import new_id
from storage.outbox import add_event
from storage.web import Problem
from storage.web.pagination import PageQuery, keyset_page

NOT_FOUND = Problem(404, "giveaway-not-found", "No such giveaway.")
CLOSED = Problem(409, "giveaway-closed", "This giveaway no longer takes entries.")
# How long a process trusts its list of a session's open keyword giveaways: the chat
# checks every message against it, and a new giveaway is heard of within this.
KEYWORDS_TTL = 1.0
MAX_CACHED_SESSIONS = 10_000
_INSERT = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


class GiveawayService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        live_sessions: LiveSessionService,
        teams: ShopTeams,
    ) -> None:
        self._sessions = sessions
        self._live = live_sessions
        self._teams = teams
        self._keywords: dict[str, tuple[float, list[tuple[str, str]]]] = {}

    async def start(
        self,
        principal: Principal,
        live_session_id: str,
        product_id: str,
        variant_id: str | None,
        winners: int,
        mode: EntryMode,
        keyword: str | None,
        duration_seconds: int,
    ) -> dict[str, Any]:
        """Open a giveaway in a live session; the seed is made now and only its hash
        shown. The prize must be in stock for every winner now (409 `not-enough-stock`);
        the units are held when the winners' orders are placed, at the draw."""
        live = await self._live.require_staff(principal, live_session_id)
        if live.status != LiveStatus.LIVE:
            raise Problem(409, "live-session-not-live", "Giveaways run while the session is live.")
        if (mode is EntryMode.KEYWORD) != (keyword is not None):
            raise Problem(
                422,
                "keyword-mismatch",
                "A keyword is required for entry by keyword, and only then.",
                field="keyword",
            )
        now = datetime.now(UTC)
        seed = draw.new_seed()
        async with self._sessions.begin() as session:
            units = await sellable_units(session, [Line(product_id, winners, variant_id)])
            ((product, variant),) = units.values()
            if product.shop_id != live.shop_id:
                raise Problem(404, "product-not-found", "No such product in this shop.")
            available = variant.on_hand - variant.reserved
            if winners > available:
                raise Problem(
                    409,
                    "not-enough-stock",
                    f"Only {available} units are available.",
                    available=available,
                )
            giveaway = Giveaway(
                id=new_id(),
                live_session_id=live.id,
                shop_id=live.shop_id,
                product_id=product.id,
                variant_id=variant.id,
                winners_count=winners,
                entry_mode=mode,
                keyword=keyword,
                status=GiveawayStatus.OPEN,
                seed_commitment=draw.commitment(seed),
                seed=seed,
                starts_at=now,
                closes_at=now + timedelta(seconds=duration_seconds),
                created_by=principal.user_id,
            )
            session.add(giveaway)
            data = giveaway_data(giveaway)
            add_event(session, "giveaway.started", data)
        self._keywords.pop(live.id, None)
        return data

    async def list(
        self, live_session_id: str, page: PageQuery
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The session's giveaways, newest first, with their entry counts."""
        await self._live.get(live_session_id)
        async with self._sessions() as session:
            giveaways, cursor = await keyset_page(
                session,
                select(Giveaway).where(Giveaway.live_session_id == live_session_id),
                Giveaway.id,
                page,
            )
            return await _with_counts(session, giveaways), cursor

    async def open_in(self, live_session_id: str) -> list[dict[str, Any]]:
        """The session's giveaways still taking entries, oldest first: for a viewer who
        joins after `giveaway:started`."""
        async with self._sessions() as session:
            giveaways = (
                await session.scalars(
                    select(Giveaway)
                    .where(
                        Giveaway.live_session_id == live_session_id,
                        Giveaway.status == GiveawayStatus.OPEN,
                    )
                    .order_by(Giveaway.id)
                )
            ).all()
            return await _with_counts(session, giveaways)

    async def record(self, giveaway_id: str) -> dict[str, Any]:
        """The public record of one giveaway (`live.giveaways.public.record`)."""
        async with self._sessions() as session:
            giveaway = await session.get(Giveaway, giveaway_id)
            if giveaway is None:
                raise NOT_FOUND
            return await record(session, giveaway)

    async def enter(
        self, principal: Principal, giveaway_id: str, live_session_id: str | None = None
    ) -> dict[str, Any]:
        """Enter by the button (modes `button` and `followers`). Entering again is no
        error: `already_entered` tells, and the entry still counts once."""
        giveaway = await self._open(giveaway_id, live_session_id)
        if giveaway.entry_mode == EntryMode.KEYWORD:
            raise Problem(
                409,
                "enter-by-keyword",
                "Send the giveaway's keyword in the chat to enter.",
                keyword=giveaway.keyword,
            )
        return await self._enter(principal, giveaway)

    async def enter_by_chat(self, principal: Principal, live_session_id: str, text: str) -> None:
        """A chat message that contains an open keyword giveaway's keyword (any case)
        enters its sender; a sender who may not enter (staff, too late) is left out
        silently, as the message itself was fine."""
        said = text.casefold()
        for giveaway_id, keyword in await self._keyword_giveaways(live_session_id):
            if keyword.casefold() in said:
                try:
                    await self._enter(principal, await self._open(giveaway_id, live_session_id))
                except Problem:
                    continue

    async def cancel(self, principal: Principal, giveaway_id: str) -> None:
        """Staff may cancel until the draw; the seed stays secret."""
        giveaway = await self._get(giveaway_id)
        await self._live.require_staff(principal, giveaway.live_session_id)
        async with self._sessions.begin() as session:
            cancelled = await session.scalar(
                update(Giveaway)
                .where(Giveaway.id == giveaway_id, Giveaway.status == GiveawayStatus.OPEN)
                .values(status=GiveawayStatus.CANCELLED)
                .returning(Giveaway)
            )
            if cancelled is None:
                raise Problem(409, "giveaway-not-open", "Only an open giveaway can be cancelled.")
            add_event(session, "giveaway.cancelled", giveaway_data(cancelled))
        self._keywords.pop(giveaway.live_session_id, None)

    async def _enter(self, principal: Principal, giveaway: Giveaway) -> dict[str, Any]:
        if await self._teams.role(principal, giveaway.shop_id) is not None:
            raise Problem(403, "staff-cannot-enter", "The shop's team cannot enter its giveaways.")
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            if giveaway.entry_mode == EntryMode.FOLLOWERS and not await _follows(
                session, principal.user_id, giveaway.shop_id
            ):
                raise Problem(403, "followers-only", "Follow the shop to enter this giveaway.")
            still_open = await session.scalar(
                select(Giveaway.id)
                .where(
                    Giveaway.id == giveaway.id,
                    Giveaway.status == GiveawayStatus.OPEN,
                    Giveaway.closes_at > now,
                )
                .with_for_update(read=True)
            )
            if still_open is None:
                raise CLOSED
            name = select(User.display_name).where(User.id == principal.user_id)
            added = await session.scalar(
                _INSERT[session.bind.dialect.name](GiveawayEntry)
                .values(
                    giveaway_id=giveaway.id,
                    user_id=principal.user_id,
                    display_name=name.scalar_subquery(),
                    entered_at=now,
                )
                .on_conflict_do_nothing()
                .returning(GiveawayEntry.user_id)
            )
            if added is not None:
                entry = {"giveaway_id": giveaway.id, "live_session_id": giveaway.live_session_id}
                add_event(session, "giveaway.entered", entry)
        return {"giveaway_id": giveaway.id, "already_entered": added is None}

    async def _open(self, giveaway_id: str, live_session_id: str | None) -> Giveaway:
        giveaway = await self._get(giveaway_id)
        if live_session_id is not None and giveaway.live_session_id != live_session_id:
            raise NOT_FOUND
        if giveaway.status != GiveawayStatus.OPEN or giveaway.closes_at <= datetime.now(UTC):
            raise CLOSED
        return giveaway

    async def _get(self, giveaway_id: str) -> Giveaway:
        async with self._sessions() as session:
            giveaway = await session.get(Giveaway, giveaway_id)
        if giveaway is None:
            raise NOT_FOUND
        return giveaway

    async def _keyword_giveaways(self, live_session_id: str) -> list[tuple[str, str]]:
        """(id, keyword) of the session's open keyword giveaways, from a short-lived
        per-process copy, so most chat messages cost no query."""
        now = time.monotonic()
        cached = self._keywords.get(live_session_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._sessions() as session:
            rows = await session.execute(
                select(Giveaway.id, Giveaway.keyword).where(
                    Giveaway.live_session_id == live_session_id,
                    Giveaway.status == GiveawayStatus.OPEN,
                    Giveaway.entry_mode == EntryMode.KEYWORD,
                )
            )
            found = [(giveaway_id, keyword) for giveaway_id, keyword in rows]
        if len(self._keywords) >= MAX_CACHED_SESSIONS:
            self._keywords.clear()
        self._keywords[live_session_id] = (now + KEYWORDS_TTL, found)
        return found


async def _with_counts(
    session: AsyncSession, giveaways: Sequence[Giveaway]
) -> list[dict[str, Any]]:
    counts = dict(
        (
            await session.execute(
                select(GiveawayEntry.giveaway_id, func.count())
                .where(GiveawayEntry.giveaway_id.in_([g.id for g in giveaways]))
                .group_by(GiveawayEntry.giveaway_id)
            )
        ).all()
    )
    return [giveaway_data(g, entries_count=counts.get(g.id, 0)) for g in giveaways]


async def _follows(session: AsyncSession, user_id: str, shop_id: str) -> bool:
    followed = await session.scalar(
        select(ShopFollow.user_id).where(
            ShopFollow.user_id == user_id, ShopFollow.shop_id == shop_id
        )
    )
    return followed is not None
