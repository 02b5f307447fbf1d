"""Bodies of the cart API."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from commerce.carts.service import MAX_QUANTITY
from storage.web import Input

Id = Annotated[str, Field(min_length=1, max_length=64)]
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY)]


class AddItemIn(Input):
    product_id: Id
    variant_id: Id | None = Field(
        default=None, description="Required when the product has several variants."
    )
    quantity: Quantity = 1
    live_session_id: Id | None = Field(
        default=None, description="Added during this live session: the live price applies."
    )


class SetQuantityIn(Input):
    quantity: Quantity


class CartItemOut(BaseModel):
    id: str
    product_id: str
    variant_id: str
    name: str
    image: str | None
    options: dict[str, str]
    quantity: int
    live_session_id: str | None
    unit_price: int = Field(description="Price now (live or flash price when it applies).")
    price_when_added: int
    price_changed: bool
    available: int = Field(
        description="Units this line can buy now: the stock, capped for a line bought from"
        " a live session by what the session still sets aside for the product."
    )
    in_stock: bool = Field(description="False when the product is off sale or short of stock.")
    line_total: int


class CartOut(BaseModel):
    items: list[CartItemOut]
    subtotal: int
    changed: bool = Field(description="Some price or availability changed since added.")
