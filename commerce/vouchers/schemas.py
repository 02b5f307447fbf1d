"""Bodies of the vouchers API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from storage.web import Input

Id = Annotated[str, Field(min_length=1, max_length=64)]
Money = Annotated[int, Field(ge=1, le=10**12)]
MAX_TOTAL = 1_000_000


class VoucherIn(Input):
    code: str = Field(min_length=1, max_length=40, description="Shown to buyers.")
    kind: Literal["percent", "fixed"]
    value: Money = Field(description="A percentage (1-100) or an amount in VND.")
    min_order: int = Field(default=0, ge=0, le=10**12, description="VND, of the shop's order.")
    max_discount: Money | None = Field(default=None, description="Cap on the discount (VND).")
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    total: int = Field(ge=1, le=MAX_TOTAL, description="How many can be claimed in all.")
    per_buyer_limit: int = Field(default=1, ge=1, le=100)
    live_session_id: Id | None = Field(
        default=None, description="Only for what is bought in this live session."
    )

    @model_validator(mode="after")
    def _coherent(self) -> VoucherIn:
        if self.kind == "percent" and self.value > 100:
            raise ValueError("a percentage is at most 100")
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if self.per_buyer_limit > self.total:
            raise ValueError("per_buyer_limit cannot exceed total")
        return self


class VoucherPatch(Input):
    disabled: Literal[True] = Field(description="Withdraw the voucher (for good).")


class VoucherOut(BaseModel):
    id: str
    shop_id: str
    code: str
    kind: str
    value: int
    min_order: int
    max_discount: int | None
    starts_at: datetime
    ends_at: datetime
    total: int
    per_buyer_limit: int
    live_session_id: str | None
    claimed: int
    used: int
    disabled: bool
    dropped_at: datetime | None
    dropped_in: str | None
    claims_close_at: datetime | None
    created_at: datetime


class VoucherList(BaseModel):
    items: list[VoucherOut]


class ClaimedVoucherOut(BaseModel):
    claim_id: str
    claimed_at: datetime
    voucher: VoucherOut


class ClaimedVoucherList(BaseModel):
    items: list[ClaimedVoucherOut]
