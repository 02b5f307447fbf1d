"""Flash sales: the seller starts one for a product on show; buyers claim units from it.

A claim is decided in two steps (the gatekeeper module says how they stay in step):

1. the stock gate (`storage.gate`: a Redis script shared by every process, or memory
   when embedded) takes the units in one atomic step, or refuses: not started, ended,
   sold out, over the buyer's limit. Staff are told apart by a cached shop team, and
   the sale's fixed terms are cached, so a refusal never touches the database;
2. only a winner writes (`live/flash/claim_writer.py`): the database takes the units
   again by a conditional UPDATE, counts the buyer's within the limit and places the
   order at the flash price, all or nothing, in batches with the winners of the same
   moment. A refusal there gives the units back to the gate.

So the database never sells past the stock whatever the gate says, and the gate only
spares the database the losers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.accounts.tokens import Principal
from commerce.catalog.models import Product, Variant
from commerce.catalog.sellable import sellable_units
from commerce.orders.checkout import CheckoutService, Line, PlacedOrder
from commerce.orders.express import ExpressCheckout
from commerce.orders.models import PaymentMethod
from commerce.pricing import regular_price
from commerce.shops.access import ShopTeams
from live.flash.claim_writer import Claim, ClaimWriter, refusal
from live.flash.gatekeeper import FlashGatekeeper
from live.flash.phases import FlashPhase, phase
from live.sessions.models import FlashSale, LiveProduct, LiveStatus
from live.sessions.service import LiveSessionService
from storage.gate import Verdict
from storage.ids import new_id
from storage.outbox import add_event
from storage.web import Problem
from storage.web.pagination import PageQuery, keyset_page

# A winner the database refused for these: the gate believed otherwise, so it is reset.
DATABASE_DISAGREES = frozenset({"flash-sold-out", "flash-ended", "flash-not-started"})
MIN_DURATION_SECONDS = 10
MAX_DURATION_SECONDS = 3600
MAX_COUNTDOWN_SECONDS = 3600


def flash_data(flash: FlashSale, regular: int, now: datetime) -> dict[str, Any]:
    """The flash sale as events, snapshots and the REST API show it. `server_time` lets
    clients run the countdown on the server's clock rather than their own."""
    return {
        "id": flash.id,
        "live_session_id": flash.live_session_id,
        "product_id": flash.product_id,
        "variant_id": flash.variant_id,
        "flash_price": flash.flash_price,
        "regular_price": regular,
        "quantity": flash.quantity,
        "sold": flash.sold,
        "remaining": flash.quantity - flash.sold,
        "per_buyer_limit": flash.per_buyer_limit,
        "starts_at": flash.starts_at.isoformat(),
        "ends_at": flash.ends_at.isoformat(),
        "phase": phase(flash, now).value,
        "server_time": now.isoformat(),
    }


async def describe(
    session: AsyncSession, flashes: list[FlashSale], now: datetime
) -> list[dict[str, Any]]:
    """`flash_data` for each flash sale, with the regular prices loaded in one query."""
    if not flashes:
        return []
    prices = {
        variant.id: regular_price(product, variant)
        for variant, product in await session.execute(
            select(Variant, Product)
            .join(Product, Product.id == Variant.product_id)
            .where(Variant.id.in_({f.variant_id for f in flashes}))
        )
    }
    return [flash_data(f, prices[f.variant_id], now) for f in flashes]


async def active_flash(
    sessions: async_sessionmaker[AsyncSession], live_session_id: str
) -> dict[str, Any] | None:
    """The session's flash sale that has not ended (counting down or running), for the
    snapshot a viewer gets on joining; the newest one if several products have one."""
    now = datetime.now(UTC)
    async with sessions() as session:
        flash = await session.scalar(
            select(FlashSale)
            .where(
                FlashSale.live_session_id == live_session_id,
                FlashSale.ends_at > now,
                FlashSale.cancelled_at.is_(None),
            )
            .order_by(FlashSale.id.desc())
            .limit(1)
        )
        if flash is None:
            return None
        (data,) = await describe(session, [flash], now)
    return data


class FlashSaleService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        checkout: CheckoutService,
        live_sessions: LiveSessionService,
        gatekeeper: FlashGatekeeper,
        teams: ShopTeams,
        express: ExpressCheckout | None = None,
    ) -> None:
        self._sessions = sessions
        self._live = live_sessions
        self._gatekeeper = gatekeeper
        self._teams = teams
        self._writer = ClaimWriter(sessions, checkout, express, gatekeeper.fresh_for)

    async def start(
        self,
        principal: Principal,
        live_session_id: str,
        product_id: str,
        variant_id: str | None,
        flash_price: int,
        quantity: int,
        duration_seconds: int,
        per_buyer_limit: int,
        countdown_seconds: int = 0,
    ) -> dict[str, Any]:
        """Schedule a flash sale (the caller validated the ranges); it starts after the
        countdown. The unit is resolved and stored, so claims never have to choose one."""
        live = await self._live.require_staff(principal, live_session_id)
        if live.status == LiveStatus.ENDED:
            raise Problem(409, "live-session-ended", "This live session has ended.")
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            on_show = await _lock_product_on_show(session, live.id, product_id)
            units = await sellable_units(session, [Line(product_id, quantity, variant_id)])
            ((product, variant),) = units.values()
            regular = regular_price(product, variant)
            if flash_price >= regular:
                raise Problem(
                    422,
                    "flash-price-not-below-regular",
                    f"The flash price must be below the regular price ({regular} VND).",
                    regular_price=regular,
                )
            available = variant.on_hand - variant.reserved
            if on_show.live_stock is not None:
                available = min(available, on_show.live_stock - on_show.live_sold)
            if quantity > available:
                raise Problem(
                    409,
                    "not-enough-stock",
                    f"Only {available} units are available.",
                    available=available,
                )
            await _refuse_a_second_flash(session, live.id, product_id, now)
            starts_at = now + timedelta(seconds=countdown_seconds)
            flash = FlashSale(
                id=new_id(),
                live_session_id=live.id,
                product_id=product_id,
                variant_id=variant.id,
                flash_price=flash_price,
                quantity=quantity,
                sold=0,
                per_buyer_limit=per_buyer_limit,
                starts_at=starts_at,
                ends_at=starts_at + timedelta(seconds=duration_seconds),
                announced=FlashPhase.SCHEDULED if countdown_seconds else FlashPhase.STARTED,
                created_at=now,
            )
            session.add(flash)
            data = flash_data(flash, regular, now)
            add_event(session, "flash.scheduled", data)
            if not countdown_seconds:
                add_event(session, "flash.started", data)
        await self._gatekeeper.load(data["id"])  # ready before the first claim
        return data

    async def claim(
        self,
        principal: Principal,
        live_session_id: str,
        flash_id: str,
        quantity: int = 1,
        method: PaymentMethod = PaymentMethod.BANK_TRANSFER,
    ) -> PlacedOrder:
        """Take `quantity` units and place a pending order at the flash price, atomically.

        The shop's own team (owner, moderators, admins) may not claim: flash stock is
        for viewers, and staff claims would look like demand that is not there."""
        terms = await self._gatekeeper.terms(flash_id)
        if terms is None or terms.live_session_id != live_session_id:
            raise Problem(404, "flash-sale-not-found", "No such flash sale in this live session.")
        if await self._teams.role(principal, terms.shop_id) is not None:
            raise Problem(403, "staff-cannot-claim", "The shop's team cannot claim flash sales.")
        decided_at = datetime.now(UTC)
        attempt = new_id()  # the order's id, if it is written
        decision = await self._gatekeeper.take(
            flash_id, principal.user_id, quantity, attempt, decided_at
        )
        if decision.verdict is not Verdict.WON:
            raise refusal(decision.verdict, decision.left, quantity, terms)
        claim = Claim(principal.user_id, terms, quantity, method, attempt, decided_at)
        return await self._gatekeeper.write_winner(
            flash_id,
            attempt,
            lambda: self._writer.write(claim),
            lambda error: isinstance(error, Problem) and error.code in DATABASE_DISAGREES,
        )

    async def list(
        self, live_session_id: str, page: PageQuery
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The session's flash sales, newest first."""
        await self._live.get(live_session_id)
        now = datetime.now(UTC)
        async with self._sessions() as session:
            flashes, cursor = await keyset_page(
                session,
                select(FlashSale).where(FlashSale.live_session_id == live_session_id),
                FlashSale.id,
                page,
            )
            return await describe(session, flashes, now), cursor


async def _lock_product_on_show(
    session: AsyncSession, live_session_id: str, product_id: str
) -> LiveProduct:
    """Lock the product's place in the show, so two sellers starting a flash sale for it
    at once cannot both pass the one-at-a-time check (SQLite serialises anyway)."""
    on_show = await session.scalar(
        select(LiveProduct)
        .where(LiveProduct.live_session_id == live_session_id, LiveProduct.product_id == product_id)
        .with_for_update()
    )
    if on_show is None:
        raise Problem(404, "product-not-on-show", "That product is not on show here.")
    return on_show


async def _refuse_a_second_flash(
    session: AsyncSession, live_session_id: str, product_id: str, now: datetime
) -> None:
    running = await session.scalar(
        select(FlashSale.id).where(
            FlashSale.live_session_id == live_session_id,
            FlashSale.product_id == product_id,
            FlashSale.ends_at > now,
            FlashSale.cancelled_at.is_(None),
        )
    )
    if running is not None:
        raise Problem(
            409,
            "flash-sale-active",
            "This product already has a flash sale that has not ended.",
            flash_sale_id=running,
        )
