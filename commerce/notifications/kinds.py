"""Notification kinds and the channels each one uses until the user chooses otherwise."""

from __future__ import annotations

from dataclasses import dataclass

SHOP_SCHEDULED = "shop_scheduled"
SHOP_LIVE = "shop_live"
FLASH_STARTED = "flash_started"
ORDER_CREATED = "order_created"
ORDER_PAID = "order_paid"
ORDER_PARTLY_PAID = "order_partly_paid"
ORDER_OVERPAID = "order_overpaid"
ORDER_SHIPPED = "order_shipped"
ORDER_DELIVERED = "order_delivered"
ORDER_CANCELLED = "order_cancelled"
ORDER_EXPIRED = "order_expired"
SHOP_ORDER_PAID = "shop_order_paid"
SHOP_PAYMENT_PROBLEM = "shop_payment_problem"

FOLLOWER_KINDS = (SHOP_SCHEDULED, SHOP_LIVE, FLASH_STARTED)
ORDER_KINDS = (
    ORDER_CREATED,
    ORDER_PAID,
    ORDER_PARTLY_PAID,
    ORDER_OVERPAID,
    ORDER_SHIPPED,
    ORDER_DELIVERED,
    ORDER_CANCELLED,
    ORDER_EXPIRED,
    SHOP_ORDER_PAID,
    SHOP_PAYMENT_PROBLEM,
)
KINDS = FOLLOWER_KINDS + ORDER_KINDS


@dataclass(frozen=True)
class Choice:
    """Which channels carry one kind for one user."""

    in_app: bool
    email: bool
    push: bool

    def wants(self, channel: str) -> bool:
        return bool(getattr(self, channel))


def default_choice(kind: str) -> Choice:
    """In-app and push for everything; email only where money or a parcel is involved,
    so following a busy shop does not fill an inbox."""
    return Choice(in_app=True, email=kind in ORDER_KINDS, push=True)
