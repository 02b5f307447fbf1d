"""The buyer's cart: lines priced now, and what changed since each was added."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Insert, case, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.carts.models import ONE_LINE_PER_UNIT, CartItem
from commerce.catalog.models import Product, ProductStatus, Variant
from commerce.catalog.sellable import sellable_units
from commerce.inventory import out_of_stock, sellable
from commerce.pricing import LiveAllocations, LivePrices, current_price
from commerce.shops.models import Shop, ShopStatus
from storage.ids import new_id
from storage.outbox import add_event
from storage.sql.statements import OnSession
from storage.web import Problem

MAX_LINES = 100
MAX_QUANTITY = 999


def can_buy(variant: Variant, allocation_left: int | None) -> int:
    """Units of the variant a cart line may hold: its stock, capped by what the live
    session it is bought from still sets aside for the product, if anything."""
    stock = sellable(variant.on_hand, variant.reserved)
    return stock if allocation_left is None else min(stock, max(0, allocation_left))


@dataclass(frozen=True)
class CartLine:
    item: CartItem
    product: Product
    variant: Variant
    unit_price: int
    on_sale: bool
    allocation_left: int | None = None

    @property
    def available(self) -> int:
        return can_buy(self.variant, self.allocation_left)

    @property
    def price_changed(self) -> bool:
        return self.unit_price != self.item.price_when_added

    @property
    def in_stock(self) -> bool:
        return self.on_sale and self.available >= self.item.quantity


@dataclass(frozen=True)
class _Ref:
    product_id: str
    variant_id: str | None


class CartService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        live_prices: LivePrices,
        live_allocations: LiveAllocations,
    ) -> None:
        self._sessions = sessions
        self._live_prices = live_prices
        self._live_allocations = live_allocations

    async def view(self, user_id: str) -> list[CartLine]:
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(CartItem, Product, Variant, Shop.status)
                    .join(Product, Product.id == CartItem.product_id)
                    .join(Variant, Variant.id == CartItem.variant_id)
                    .join(Shop, Shop.id == Product.shop_id)
                    .where(CartItem.user_id == user_id)
                    .order_by(CartItem.added_at, CartItem.id)
                )
            ).all()
            return [
                CartLine(
                    item,
                    product,
                    variant,
                    await current_price(
                        OnSession(session),
                        self._live_prices,
                        product,
                        variant,
                        item.live_session_id,
                    ),
                    on_sale=product.status == ProductStatus.ACTIVE
                    and not variant.archived
                    and shop_status == ShopStatus.ACTIVE,
                    allocation_left=await self._allocation_left(
                        session, product.id, item.live_session_id
                    ),
                )
                for item, product, variant, shop_status in rows
            ]

    async def add(
        self,
        user_id: str,
        product_id: str,
        variant_id: str | None,
        quantity: int,
        live_session_id: str | None,
    ) -> None:
        """Add to the unit's line, or make it: one atomic upsert, so adds racing each
        other merge into one line and an add racing a checkout either lands in the
        order or makes a new line (the checkout locks the lines it takes). A line may
        not hold more than can be bought: 409 `out-of-stock` says how many can."""
        async with self._sessions.begin() as session:
            units = await sellable_units(session, [_Ref(product_id, variant_id)])
            product, variant = units[(product_id, variant_id)]
            price = await current_price(
                OnSession(session), self._live_prices, product, variant, live_session_id
            )
            line = {
                "user_id": user_id,
                "product_id": product.id,
                "variant_id": variant.id,
                "live_session_id": live_session_id,
            }
            held = await _line_quantity(session, line)
            await self._check_stock(session, product, variant, live_session_id, held + quantity)
            if held == 0:
                lines = await session.scalar(
                    select(func.count()).select_from(CartItem).where(CartItem.user_id == user_id)
                )
                if lines >= MAX_LINES:
                    raise Problem(409, "cart-full", f"A cart holds at most {MAX_LINES} lines.")
            await session.execute(
                _merge_into_line(
                    session.bind.dialect.name,
                    {
                        **line,
                        "id": new_id(),
                        "quantity": quantity,
                        "price_when_added": price,
                        "added_at": datetime.now(UTC),
                    },
                )
            )
            add_event(session, "cart.updated", {"user_id": user_id})

    async def set_quantity(self, user_id: str, item_id: str, quantity: int) -> None:
        """Refused with 409 `out-of-stock` (saying how many can be bought) above that."""
        async with self._sessions.begin() as session:
            found = (
                await session.execute(
                    select(CartItem.live_session_id, Product, Variant)
                    .join(Product, Product.id == CartItem.product_id)
                    .join(Variant, Variant.id == CartItem.variant_id)
                    .where(CartItem.id == item_id, CartItem.user_id == user_id)
                )
            ).one_or_none()
            if found is None:
                raise Problem(404, "cart-item-not-found", "No such item in your cart.")
            live_session_id, product, variant = found
            await self._check_stock(session, product, variant, live_session_id, quantity)
            await session.execute(
                update(CartItem).where(CartItem.id == item_id).values(quantity=quantity)
            )
            add_event(session, "cart.updated", {"user_id": user_id})

    async def remove(self, user_id: str, item_id: str) -> None:
        async with self._sessions.begin() as session:
            removed = await session.execute(
                delete(CartItem).where(CartItem.id == item_id, CartItem.user_id == user_id)
            )
            if removed.rowcount == 0:
                raise Problem(404, "cart-item-not-found", "No such item in your cart.")
            add_event(session, "cart.updated", {"user_id": user_id})

    async def _allocation_left(
        self, session: AsyncSession, product_id: str, live_session_id: str | None
    ) -> int | None:
        if live_session_id is None:
            return None
        return await self._live_allocations.left(OnSession(session), live_session_id, product_id)

    async def _check_stock(
        self,
        session: AsyncSession,
        product: Product,
        variant: Variant,
        live_session_id: str | None,
        quantity: int,
    ) -> None:
        left = await self._allocation_left(session, product.id, live_session_id)
        available = can_buy(variant, left)
        if quantity > available:
            raise out_of_stock(product.name, product.id, variant.id, quantity, available)


async def _line_quantity(session: AsyncSession, line: dict) -> int:
    """What the buyer's line of this unit holds already, 0 when there is none."""
    same_session = (
        CartItem.live_session_id.is_(None)
        if line["live_session_id"] is None
        else CartItem.live_session_id == line["live_session_id"]
    )
    found = await session.scalar(
        select(CartItem.quantity).where(
            CartItem.user_id == line["user_id"],
            CartItem.variant_id == line["variant_id"],
            same_session,
        )
    )
    return found or 0


def _merge_into_line(dialect: str, values: dict) -> Insert:
    """INSERT the line, or add its quantity (capped) to the line already there, which
    takes the latest price: ON CONFLICT on the index `ONE_LINE_PER_UNIT` names."""
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(CartItem).values(values)
    summed = CartItem.quantity + insert.excluded.quantity
    return insert.on_conflict_do_update(
        index_elements=ONE_LINE_PER_UNIT,
        set_={
            "quantity": case((summed > MAX_QUANTITY, MAX_QUANTITY), else_=summed),
            "price_when_added": insert.excluded.price_when_added,
        },
    )
