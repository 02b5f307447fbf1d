"""Cart endpoints under /api/cart."""

from __future__ import annotations

from aiohttp import web

from commerce.accounts.auth import require_principal
from commerce.carts.schemas import AddItemIn, CartItemOut, CartOut, SetQuantityIn
from commerce.carts.service import CartLine, CartService
from storage.web import ApiRoutes

routes = ApiRoutes()
CARTS = web.AppKey("carts", CartService)
TAGS = ("cart",)


def cart_out(lines: list[CartLine]) -> CartOut:
    items = [
        CartItemOut(
            id=line.item.id,
            product_id=line.product.id,
            variant_id=line.variant.id,
            name=line.product.name,
            image=line.product.images[0] if line.product.images else None,
            options=line.variant.options,
            quantity=line.item.quantity,
            live_session_id=line.item.live_session_id,
            unit_price=line.unit_price,
            price_when_added=line.item.price_when_added,
            price_changed=line.price_changed,
            available=line.available,
            in_stock=line.in_stock,
            line_total=line.unit_price * line.item.quantity,
        )
        for line in lines
    ]
    return CartOut(
        items=items,
        subtotal=sum(i.line_total for i in items if i.in_stock),
        changed=any(i.price_changed or not i.in_stock for i in items),
    )


async def _cart(request: web.Request, user_id: str) -> CartOut:
    return cart_out(await request.app[CARTS].view(user_id))


@routes.route(
    "GET", "/api/cart", summary="Your cart, priced now", tags=TAGS, response=CartOut, auth=True
)
async def get_cart(request: web.Request) -> CartOut:
    """Each line says whether its price or availability changed since it was added."""
    principal = await require_principal(request)
    return await _cart(request, principal.user_id)


@routes.route(
    "POST",
    "/api/cart/items",
    summary="Add to cart",
    tags=TAGS,
    body=AddItemIn,
    response=CartOut,
    status=201,
    auth=True,
    errors=(404, 409),
)
async def add_item(request: web.Request, body: AddItemIn) -> CartOut:
    """Adding a unit already in the cart (for the same live session) adds to its quantity;
    a line holding more than can be bought is refused (409 `out-of-stock`, `available`)."""
    principal = await require_principal(request)
    await request.app[CARTS].add(
        principal.user_id, body.product_id, body.variant_id, body.quantity, body.live_session_id
    )
    return await _cart(request, principal.user_id)


@routes.route(
    "PATCH",
    "/api/cart/items/{item_id}",
    summary="Change a line's quantity",
    tags=TAGS,
    body=SetQuantityIn,
    response=CartOut,
    auth=True,
    errors=(404, 409),
)
async def set_quantity(request: web.Request, body: SetQuantityIn) -> CartOut:
    """More than can be bought is refused (409 `out-of-stock`, with `available`)."""
    principal = await require_principal(request)
    await request.app[CARTS].set_quantity(
        principal.user_id, request.match_info["item_id"], body.quantity
    )
    return await _cart(request, principal.user_id)


@routes.route(
    "DELETE",
    "/api/cart/items/{item_id}",
    summary="Remove a line",
    tags=TAGS,
    response=CartOut,
    auth=True,
    errors=(404,),
)
async def remove_item(request: web.Request) -> CartOut:
    principal = await require_principal(request)
    await request.app[CARTS].remove(principal.user_id, request.match_info["item_id"])
    return await _cart(request, principal.user_id)
