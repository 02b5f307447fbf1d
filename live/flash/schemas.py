"""Bodies of the flash-sales API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from live.flash.service import MAX_COUNTDOWN_SECONDS, MAX_DURATION_SECONDS, MIN_DURATION_SECONDS
from storage.web import Input
from storage.web.pagination import Page

Id = Annotated[str, Field(min_length=1, max_length=64)]
MAX_PER_BUYER = 999


class FlashSaleIn(Input):
    product_id: Id
    variant_id: Id | None = Field(
        default=None, description="Required when the product has several variants."
    )
    flash_price: int = Field(ge=1, le=10**12, description="VND; below the regular price.")
    quantity: int = Field(ge=1, le=10**6, description="Units; at most what is in stock now.")
    duration_seconds: int = Field(ge=MIN_DURATION_SECONDS, le=MAX_DURATION_SECONDS)
    per_buyer_limit: int = Field(default=1, ge=1, le=MAX_PER_BUYER)
    countdown_seconds: int = Field(
        default=0, ge=0, le=MAX_COUNTDOWN_SECONDS, description="Pre-start countdown; 0 = now."
    )


class ClaimIn(Input):
    quantity: int = Field(default=1, ge=1, le=MAX_PER_BUYER, description="Up to the limit.")
    payment_method: Literal["bank_transfer", "cod"] = "bank_transfer"


class FlashSaleOut(BaseModel):
    id: str
    live_session_id: str
    product_id: str
    variant_id: str
    flash_price: int
    regular_price: int
    quantity: int
    sold: int
    remaining: int
    per_buyer_limit: int
    starts_at: datetime
    ends_at: datetime
    phase: Literal["scheduled", "started", "ended"]
    server_time: datetime = Field(description="The server's clock, for countdowns.")


class FlashSalePage(Page[FlashSaleOut]):
    pass
