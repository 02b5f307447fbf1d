"""The catalog: products and their variants, search, and stock edits by the shop.

A product is an aggregate of two tables (products, variants), so this service answers
in API shapes rather than handing rows to the routes to reassemble.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.accounts.tokens import Principal
from commerce.carts.models import CartItem
from commerce.catalog.models import Product, ProductStatus, Variant
from commerce.catalog.schemas import (
    ProductIn,
    ProductOut,
    ProductPage,
    ProductPatch,
    ProductQuery,
    VariantOut,
    VariantPatch,
)
from commerce.inventory import AVAILABLE, stock_changed
from commerce.orders.models import OrderItem
from commerce.shops.access import require_shop_access
from commerce.shops.models import Shop, ShopStatus
from commerce.text import fold
from storage.ids import new_id
from storage.web import Problem
from storage.web.pagination import keyset_page

log = logging.getLogger("streamcart.catalog")

PRODUCT_NOT_FOUND = Problem(404, "product-not-found", "There is no product with this id.")


class CatalogService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def create(self, principal: Principal, new: ProductIn) -> ProductOut:
        """A product without variants gets one default variant holding its stock."""
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            shop = await require_shop_access(session, principal, new.shop_id)
            if shop.status != ShopStatus.ACTIVE:
                raise Problem(409, "shop-not-active", f"The shop is {shop.status}, not active.")
            product = Product(
                id=new_id(),
                shop_id=shop.id,
                name=new.name,
                description=new.description,
                images=new.images,
                category=new.category,
                base_price=new.base_price,
                status=ProductStatus.ACTIVE,
                created_at=now,
                updated_at=now,
            )
            _index(product)
            session.add(product)
            await session.flush()  # the variants reference the product row
            variants = _new_variants(product.id, new)
            session.add_all(variants)
        log.info("product created", extra={"product_id": product.id, "shop_id": shop.id})
        return _product_out(product, variants)

    async def get(self, product_id: str) -> ProductOut:
        """Archived products stay visible (orders and links point at them)."""
        async with self._sessions() as session:
            product = await session.get(Product, product_id)
            if product is None:
                raise PRODUCT_NOT_FOUND
            return _product_out(product, (await _variants_of(session, [product.id]))[product.id])

    async def search(self, principal: Principal | None, query: ProductQuery) -> ProductPage:
        """Active products of active shops, newest first. Every word of `q` must appear in
        the folded name, description or category, so "áo" and "ao" both find "Áo thun".
        With `include_archived` the caller sees everything of a shop they act for."""
        statement = select(Product)
        async with self._sessions() as session:
            if query.include_archived:
                # the route authenticated the caller and ProductQuery demands a shop_id
                assert principal is not None and query.shop_id is not None
                await require_shop_access(session, principal, query.shop_id)
            else:
                statement = statement.join(Shop, Shop.id == Product.shop_id).where(
                    Product.status == ProductStatus.ACTIVE, Shop.status == ShopStatus.ACTIVE
                )
            if query.shop_id is not None:
                statement = statement.where(Product.shop_id == query.shop_id)
            if query.category is not None:
                statement = statement.where(Product.category == query.category)
            for word in fold(query.q or "").split():
                # autoescape: "%" or "_" typed by a buyer are literal, not wildcards
                statement = statement.where(Product.search_text.contains(word, autoescape=True))
            products, next_cursor = await keyset_page(session, statement, Product.id, query)
            variants = await _variants_of(session, [p.id for p in products])
        items = [_product_out(product, variants[product.id]) for product in products]
        return ProductPage(items=items, next_cursor=next_cursor)

    async def update(
        self, principal: Principal, product_id: str, patch: ProductPatch
    ) -> ProductOut:
        """Archiving or reactivating a product does the same to all its variants."""
        async with self._sessions.begin() as session:
            product = await _writable(session, principal, product_id)
            for field, value in patch.model_dump(exclude_unset=True, exclude={"variants"}).items():
                setattr(product, field, value)
            _index(product)
            product.updated_at = datetime.now(UTC)
            if "status" in patch.model_fields_set:
                await session.execute(
                    update(Variant)
                    .where(Variant.product_id == product.id)
                    .values(archived=product.status == ProductStatus.ARCHIVED)
                    .execution_options(synchronize_session=False)
                )
            variants = {v.id: v for v in (await _variants_of(session, [product.id]))[product.id]}
            for change in patch.variants or []:
                await _change_variant(session, product, variants, change)
            _reject_duplicate_skus(list(variants.values()))
            await session.flush()
            current = (await _variants_of(session, [product.id]))[product.id]
        return _product_out(product, current)

    async def delete(self, principal: Principal, product_id: str) -> ProductOut | None:
        """Delete a product nobody ordered or put in a cart; archive it otherwise, so order
        lines keep pointing at it. Returns the archived product, or None when deleted."""
        try:
            async with self._sessions.begin() as session:
                product = await _writable(session, principal, product_id)
                referenced = await _referenced(session, product_id)
                if not referenced:
                    await session.execute(delete(Variant).where(Variant.product_id == product_id))
                    await session.delete(product)
        except IntegrityError:
            referenced = True  # an order or cart line referring to it committed after our check
        if referenced:
            return await self.update(principal, product_id, ProductPatch(status="archived"))
        log.info("product deleted", extra={"product_id": product_id})
        return None


def _new_variants(product_id: str, new: ProductIn) -> list[Variant]:
    """One default variant for a product sold without options, else one per given variant.

    UUIDv7s made in the same millisecond are not ordered, so the ids are sorted to keep
    the variants listed in the order the seller gave them.
    """
    unsold = {"product_id": product_id, "reserved": 0, "archived": False}
    if new.variants is None:
        return [Variant(id=new_id(), options={}, on_hand=new.stock, is_default=True, **unsold)]
    ids = sorted(new_id() for _ in new.variants)
    return [
        Variant(
            id=id_,
            sku=v.sku,
            options=v.options,
            price=v.price,
            on_hand=v.stock,
            is_default=False,
            **unsold,
        )
        for id_, v in zip(ids, new.variants, strict=True)
    ]


async def _writable(session: AsyncSession, principal: Principal, product_id: str) -> Product:
    """The product, locked for this transaction, when the caller may act for its shop.

    404 for an unknown product, 403 `not-your-shop` otherwise (products are public, so
    hiding their existence would protect nothing). FOR NO KEY UPDATE serialises edits of
    one product (search_text is computed from all its fields) without blocking order
    lines that reference it.
    """
    product = await session.scalar(
        select(Product)
        .where(Product.id == product_id)
        .with_for_update(key_share=True)  # FOR NO KEY UPDATE
    )
    if product is None:
        raise PRODUCT_NOT_FOUND
    await require_shop_access(session, principal, product.shop_id)
    return product


async def _change_variant(
    session: AsyncSession, product: Product, variants: dict[str, Variant], change: VariantPatch
) -> None:
    variant = variants.get(change.id)
    if variant is None:
        raise Problem(
            422,
            "unknown-variant",
            f"Variant {change.id} is not part of this product.",
            variant_id=change.id,
        )
    for field, value in change.model_dump(exclude_unset=True, exclude={"id", "stock"}).items():
        setattr(variant, field, value)
    if change.stock is None:
        return
    # One conditional UPDATE: a reservation committed between a read and a write could
    # otherwise leave fewer units on hand than are promised to buyers.
    available = await session.scalar(
        update(Variant)
        .where(Variant.id == variant.id, Variant.reserved <= change.stock)
        .values(on_hand=change.stock)
        .returning(AVAILABLE)
        .execution_options(synchronize_session=False)
    )
    if available is None:
        raise Problem(
            409,
            "stock-below-reserved",
            f"Variant {variant.id} has more units reserved by orders than {change.stock}.",
            variant_id=variant.id,
        )
    stock_changed(session, product.shop_id, product.id, variant.id, available)


def _reject_duplicate_skus(variants: Sequence[Variant]) -> None:
    skus = [v.sku.casefold() for v in variants if v.sku]
    if len(skus) != len(set(skus)):
        raise Problem(409, "duplicate-sku", "Two variants of the product would share a SKU.")


async def _referenced(session: AsyncSession, product_id: str) -> bool:
    ordered = exists().where(OrderItem.product_id == product_id)
    in_cart = exists().where(CartItem.product_id == product_id)
    return bool(await session.scalar(select(ordered | in_cart)))


async def _variants_of(session: AsyncSession, product_ids: list[str]) -> dict[str, list[Variant]]:
    """Variants per product, in creation order, read fresh from the database."""
    by_product: dict[str, list[Variant]] = defaultdict(list)
    if product_ids:
        rows = await session.scalars(
            select(Variant)
            .where(Variant.product_id.in_(product_ids))
            .order_by(Variant.id)
            .execution_options(populate_existing=True)
        )
        for variant in rows:
            by_product[variant.product_id].append(variant)
    return by_product


def _index(product: Product) -> None:
    """Fold the searchable fields once on write, so search is a plain LIKE on both
    databases. Newlines keep a query word from matching across two fields."""
    product.search_text = fold("\n".join((product.name, product.description, product.category)))


def _product_out(product: Product, variants: Sequence[Variant]) -> ProductOut:
    return ProductOut(
        id=product.id,
        shop_id=product.shop_id,
        name=product.name,
        description=product.description,
        images=product.images,
        category=product.category,
        base_price=product.base_price,
        status=product.status,
        created_at=product.created_at,
        updated_at=product.updated_at,
        variants=[
            VariantOut(
                id=v.id,
                sku=v.sku,
                options=v.options,
                price=product.base_price if v.price is None else v.price,
                stock=v.on_hand,
                available=v.on_hand - v.reserved,
                is_default=v.is_default,
                archived=v.archived,
            )
            for v in variants
        ],
    )
