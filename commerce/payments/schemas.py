"""Bodies of the payments API and of Sepay's webhook."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from storage.web import SecurityScheme

SEPAY_API_KEY = SecurityScheme(
    "sepayApiKey",
    {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "Sepay's webhook key, sent as `Apikey <key>` (STREAMCART_SEPAY_API_KEY).",
    },
)


class PaymentOut(BaseModel):
    id: str
    order_id: str
    code: str = Field(description="Put exactly this in the transfer content.")
    amount: int
    received: int
    refund_due: int
    status: str
    expires_at: datetime
    bank: str | None = None
    account: str | None = None
    qr_url: str | None = Field(default=None, description="VietQR image with everything filled in.")
    qr_missing_reason: str | None = Field(
        default=None,
        description="Why `qr_url`, `bank` and `account` are missing (the receiving account"
        " is not configured); null when they are there.",
    )


class SepayWebhookIn(BaseModel):
    """A transaction Sepay saw on the receiving account. Unknown extra fields are kept."""

    model_config = ConfigDict(extra="allow")

    id: int = Field(ge=0, description="Sepay's transaction id: the idempotency key.")
    gateway: str = Field(default="", max_length=100)
    transactionDate: str = Field(default="", max_length=40)
    accountNumber: str | None = Field(default=None, max_length=64)
    subAccount: str | None = Field(default=None, max_length=64)
    code: str | None = Field(default=None, max_length=100)
    content: str = Field(default="", max_length=2000)
    transferType: Literal["in", "out"]
    transferAmount: int = Field(ge=0, le=10**13)
    accumulated: int | None = None
    referenceCode: str | None = Field(default=None, max_length=100)
    description: str | None = Field(default=None, max_length=2000)


class WebhookAck(BaseModel):
    success: bool = True
