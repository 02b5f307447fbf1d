"""Stock movements. Each is one conditional UPDATE, so concurrent checkouts never oversell
and a reservation leaves `held` exactly once, however many workers race for it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.catalog.models import Product, Variant
from commerce.orders.models import Reservation, ReservationStatus
from storage.outbox import add_event
from storage.web import Problem

AVAILABLE = Variant.on_hand - Variant.reserved


@dataclass(frozen=True)
class StockLevel:
    variant_id: str
    available: int


@dataclass(frozen=True)
class Hold:
    """Units a checkout wants held, and whose they are (for `stock.changed`)."""

    shop_id: str
    product_id: str
    variant_id: str
    quantity: int


@dataclass(frozen=True)
class Shortage:
    """A hold that could not be covered, and how many units could have been."""

    hold: Hold
    available: int


def out_of_stock(
    name: str, product_id: str, variant_id: str, requested: int, available: int
) -> Problem:
    """409 for wanting more units than can be bought, saying how many can."""
    return Problem(
        409,
        "out-of-stock",
        f"Not enough stock for '{name}': {available} can be bought.",
        product_id=product_id,
        variant_id=variant_id,
        requested=requested,
        available=available,
    )


def sellable(on_hand: int, reserved: int, archived: bool = False) -> int:
    """Units of a variant a buyer can take now."""
    return 0 if archived else max(0, on_hand - reserved)


async def reserve(session: AsyncSession, variant_id: str, quantity: int) -> int | None:
    """Hold `quantity` units; return what is left, or None when there are not enough."""
    result = await session.execute(
        update(Variant)
        .where(Variant.id == variant_id, ~Variant.archived, quantity <= AVAILABLE)
        .values(reserved=Variant.reserved + quantity)
        .returning(AVAILABLE)
        .execution_options(synchronize_session=False)
    )
    return result.scalar()


async def reserve_each(session: AsyncSession, holds: list[Hold]) -> Shortage | None:
    """Reserve each hold in turn (give them in a fixed order: no deadlocks), staging
    `stock.changed` for each; the first hold that cannot be covered is returned and
    nothing after it is tried (the caller rolls back what was reserved)."""
    for hold in holds:
        left = await reserve(session, hold.variant_id, hold.quantity)
        if left is None:
            row = (
                await session.execute(
                    select(Variant.on_hand, Variant.reserved, Variant.archived).where(
                        Variant.id == hold.variant_id
                    )
                )
            ).one()
            return Shortage(hold, sellable(*row))
        stock_changed(session, hold.shop_id, hold.product_id, hold.variant_id, left)
    return None


async def settle(session: AsyncSession, order_id: str, to: ReservationStatus) -> list[StockLevel]:
    """Move the order's reservations on (held -> committed/released, committed -> restocked)
    and adjust the variants; rows already moved by someone else are left alone."""
    source = (
        ReservationStatus.COMMITTED
        if to is ReservationStatus.RESTOCKED
        else (ReservationStatus.HELD)
    )
    moved = await session.execute(
        update(Reservation)
        .where(Reservation.order_id == order_id, Reservation.status == source)
        .values(status=to, settled_at=datetime.now(UTC))
        .returning(Reservation.variant_id, Reservation.quantity)
    )
    levels = []
    for variant_id, quantity in sorted(moved.all()):
        change = {
            ReservationStatus.COMMITTED: {
                "on_hand": Variant.on_hand - quantity,
                "reserved": Variant.reserved - quantity,
            },
            ReservationStatus.RELEASED: {"reserved": Variant.reserved - quantity},
            ReservationStatus.RESTOCKED: {"on_hand": Variant.on_hand + quantity},
        }[to]
        available = await session.scalar(
            update(Variant).where(Variant.id == variant_id).values(change).returning(AVAILABLE)
        )
        levels.append(StockLevel(variant_id, available))
    return levels


async def announce(session: AsyncSession, levels: list[StockLevel]) -> None:
    """Stage `stock.changed` for each level, with the product and shop it belongs to."""
    if not levels:
        return
    owners = await session.execute(
        select(Variant.id, Variant.product_id, Product.shop_id)
        .join(Product, Product.id == Variant.product_id)
        .where(Variant.id.in_([level.variant_id for level in levels]))
    )
    by_variant = {row.id: row for row in owners}
    for level in levels:
        owner = by_variant[level.variant_id]
        stock_changed(session, owner.shop_id, owner.product_id, level.variant_id, level.available)


def stock_changed(
    session: AsyncSession, shop_id: str, product_id: str, variant_id: str, available: int
) -> None:
    add_event(
        session,
        "stock.changed",
        {
            "shop_id": shop_id,
            "product_id": product_id,
            "variant_id": variant_id,
            "available": available,
        },
    )
