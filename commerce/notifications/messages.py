"""What each event says, to whom: the title, body and data of a notification."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from commerce.notifications import kinds as K

ORDER_EVENTS = {
    "order.created": (K.ORDER_CREATED, "Order {code} placed", "Total {total:,} VND."),
    "order.paid": (K.ORDER_PAID, "Order {code} paid", "We received {total:,} VND. Thank you!"),
    "order.shipped": (K.ORDER_SHIPPED, "Order {code} shipped", "It is on its way."),
    "order.delivered": (K.ORDER_DELIVERED, "Order {code} delivered", "Enjoy your purchase."),
    "order.cancelled": (
        K.ORDER_CANCELLED,
        "Order {code} cancelled",
        "It will not go ahead. {reason}",
    ),
    "order.expired": (
        K.ORDER_EXPIRED,
        "Order {code} expired",
        "No payment arrived in time; the items went back on sale.",
    ),
}
PAYMENT_OUTCOMES = {
    "partial": (
        K.ORDER_PARTLY_PAID,
        "Order partly paid",
        "We received {received:,} of {due:,} VND; please transfer the rest.",
    ),
    "overpaid": (
        K.ORDER_OVERPAID,
        "Order overpaid",
        "We received {received:,} VND for {due:,} VND; the difference is due back to you.",
    ),
}
SELLER_PROBLEMS = frozenset({"partial", "overpaid", "late"})


@dataclass(frozen=True)
class Message:
    kind: str
    title: str
    body: str
    data: dict[str, Any]


def order_message(event_type: str, data: dict[str, Any]) -> Message:
    kind, title, body = ORDER_EVENTS[event_type]
    fields = {"reason": "", **data}
    return Message(kind, title.format(**fields), body.format(**fields).strip(), _order(data))


def payment_message(data: dict[str, Any]) -> Message:
    kind, title, body = PAYMENT_OUTCOMES[data["outcome"]]
    return Message(kind, title, body.format(**data), _payment(data))


def seller_paid(data: dict[str, Any]) -> Message:
    return Message(
        K.SHOP_ORDER_PAID,
        f"New paid order {data['code']}",
        f"{data['total']:,} VND received: ready to pack.",
        _order(data),
    )


def seller_problem(data: dict[str, Any]) -> Message:
    return Message(
        K.SHOP_PAYMENT_PROBLEM,
        "Payment needs attention",
        f"A transfer for an order came in {data['outcome']}: "
        f"{data['received']:,} VND received, {data['due']:,} VND due.",
        _payment(data),
    )


def live_message(kind: str, shop_name: str, data: dict[str, Any]) -> Message:
    title, body = {
        K.SHOP_SCHEDULED: (f"{shop_name} scheduled a live session", "Tap to set a reminder."),
        K.SHOP_LIVE: (f"{shop_name} is live now", "Join the stream."),
        K.FLASH_STARTED: (f"Flash sale at {shop_name}", "Limited stock, starting now."),
    }[kind]
    keep = (
        "live_session_id",
        "shop_id",
        "title",
        "scheduled_at",
        "id",
        "product_id",
        "flash_price",
        "ends_at",
    )
    return Message(kind, title, body, {k: data[k] for k in keep if k in data})


def _order(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data.get(k) for k in ("order_id", "code", "status", "total", "live_session_id")}


def _payment(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data.get(k) for k in ("order_id", "payment_id", "outcome", "received", "due")}
