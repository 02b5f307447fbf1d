"""Which unit a buyer means, and whether it may be sold right now."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Protocol

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.catalog.models import Product, ProductStatus, Variant
from commerce.shops.models import Shop, ShopStatus
from storage.web import Problem

# Built once: composing it cost about 50 µs per call, on checkout's hot path.
_UNITS = (
    select(Product, Variant, Shop.status)
    .join(Variant, Variant.product_id == Product.id)
    .join(Shop, Shop.id == Product.shop_id)
    .where(Product.id.in_(bindparam("product_ids", expanding=True)))
)


class UnitRef(Protocol):
    product_id: str
    variant_id: str | None


async def sellable_units(
    session: AsyncSession, lines: Sequence[UnitRef]
) -> dict[tuple[str, str | None], tuple[Product, Variant]]:
    """Resolve each (product, variant?) to sellable rows, refusing what cannot be sold."""
    product_ids = {line.product_id for line in lines}
    rows = (await session.execute(_UNITS, {"product_ids": list(product_ids)})).all()
    return resolve_units(lines, rows)


def resolve_units(
    lines: Sequence[UnitRef], rows: Iterable[tuple[Product, Variant, str]]
) -> dict[tuple[str, str | None], tuple[Product, Variant]]:
    """The rows of the lines' products (each variant with its product and its shop's
    status; mapped objects or records with their columns) resolved per line, or the
    Problem that refuses the first unsellable line."""
    variants: dict[str, list[tuple[Product, Variant]]] = defaultdict(list)
    shop_status = {}
    for product, variant, status in rows:
        variants[product.id].append((product, variant))
        shop_status[product.id] = status
    resolved = {}
    for line in lines:
        options = variants.get(line.product_id)
        if not options:
            raise Problem(404, "product-not-found", "No such product.", product_id=line.product_id)
        product = options[0][0]
        if product.status != ProductStatus.ACTIVE or shop_status[product.id] != ShopStatus.ACTIVE:
            raise Problem(
                409,
                "product-unavailable",
                f"'{product.name}' is not on sale.",
                product_id=product.id,
            )
        live = [v for _, v in options if not v.archived]
        if line.variant_id is None:
            if len(live) != 1:
                raise Problem(
                    422,
                    "variant-required",
                    f"Choose a variant of '{product.name}'.",
                    product_id=product.id,
                )
            variant = live[0]
        else:
            variant = next((v for v in live if v.id == line.variant_id), None)
            if variant is None:
                raise Problem(
                    404,
                    "variant-not-found",
                    "No such variant of this product.",
                    product_id=product.id,
                    variant_id=line.variant_id,
                )
        resolved[(line.product_id, line.variant_id)] = (product, variant)
    return resolved
