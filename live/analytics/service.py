"""A live session's stats for its owner, and its timeline for replays.

Everything is measured inside the live window, from `started_at` to `ended_at` (or
now, while live): visits and pins are clipped to it, so a waiting room before the
start or a tab left open after the end adds nothing. A visit still open is counted up
to the end of the window; one left open by a process that died is thereby closed at
the session's end. Each viewer's visits are merged first (a user with two tabs watches
once), then peak, watch time and who watched each pin come from the merged intervals.

Orders belong to the session by `orders.live_session_id`; an order counts as bought
once it is paid or further on (see `SOLD`), and as bought "while pinned" when it was
placed (`created_at`) inside one of the product's pin intervals.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.accounts.tokens import Principal
from commerce.catalog.models import Product
from commerce.orders.models import Order, OrderItem, OrderStatus
from live.analytics.intervals import Interval, clip, contains, overlaps, peak, seconds, union
from live.analytics.models import LiveVisit
from live.analytics.schemas import (
    LiveStatsOut,
    OrderStatsOut,
    ProductStatsOut,
    TimelineEntryOut,
    ViewerStatsOut,
)
from live.analytics.timeline import timeline
from live.analytics.visits import VisitRecorder
from live.auctions import reports as auctions
from live.giveaways import public as giveaways
from live.hub.chat import CHAT
from live.hub.presence import Presence
from live.sessions.models import LivePin, LiveProduct
from live.sessions.service import LiveSessionService
from live.vouchers import report as vouchers
from storage.documents.port import DocumentStore

SOLD = (
    OrderStatus.PAID,
    OrderStatus.PROCESSING,
    OrderStatus.SHIPPED,
    OrderStatus.DELIVERED,
    OrderStatus.COMPLETED,
)


@dataclass(frozen=True)
class SoldLine:
    """One line of a paid order from the session."""

    order_id: str
    buyer_id: str
    placed_at: datetime
    product_id: str
    quantity: int


@dataclass(frozen=True)
class Viewers:
    """Each viewer's merged intervals inside the live window, and who was signed in."""

    spans: dict[str, list[Interval]]
    signed_in: set[str]


class LiveStatsService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        documents: DocumentStore,
        live_sessions: LiveSessionService,
        presence: Presence,
        visits: VisitRecorder,
    ) -> None:
        self._sessions = sessions
        self._documents = documents
        self._live_sessions = live_sessions
        self._presence = presence
        self._visits = visits

    async def stats(self, principal: Principal, live_session_id: str) -> LiveStatsOut:
        """For the shop's team only (404 unknown session, 403 anyone else)."""
        live = await self._live_sessions.require_staff(principal, live_session_id)
        now = datetime.now(UTC)
        window = (live.started_at, live.ended_at or now) if live.started_at else None
        await self._visits.flush()  # this process's queued visits count too
        async with self._sessions() as session:
            viewers = await _viewers(session, live.id, window)
            pins = await _pins(session, live.id, window)
            names = await _products(session, live.id, set(pins))
            lines = await _sold_lines(session, live.id)
            orders = await _order_totals(session, live.id, lines)
            auction_stats = await auctions.stats(session, live.id)
            voucher_stats = await vouchers.stats(session, live.id)
            giveaway_stats = await giveaways.stats(session, live.id)
        return LiveStatsOut(
            live_session_id=live.id,
            status=live.status,
            started_at=live.started_at,
            ended_at=live.ended_at,
            duration_seconds=None if window is None else _rounded(seconds([window])),
            measured_at=now,
            viewers=await self._viewer_stats(live.id, viewers),
            chat_messages=await self._documents.count(CHAT, {"live_session_id": live.id}),
            chat_messages_deleted=await self._documents.count(
                CHAT, {"live_session_id": live.id, "deleted": True}
            ),
            orders=orders,
            products=[
                _product_stats(product_id, name, on_show, pins.get(product_id, []), viewers, lines)
                for product_id, (name, on_show) in names.items()
            ],
            auctions=auction_stats,
            vouchers=voucher_stats,
            giveaways=giveaway_stats,
        )

    async def timeline(self, live_session_id: str) -> list[TimelineEntryOut]:
        """Pins, flash sales and the other live tools' moments so far, oldest first."""
        async with self._sessions() as session:
            return await timeline(session, live_session_id, datetime.now(UTC))

    async def _viewer_stats(self, live_session_id: str, viewers: Viewers) -> ViewerStatsOut:
        watched = sum(seconds(spans) for spans in viewers.spans.values())
        unique = len(viewers.spans)
        return ViewerStatsOut(
            current=await self._presence.count(live_session_id),
            peak=peak(viewers.spans.values()),
            unique=unique,
            unique_signed_in=len(viewers.signed_in),
            watch_seconds_total=_rounded(watched),
            watch_seconds_average=_rounded(watched / unique) if unique else 0.0,
        )


def _rounded(value: float) -> float:
    return round(value, 3)


def _clipped(
    rows: list[tuple[str, datetime, datetime | None]], window: Interval
) -> dict[str, list[Interval]]:
    """Intervals grouped by key, open ones running to the window's end, merged per key."""
    grouped: dict[str, list[Interval]] = defaultdict(list)
    for key, start, end in rows:
        if (part := clip(start, end or window[1], window)) is not None:
            grouped[key].append(part)
    return {key: union(parts) for key, parts in grouped.items()}


async def _viewers(session: AsyncSession, live_session_id: str, window: Interval | None) -> Viewers:
    if window is None:
        return Viewers({}, set())
    rows = (
        await session.execute(
            select(
                LiveVisit.viewer_key, LiveVisit.joined_at, LiveVisit.left_at, LiveVisit.signed_in
            ).where(
                LiveVisit.live_session_id == live_session_id,
                LiveVisit.joined_at < window[1],
                (LiveVisit.left_at.is_(None)) | (LiveVisit.left_at > window[0]),
            )
        )
    ).all()
    spans = _clipped([(key, joined, left) for key, joined, left, _ in rows], window)
    signed_in = {key for key, _, _, signed in rows if signed and key in spans}
    return Viewers(spans, signed_in)


async def _pins(
    session: AsyncSession, live_session_id: str, window: Interval | None
) -> dict[str, list[Interval]]:
    """Each pinned product's intervals inside the live window."""
    if window is None:
        return {}
    rows = (
        await session.execute(
            select(LivePin.product_id, LivePin.pinned_at, LivePin.unpinned_at).where(
                LivePin.live_session_id == live_session_id
            )
        )
    ).all()
    return _clipped([tuple(row) for row in rows], window)


async def _products(
    session: AsyncSession, live_session_id: str, pinned: set[str]
) -> dict[str, tuple[str, bool]]:
    """Name and whether on show now, for the products on show (in their order) and
    those pinned during the stream but taken off show since."""
    rows = (
        await session.execute(
            select(Product.id, Product.name, LiveProduct.product_id.is_not(None))
            .outerjoin(
                LiveProduct,
                (LiveProduct.product_id == Product.id)
                & (LiveProduct.live_session_id == live_session_id),
            )
            .where(LiveProduct.live_session_id.is_not(None) | Product.id.in_(pinned))
            .order_by(LiveProduct.position.is_(None), LiveProduct.position, Product.id)
        )
    ).all()
    return {product_id: (name, bool(on_show)) for product_id, name, on_show in rows}


async def _sold_lines(session: AsyncSession, live_session_id: str) -> list[SoldLine]:
    rows = await session.execute(
        select(Order.id, Order.buyer_id, Order.created_at, OrderItem.product_id, OrderItem.quantity)
        .join(OrderItem, OrderItem.order_id == Order.id)
        .where(Order.live_session_id == live_session_id, Order.status.in_(SOLD))
    )
    return [SoldLine(*row) for row in rows]


async def _order_totals(
    session: AsyncSession, live_session_id: str, lines: list[SoldLine]
) -> OrderStatsOut:
    sold = Order.status.in_(SOLD)
    count, paid, revenue = (
        await session.execute(
            select(
                func.count(Order.id),
                func.coalesce(func.sum(case((sold, 1), else_=0)), 0),
                func.coalesce(func.sum(case((sold, Order.total), else_=0)), 0),
            ).where(Order.live_session_id == live_session_id)
        )
    ).one()
    return OrderStatsOut(
        count=count,
        paid=paid,
        revenue=revenue,
        units_sold=sum(line.quantity for line in lines),
    )


def _product_stats(
    product_id: str,
    name: str,
    on_show: bool,
    pins: list[Interval],
    viewers: Viewers,
    lines: list[SoldLine],
) -> ProductStatsOut:
    watchers = {key for key, spans in viewers.spans.items() if overlaps(spans, pins)}
    bought = [line for line in lines if line.product_id == product_id]
    while_pinned = [line for line in bought if contains(pins, line.placed_at)]
    buyers = {line.buyer_id for line in while_pinned}
    return ProductStatsOut(
        product_id=product_id,
        name=name,
        on_show=on_show,
        times_pinned=len(pins),
        seconds_pinned=_rounded(seconds(pins)),
        viewers_while_pinned=len(watchers),
        buyers_while_pinned=len(buyers),
        orders_while_pinned=len({line.order_id for line in while_pinned}),
        units_while_pinned=sum(line.quantity for line in while_pinned),
        orders=len({line.order_id for line in bought}),
        units=sum(line.quantity for line in bought),
        conversion=round(len(buyers & watchers) / len(watchers), 4) if watchers else 0.0,
    )
