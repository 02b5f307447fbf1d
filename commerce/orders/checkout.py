"""Checkout: a cart (or a list of lines) becomes one order per shop, stock held atomically.

The whole checkout is one transaction: every line's units are reserved with a
conditional UPDATE (never read-then-write), so 200 buyers racing for 10 units
get exactly 10; lines bought from a live session are also counted against the
session's own allocation of the product; if any line cannot be reserved nothing is
kept. The orders, their lines, history, reservations, payments and outbox events
commit together.

Pricing, validation and the rows to write are the same on every database and in the
express checkout (`staging.py`); only the write differs. On PostgreSQL the reservation
and every new row go in one statement (`one_statement.py`); elsewhere (SQLite, or a
checkout holding one variant twice) each line is reserved in turn and the rows follow
in one bulk insert.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.carts.models import CartItem
from commerce.catalog.sellable import sellable_units
from commerce.inventory import reserve_each, settle
from commerce.orders.models import PaymentMethod, ReservationStatus
from commerce.orders.one_statement import OneStatement, fits_one_statement
from commerce.orders.staging import (
    Line,
    PlacedOrder,
    PricedUnit,
    StagedOrder,
    arrange,
    live_session_of,
    merge_lines,
    price,
    raise_if_short,
    retrying_transaction,
    rows_of,
    stage_orders,
    subtotal_of,
    take_live_allocations,
)
from commerce.pricing import LiveAllocations, LivePrices
from commerce.vouchers.redeem import applicable, spend
from storage.outbox import add_event, stage_event
from storage.sql.bulk import insert_new
from storage.sql.statements import OnSession
from storage.web import Problem


class FastPath(Protocol):
    """A faster writer of some checkouts (`commerce.orders.express` on PostgreSQL)."""

    def takes(self, method: PaymentMethod, lines: Sequence[Line] | None) -> bool: ...

    async def place(
        self,
        buyer_id: str,
        method: PaymentMethod,
        lines: list[Line],
        *,
        shipping_address: str,
        note: str,
    ) -> list[PlacedOrder] | None: ...


class CheckoutService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        live_prices: LivePrices,
        live_allocations: LiveAllocations,
        payment_window: timedelta,
        express: FastPath | None = None,
    ) -> None:
        self._sessions = sessions
        self._live_prices = live_prices
        self._live_allocations = live_allocations
        self._payment_window = payment_window
        self._express = express

    async def checkout(
        self,
        buyer_id: str,
        method: PaymentMethod,
        lines: list[Line] | None = None,
        *,
        shipping_address: str = "",
        note: str = "",
        voucher_claim_id: str | None = None,
    ) -> list[PlacedOrder]:
        """Place the orders; `lines=None` checks out the buyer's cart and empties it.
        Named lines bought from a live session first pass its allocation's gate.
        `voucher_claim_id`: a voucher the buyer claimed, spent on its shop's order."""
        async with self._live_allocations.holding(buyer_id, from_sessions(lines or [])):
            return await self._checkout(
                buyer_id,
                method,
                lines,
                shipping_address=shipping_address,
                note=note,
                voucher_claim_id=voucher_claim_id,
            )

    async def _checkout(
        self,
        buyer_id: str,
        method: PaymentMethod,
        lines: list[Line] | None,
        *,
        shipping_address: str,
        note: str,
        voucher_claim_id: str | None,
    ) -> list[PlacedOrder]:
        express = self._express if voucher_claim_id is None else None  # vouchers: general path
        if express is not None and express.takes(method, lines):
            assert lines is not None
            placed = await express.place(
                buyer_id, method, lines, shipping_address=shipping_address, note=note
            )
            if placed is not None:
                return placed
        return await retrying_transaction(
            self._sessions,
            lambda session: self.place_in(
                session,
                buyer_id,
                method,
                lines,
                shipping_address=shipping_address,
                note=note,
                voucher_claim_id=voucher_claim_id,
            ),
        )

    async def place_in(
        self,
        session: AsyncSession,
        buyer_id: str,
        method: PaymentMethod,
        lines: list[Line] | None = None,
        *,
        shipping_address: str = "",
        note: str = "",
        order_id: str | None = None,
        voucher_claim_id: str | None = None,
    ) -> list[PlacedOrder]:
        """Place the orders inside the caller's transaction, for callers whose own writes
        must commit or roll back with the orders (a flash-sale claim and its order).
        `order_id`, for lines of one shop: the id the caller chose (to find it later)."""
        from_cart = lines is None
        priced = await self._price(session, buyer_id, lines)
        holds, by_shop = arrange(priced)
        applied = None
        if voucher_claim_id is not None:
            orders = {shop: (subtotal_of(u), live_session_of(u)) for shop, u in by_shop.items()}
            applied = await applicable(session, voucher_claim_id, buyer_id, orders)
        if fits_one_statement(session, holds):
            statement = OneStatement(holds)
            staged = self._stage_all(
                session, buyer_id, by_shop, method, shipping_address, note, order_id, applied
            )
            short = await statement.reserve_and_insert_new(session, rows_of(staged))
            raise_if_short(short, priced)
        else:
            raise_if_short(await reserve_each(session, holds), priced)
            staged = self._stage_all(
                session, buyer_id, by_shop, method, shipping_address, note, order_id, applied
            )
            await insert_new(session, rows_of(staged))  # every new row in one round trip
        placed = [s.placed for s in staged]
        if applied is not None:
            spent_by = next(p.order.id for p in placed if p.order.shop_id == applied.shop_id)
            await spend(session, applied, buyer_id, spent_by)
        if method is PaymentMethod.COD:  # sold at once: the held units are committed
            for order in placed:
                await settle(session, order.order.id, ReservationStatus.COMMITTED)
        await take_live_allocations(
            self._live_allocations, OnSession(session), buyer_id, placed, by_shop.values()
        )
        if from_cart:
            ids = [i for unit in priced for i in unit.cart_item_ids]
            await session.execute(delete(CartItem).where(CartItem.id.in_(ids)))
            add_event(session, "cart.updated", {"user_id": buyer_id})
        return placed

    def _stage_all(
        self,
        session,
        buyer_id,
        by_shop,
        method,
        shipping_address,
        note,
        order_id=None,
        applied=None,
    ) -> list[StagedOrder]:
        staged = stage_orders(
            buyer_id,
            by_shop,
            method,
            self._payment_window,
            shipping_address,
            note,
            order_id,
            applied,
        )
        for order in staged:
            stage_event(session, order.event)
        return staged

    async def _price(self, session, buyer_id, lines) -> list[PricedUnit]:
        if lines is None:
            # Locked: an add racing this checkout waits, then makes a new line, instead
            # of adding units to a line this checkout is about to delete.
            cart = (
                await session.scalars(
                    select(CartItem).where(CartItem.user_id == buyer_id).with_for_update()
                )
            ).all()
            if not cart:
                raise Problem(409, "cart-empty", "The cart is empty.")
            lines = [Line(c.product_id, c.quantity, c.variant_id, c.live_session_id) for c in cart]
            cart_ids: list[str | None] | None = [c.id for c in cart]
        else:
            cart_ids = None
        units = await sellable_units(session, lines)
        priced = merge_lines(lines, units, cart_ids)
        await price(OnSession(session), self._live_prices, priced)
        return priced


def from_sessions(lines: Iterable[Line]) -> dict[tuple[str, str], int]:
    """The units bought from live sessions, by (session, product)."""
    wanted: dict[tuple[str, str], int] = defaultdict(int)
    for line in lines:
        if line.live_session_id:
            wanted[line.live_session_id, line.product_id] += line.quantity
    return dict(wanted)
