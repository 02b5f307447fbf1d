"""Order endpoints under /api/orders."""

from __future__ import annotations

from aiohttp import web

from commerce.accounts.address_routes import ADDRESSES
from commerce.accounts.auth import require_principal
from commerce.orders.checkout import CheckoutService, Line, PlacedOrder
from commerce.orders.models import OrderStatus, PaymentMethod
from commerce.orders.schemas import (
    CancelIn,
    CheckoutIn,
    CheckoutOut,
    OrderHistoryOut,
    OrderItemOut,
    OrderListQuery,
    OrderOut,
    OrderPage,
    OrderVoucherOut,
    StatusIn,
)
from commerce.orders.service import OrderService, OrderView
from commerce.payments.routes import BANK, payment_out
from commerce.payments.vietqr import BankAccount
from storage.web import ApiRoutes

routes = ApiRoutes()
CHECKOUT = web.AppKey("checkout", CheckoutService)
ORDERS = web.AppKey("orders", OrderService)
TAGS = ("orders",)


def order_out(view: OrderView | PlacedOrder, bank: BankAccount) -> OrderOut:
    history = getattr(view, "history", None)
    return OrderOut.model_validate(
        {
            **{c: getattr(view.order, c) for c in OrderOut.model_fields if hasattr(view.order, c)},
            "items": [OrderItemOut.model_validate(i, from_attributes=True) for i in view.items],
            "payment": payment_out(view.payment, bank) if view.payment else None,
            "voucher": voucher_out(view.order),
            "history": None
            if history is None
            else [OrderHistoryOut.model_validate(h, from_attributes=True) for h in history],
        }
    )


def voucher_out(order) -> OrderVoucherOut | None:
    if order.voucher_claim_id is None:
        return None
    return OrderVoucherOut(
        claim_id=order.voucher_claim_id, voucher_id=order.voucher_id, code=order.voucher_code
    )


@routes.route(
    "POST",
    "/api/orders/checkout",
    summary="Check out the cart or buy now",
    tags=TAGS,
    body=CheckoutIn,
    response=CheckoutOut,
    status=201,
    auth=True,
    errors=(404, 409),
)
async def checkout(request: web.Request, body: CheckoutIn) -> CheckoutOut:
    """One order per shop. Stock is reserved at once; bank-transfer orders carry a payment
    with the code for the transfer content, a VietQR image and a deadline after which the
    order expires and its stock returns. If any line is short of stock, nothing is ordered
    (409 `out-of-stock` naming the line). With `voucher_claim_id`, the voucher's discount
    comes off its shop's order (409 `voucher-used`, `voucher-min-order`... when it
    cannot), and it is given back if that order is cancelled or expires."""
    principal = await require_principal(request)
    lines = None
    if body.items is not None:
        lines = [
            Line(i.product_id, i.quantity, i.variant_id, i.live_session_id) for i in body.items
        ]
    shipping_address = body.shipping_address
    if body.address_id is not None:
        shipping_address = await request.app[ADDRESSES].shipping_text(
            principal.user_id, body.address_id
        )
    placed = await request.app[CHECKOUT].checkout(
        principal.user_id,
        PaymentMethod(body.payment_method),
        lines,
        shipping_address=shipping_address,
        note=body.note,
        voucher_claim_id=body.voucher_claim_id,
    )
    return CheckoutOut(orders=[order_out(p, request.app[BANK]) for p in placed])


@routes.route(
    "GET",
    "/api/orders",
    summary="Your orders, or a shop's orders",
    tags=TAGS,
    query=OrderListQuery,
    response=OrderPage,
    auth=True,
    errors=(403, 404),
)
async def list_orders(request: web.Request, query: OrderListQuery) -> OrderPage:
    """Newest first. With `shop_id`, the orders of a shop you own or moderate; with
    `live_session_id`, only the orders with a line bought in that live session."""
    principal = await require_principal(request)
    views, cursor = await request.app[ORDERS].list(principal, query)
    bank = request.app[BANK]
    return OrderPage(items=[order_out(v, bank) for v in views], next_cursor=cursor)


@routes.route(
    "GET",
    "/api/orders/{order_id}",
    summary="One order with its history",
    tags=TAGS,
    response=OrderOut,
    auth=True,
    errors=(404,),
)
async def get_order(request: web.Request) -> OrderOut:
    principal = await require_principal(request)
    view = await request.app[ORDERS].get(principal, request.match_info["order_id"])
    return order_out(view, request.app[BANK])


@routes.route(
    "POST",
    "/api/orders/{order_id}/cancel",
    summary="Cancel an order",
    tags=TAGS,
    body=CancelIn,
    response=OrderOut,
    auth=True,
    errors=(404, 409),
)
async def cancel_order(request: web.Request, body: CancelIn) -> OrderOut:
    """Buyers may cancel until the shop starts processing; shops until shipped. Held stock
    is released and sold stock restocked exactly once; money received becomes refund due."""
    principal = await require_principal(request)
    view = await request.app[ORDERS].cancel(principal, request.match_info["order_id"], body.reason)
    return order_out(view, request.app[BANK])


@routes.route(
    "POST",
    "/api/orders/{order_id}/status",
    summary="Record a fulfilment step",
    tags=TAGS,
    body=StatusIn,
    response=OrderOut,
    auth=True,
    errors=(403, 404, 409),
)
async def set_status(request: web.Request, body: StatusIn) -> OrderOut:
    """For the shop: paid -> processing -> shipped -> delivered -> completed. For admins
    also `refunded` once the money went back."""
    principal = await require_principal(request)
    view = await request.app[ORDERS].advance(
        principal, request.match_info["order_id"], OrderStatus(body.status), body.note
    )
    return order_out(view, request.app[BANK])
