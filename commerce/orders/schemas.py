"""Bodies of the orders API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

from commerce.orders.models import OrderStatus
from commerce.payments.schemas import PaymentOut
from storage.web import Input
from storage.web.pagination import Page, PageQuery

Id = Annotated[str, Field(min_length=1, max_length=64)]
Quantity = Annotated[int, Field(ge=1, le=999)]


class CheckoutLine(Input):
    product_id: Id
    variant_id: Id | None = None
    quantity: Quantity
    live_session_id: Id | None = Field(
        default=None, description="Buying during a live stream: the live price applies."
    )


class CheckoutIn(Input):
    payment_method: Literal["bank_transfer", "cod"]
    items: list[CheckoutLine] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Buy these now; leave out to check out the whole cart (and empty it).",
    )
    shipping_address: str = Field(default="", max_length=500)
    address_id: Id | None = Field(
        default=None,
        description="One of your saved addresses (`/api/me/addresses`), instead of "
        "`shipping_address`; the order keeps it as text.",
    )
    note: str = Field(default="", max_length=500)
    voucher_claim_id: Id | None = Field(
        default=None,
        description="A voucher you claimed (`/api/me/vouchers`): its discount comes off "
        "the order of its shop.",
    )

    @model_validator(mode="after")
    def _one_address(self) -> CheckoutIn:
        if self.address_id is not None and self.shipping_address:
            raise ValueError("send address_id or shipping_address, not both")
        return self


class CancelIn(Input):
    reason: str = Field(default="", max_length=500)


class StatusIn(Input):
    status: Literal["processing", "shipped", "delivered", "completed", "refunded"]
    note: str = Field(default="", max_length=500)


class OrderListQuery(PageQuery):
    shop_id: Id | None = Field(default=None, description="A shop you run: its orders.")
    status: OrderStatus | None = None
    live_session_id: Id | None = Field(
        default=None,
        description="Only orders with a line bought in this live session (with `shop_id`, "
        "the session's orders for its seller).",
    )


class OrderItemOut(BaseModel):
    id: str
    product_id: str
    variant_id: str
    name: str
    quantity: int
    unit_price: int
    line_total: int
    live_session_id: str | None = Field(
        default=None, description="The live session this line was bought in, if any."
    )


class OrderHistoryOut(BaseModel):
    from_status: str | None
    to_status: str
    actor: str
    actor_id: str | None
    reason: str
    at: datetime


class OrderVoucherOut(BaseModel):
    claim_id: str
    voucher_id: str
    code: str


class OrderOut(BaseModel):
    id: str
    code: str
    status: str
    buyer_id: str
    shop_id: str
    payment_method: str
    live_session_id: str | None
    subtotal: int
    shipping_fee: int
    discount: int
    voucher: OrderVoucherOut | None = Field(
        default=None, description="The voucher that gave the discount, if any."
    )
    total: int
    shipping_address: str
    note: str
    payment_deadline: datetime | None
    created_at: datetime
    updated_at: datetime
    items: list[OrderItemOut]
    payment: PaymentOut | None = None
    history: list[OrderHistoryOut] | None = None


class CheckoutOut(BaseModel):
    orders: list[OrderOut]


class OrderPage(Page[OrderOut]):
    pass
