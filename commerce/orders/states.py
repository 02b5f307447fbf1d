"""The order state machine: which status may follow which, and who may move it there."""

from __future__ import annotations

from commerce.orders.models import OrderStatus as S

NEXT: dict[S, frozenset[S]] = {
    S.PENDING_PAYMENT: frozenset({S.PAID, S.CANCELLED, S.EXPIRED}),
    S.PAID: frozenset({S.PROCESSING, S.CANCELLED}),
    S.PROCESSING: frozenset({S.SHIPPED, S.CANCELLED}),
    S.SHIPPED: frozenset({S.DELIVERED}),
    S.DELIVERED: frozenset({S.COMPLETED, S.REFUNDED}),
    S.COMPLETED: frozenset({S.REFUNDED}),
    S.CANCELLED: frozenset({S.REFUNDED}),
    S.EXPIRED: frozenset(),
    S.REFUNDED: frozenset(),
}

# Fulfilment steps a shop takes through POST /api/orders/{id}/status.
SELLER_STEPS = frozenset({S.PROCESSING, S.SHIPPED, S.DELIVERED, S.COMPLETED})
# Only an admin records a refund, after the money went back.
ADMIN_STEPS = SELLER_STEPS | {S.REFUNDED}
# Who may cancel from where: buyers before the shop starts work, shops until shipped.
BUYER_CANCELLABLE = frozenset({S.PENDING_PAYMENT, S.PAID})
SHOP_CANCELLABLE = frozenset({S.PENDING_PAYMENT, S.PAID, S.PROCESSING})


def sources(target: S) -> frozenset[S]:
    """Every status from which `target` may be entered."""
    return frozenset(source for source, targets in NEXT.items() if target in targets)
