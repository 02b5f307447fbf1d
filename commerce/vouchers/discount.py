"""What a voucher takes off an order: one pure function, in integer VND.

A percentage is rounded down to the VND (in the buyer's favour never beyond the cap:
the shop never gives more than `max_discount`), and no discount exceeds the subtotal
of the shop's order it applies to, so a total never goes below zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from commerce.vouchers.models import VoucherKind


def discount(kind: str, value: int, max_discount: int | None, subtotal: int) -> int:
    """The VND taken off a shop's `subtotal`: percent -> floor(subtotal * value / 100),
    fixed -> `value`; then capped by `max_discount` and by the subtotal."""
    amount = subtotal * value // 100 if kind == VoucherKind.PERCENT else value
    if max_discount is not None:
        amount = min(amount, max_discount)
    return max(0, min(amount, subtotal))


@dataclass(frozen=True, slots=True)
class Applied:
    """A claim applied to one shop's order in a checkout, before it is marked used."""

    claim_id: str
    voucher_id: str
    code: str
    shop_id: str
    amount: int

    def order_columns(self) -> dict[str, Any]:
        return {
            "discount": self.amount,
            "voucher_claim_id": self.claim_id,
            "voucher_id": self.voucher_id,
            "voucher_code": self.code,
        }
