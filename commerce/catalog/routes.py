"""Product endpoints under /api/products."""

from __future__ import annotations

from aiohttp import web

from commerce.accounts.auth import require_principal
from commerce.catalog.schemas import ProductIn, ProductOut, ProductPage, ProductPatch, ProductQuery
from commerce.catalog.service import CatalogService
from storage.web import ApiRoutes

routes = ApiRoutes()
CATALOG = web.AppKey("catalog", CatalogService)
TAGS = ("catalog",)


@routes.route(
    "POST",
    "/api/products",
    summary="Add a product to a shop",
    tags=TAGS,
    body=ProductIn,
    response=ProductOut,
    status=201,
    auth=True,
    errors=(403, 404, 409),
)
async def create_product(request: web.Request, body: ProductIn) -> ProductOut:
    """The shop's owner, its moderators or an admin. Give `stock` for a product sold
    without options, or `variants` (each with its own options, optional price and stock).
    409 `shop-not-active` while the shop awaits approval."""
    principal = await require_principal(request)
    return await request.app[CATALOG].create(principal, body)


@routes.route(
    "GET",
    "/api/products",
    summary="Search products, newest first",
    tags=TAGS,
    query=ProductQuery,
    response=ProductPage,
    errors=(401, 403, 404),
)
async def list_products(request: web.Request, query: ProductQuery) -> ProductPage:
    """Public: active products of active shops. `include_archived=true` (with `shop_id`
    and a bearer token of someone acting for that shop) lists archived ones too."""
    principal = await require_principal(request) if query.include_archived else None
    return await request.app[CATALOG].search(principal, query)


@routes.route(
    "GET",
    "/api/products/{id}",
    summary="One product with its variants",
    tags=TAGS,
    response=ProductOut,
    errors=(404,),
)
async def get_product(request: web.Request) -> ProductOut:
    """Public, archived products included (their status says so)."""
    return await request.app[CATALOG].get(request.match_info["id"])


@routes.route(
    "PATCH",
    "/api/products/{id}",
    summary="Edit a product, its variants' prices, SKUs and stock",
    tags=TAGS,
    body=ProductPatch,
    response=ProductOut,
    auth=True,
    errors=(403, 404, 409),
)
async def update_product(request: web.Request, body: ProductPatch) -> ProductOut:
    """The shop's owner, its moderators or an admin. A variant's `stock` sets its units
    on hand; 409 `stock-below-reserved` (naming the variant) when orders hold more.
    Each stock change emits `stock.changed`."""
    principal = await require_principal(request)
    return await request.app[CATALOG].update(principal, request.match_info["id"], body)


@routes.route(
    "DELETE",
    "/api/products/{id}",
    summary="Delete a product, or archive it when orders or carts refer to it",
    tags=TAGS,
    response=ProductOut,
    auth=True,
    errors=(403, 404),
)
async def delete_product(request: web.Request) -> ProductOut | None:
    """204 when the product was deleted; 200 with the archived product when an order
    line or a cart line refers to it, so order history keeps its product."""
    principal = await require_principal(request)
    return await request.app[CATALOG].delete(principal, request.match_info["id"])
