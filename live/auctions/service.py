"""Live auctions: the shop's team starts one for a product on show; viewers bid.

A bid is decided by the database alone (`live/auctions/bidding.py`); before that, only
what never changes is checked in memory: the auction's fixed terms (cached once per
process) and whether the bidder is on the shop's team (`ShopTeams`, cached). An
accepted bid is offered to the hub right after its commit (`announce_through`), which
pushes it to the session's viewers at once, or, when bids come faster than viewers
can usefully be told, the newest of them a moment later. Starting and ending go
through the outbox (`auction.started`, `auction.ended`), so every consumer sees them
once, from whichever process.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.accounts.models import User
from commerce.accounts.tokens import Principal
from commerce.catalog.sellable import sellable_units
from commerce.orders.checkout import Line
from commerce.orders.models import Order, OrderStatus
from commerce.shops.access import ShopTeams
from live.auctions.bidding import Bid, BidWriter, not_found
from live.auctions.closing import AuctionCloser
from live.auctions.models import Auction, AuctionBid, AuctionStatus, Ending
from live.auctions.views import auction_data, bid_event, for_viewers
from live.sessions.models import LiveProduct, LiveStatus
from live.sessions.service import LiveSessionService
from storage.ids import new_id
from storage.outbox import add_event
from storage.web import Problem
from storage.web.pagination import PageQuery, keyset_page

MAX_CACHED_TERMS = 10_000
# (auction id, `auction:bid` data): for every viewer of the auction's session.
Offer = Callable[[str, dict[str, Any]], Awaitable[None]]
Close = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Terms:
    """What a bid needs to know before the database decides it; fixed at the start."""

    live_session_id: str
    shop_id: str
    window: int  # anti-sniping seconds; 0 for sudden death


@dataclass(frozen=True, slots=True)
class NewAuction:
    product_id: str
    variant_id: str | None
    starting_price: int
    min_increment: int
    duration_seconds: int
    ending: Ending
    extend_seconds: int
    reserve_price: int | None
    buy_now_price: int | None


async def _no_audience(auction_id: str, data: dict[str, Any]) -> None:
    return None


async def _nothing_to_close() -> None:
    return None


class AuctionService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        live_sessions: LiveSessionService,
        teams: ShopTeams,
        writer: BidWriter,
        closer: AuctionCloser,
    ) -> None:
        self._sessions = sessions
        self._live = live_sessions
        self._teams = teams
        self._writer = writer
        self.closer = closer
        self._terms: dict[str, Terms] = {}
        self._offer: Offer = _no_audience
        self._close_offers: Close = _nothing_to_close

    def announce_through(self, offer: Offer, close: Close) -> None:
        """Where accepted bids go: the hub, once it is built on top of us; `close`
        drops what it still holds when the app stops."""
        self._offer, self._close_offers = offer, close

    async def start(self) -> None:
        await self.closer.start()

    async def stop(self) -> None:
        await self.closer.stop()
        await self._close_offers()

    async def open(self, principal: Principal, live_session_id: str, new: NewAuction) -> dict:
        """For the shop's team, in a session that is live, for a product on show: one
        running auction per product at a time."""
        live = await self._live.require_staff(principal, live_session_id)
        if live.status != LiveStatus.LIVE:
            raise Problem(409, "live-session-not-live", "Auctions run only while on air.")
        _check_prices(new)
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            await _require_on_show(session, live.id, new.product_id)
            units = await sellable_units(session, [Line(new.product_id, 1, new.variant_id)])
            ((_, variant),) = units.values()
            running = await session.scalar(
                select(Auction.id).where(
                    Auction.live_session_id == live.id,
                    Auction.product_id == new.product_id,
                    Auction.status == AuctionStatus.RUNNING,
                )
            )
            if running is not None:
                raise Problem(
                    409,
                    "auction-running",
                    "This product already has a running auction.",
                    auction_id=running,
                )
            auction = Auction(
                id=new_id(),
                live_session_id=live.id,
                shop_id=live.shop_id,
                product_id=new.product_id,
                variant_id=variant.id,
                starting_price=new.starting_price,
                min_increment=new.min_increment,
                reserve_price=new.reserve_price,
                buy_now_price=new.buy_now_price,
                ending=new.ending,
                extend_seconds=new.extend_seconds if new.ending is Ending.ANTI_SNIPING else 0,
                status=AuctionStatus.RUNNING,
                bid_count=0,
                started_at=now,
                ends_at=now + timedelta(seconds=new.duration_seconds),
                created_by=principal.user_id,
            )
            session.add(auction)
            data = auction_data(auction)
            add_event(session, "auction.started", data)
        self.closer.wake_at(auction.id, auction.ends_at)
        return data

    async def bid(self, principal: Principal | None, auction_id: str, amount: int) -> Bid:
        """Decide a bid; the accepted one is pushed to the session's viewers at once."""
        if principal is None:
            raise Problem(401, "auth-required", "Sign in to bid; guests can only watch.")
        terms = await self._terms_of(auction_id)
        if await self._teams.role(principal, terms.shop_id) is not None:
            raise Problem(403, "own-shop-bid", "The shop's team cannot bid in its auctions.")
        bid = await self._writer.place(auction_id, principal.user_id, amount, terms.window)
        await self._offer(auction_id, bid_event(bid, terms.live_session_id))
        if bid.bought:
            await self.closer.close(auction_id)
        elif bid.extended:
            self.closer.wake_at(auction_id, bid.ends_at)
        return bid

    async def get(self, auction_id: str) -> dict[str, Any]:
        """The auction with its bid history, highest first."""
        async with self._sessions() as session:
            auction = await session.get(Auction, auction_id)
            if auction is None:
                raise not_found()
            bids = (
                await session.execute(
                    select(AuctionBid, User.display_name)
                    .join(User, User.id == AuctionBid.bidder_id)
                    .where(AuctionBid.auction_id == auction_id)
                    .order_by(AuctionBid.sequence.desc())
                )
            ).all()
            winner_name = next(
                (name for bid, name in bids if bid.bidder_id == auction.leader_id), None
            )
        history = [
            {
                "amount": bid.amount,
                "bidder_id": bid.bidder_id,
                "bidder_name": name,
                "placed_at": bid.placed_at.isoformat(),
            }
            for bid, name in bids
        ]
        return {**auction_data(auction, winner_name), "bids": history}

    async def running(self, live_session_id: str) -> list[dict[str, Any]]:
        """The session's running auctions as the room sees them, with the leader's name:
        what a viewer joining after `auction:started` draws until the next bid."""
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(Auction, User.display_name)
                    .outerjoin(User, User.id == Auction.leader_id)
                    .where(
                        Auction.live_session_id == live_session_id,
                        Auction.status == AuctionStatus.RUNNING,
                    )
                    .order_by(Auction.id)
                )
            ).all()
        return [{**for_viewers(auction_data(a)), "leader_name": name} for a, name in rows]

    async def list(self, live_session_id: str, page: PageQuery) -> tuple[list[dict], str | None]:
        """The session's auctions, newest first."""
        await self._live.get(live_session_id)
        async with self._sessions() as session:
            auctions, cursor = await keyset_page(
                session,
                select(Auction).where(Auction.live_session_id == live_session_id),
                Auction.id,
                page,
            )
        return [auction_data(a) for a in auctions], cursor

    async def cancel(self, principal: Principal, auction_id: str) -> dict[str, Any]:
        """Only before the first bid: once someone bid, the auction runs to its end."""
        auction = await self._staff_auction(principal, auction_id)
        async with self._sessions.begin() as session:
            cancelled = await session.scalar(
                select(Auction)
                .where(
                    Auction.id == auction.id,
                    Auction.status == AuctionStatus.RUNNING,
                    Auction.bid_count == 0,
                )
                .with_for_update()
            )
            if cancelled is None:
                raise Problem(
                    409, "auction-not-cancellable", "Only a running auction without bids."
                )
            cancelled.status = AuctionStatus.CANCELLED
            cancelled.ended_at = datetime.now(UTC)
            data = auction_data(cancelled)
            add_event(session, "auction.ended", data)
        return data

    async def offer_runner_up(self, principal: Principal, auction_id: str) -> dict[str, Any]:
        """When the winner's order was cancelled or expired unpaid: an order for the
        highest bidder other than the winner, at their highest bid (once)."""
        auction = await self._staff_auction(principal, auction_id)
        async with self._sessions.begin() as session:
            locked = await session.get(Auction, auction.id, with_for_update=True)
            assert locked is not None
            if locked.runner_up_order_id is not None:
                raise Problem(409, "runner-up-offered", "The runner-up was offered it already.")
            lapsed = locked.order_id is not None and await session.scalar(
                select(Order.status).where(Order.id == locked.order_id)
            ) in (OrderStatus.CANCELLED, OrderStatus.EXPIRED)
            if not lapsed:
                raise Problem(
                    409,
                    "winner-order-open",
                    "Only when the winner's order was cancelled or expired unpaid.",
                )
            runner_up = (
                await session.execute(
                    select(AuctionBid.bidder_id, AuctionBid.amount)
                    .where(
                        AuctionBid.auction_id == locked.id,
                        AuctionBid.bidder_id != locked.leader_id,
                    )
                    .order_by(AuctionBid.amount.desc())
                    .limit(1)
                )
            ).first()
            if runner_up is None:
                raise Problem(409, "no-runner-up", "Nobody else bid in this auction.")
            order_id = await self.closer.place_order(
                session, locked, runner_up.bidder_id, runner_up.amount
            )
            if order_id is None:
                raise Problem(409, "not-enough-stock", "The product is out of stock.")
            locked.runner_up_order_id = order_id
            data = auction_data(locked)
            add_event(
                session,
                "auction.runner_up.offered",
                {**data, "buyer_id": runner_up.bidder_id, "amount": runner_up.amount},
            )
        return {**data, "runner_up_id": runner_up.bidder_id, "runner_up_amount": runner_up.amount}

    async def _staff_auction(self, principal: Principal, auction_id: str) -> Auction:
        async with self._sessions() as session:
            auction = await session.get(Auction, auction_id)
        if auction is None:
            raise not_found()
        if await self._teams.role(principal, auction.shop_id) is None:
            raise Problem(403, "not-your-shop", "Only the shop's team may do this.")
        return auction

    async def _terms_of(self, auction_id: str) -> Terms:
        terms = self._terms.get(auction_id)
        if terms is None:
            async with self._sessions() as session:
                auction = await session.get(Auction, auction_id)
            if auction is None:
                raise not_found()
            terms = Terms(auction.live_session_id, auction.shop_id, auction.extend_seconds)
            if len(self._terms) >= MAX_CACHED_TERMS:
                self._terms.clear()
            self._terms[auction_id] = terms
        return terms


def _check_prices(new: NewAuction) -> None:
    if new.reserve_price is not None and new.reserve_price < new.starting_price:
        raise Problem(
            422, "reserve-below-start", "The reserve price cannot be below the starting price."
        )
    floor = max(new.starting_price, new.reserve_price or 0)
    if new.buy_now_price is not None and new.buy_now_price <= floor:
        raise Problem(
            422,
            "buy-now-too-low",
            "The buy-it-now price must be above the starting and reserve prices.",
        )


async def _require_on_show(session: AsyncSession, live_session_id: str, product_id: str) -> None:
    """Locked, so two of the team starting an auction for it at once cannot both pass
    the one-at-a-time check (SQLite serialises anyway)."""
    on_show = await session.scalar(
        select(LiveProduct.product_id)
        .where(LiveProduct.live_session_id == live_session_id, LiveProduct.product_id == product_id)
        .with_for_update()
    )
    if on_show is None:
        raise Problem(404, "product-not-on-show", "That product is not on show here.")
