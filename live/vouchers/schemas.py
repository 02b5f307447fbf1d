"""Bodies of the voucher-drop API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from storage.web import Input

MIN_CLAIM_SECONDS = 5
MAX_CLAIM_SECONDS = 3600


class DropIn(Input):
    claim_seconds: int = Field(
        default=60,
        ge=MIN_CLAIM_SECONDS,
        le=MAX_CLAIM_SECONDS,
        description="How long viewers may claim (never past the voucher's validity).",
    )


class VoucherDropOut(BaseModel):
    live_session_id: str
    voucher_id: str
    code: str
    kind: str
    value: int
    min_order: int
    max_discount: int | None
    total: int
    remaining: int
    per_buyer_limit: int
    claims_close_at: datetime
    ends_at: datetime
    server_time: datetime = Field(description="The server's clock, for countdowns.")


class VoucherDropList(BaseModel):
    items: list[VoucherDropOut]


class VoucherClaimOut(BaseModel):
    claim_id: str = Field(description="Pass as `voucher_claim_id` at checkout.")
    voucher_id: str
    code: str
    live_session_id: str
    claimed_at: datetime
    remaining: int
