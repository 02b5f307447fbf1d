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
    qr_url: str | None = Field(
        default=None,
        description="The VietQR image (SVG) with everything filled in, served by this"
        " server: a path to resolve against the API's base URL, versioned so it may be"
        " cached for good.",
    )
    qr_payload: str | None = Field(
        default=None,
        description="The VietQR text that `qr_url` draws (NAPAS/EMVCo), for apps that draw"
        " the code themselves.",
    )
    qr_missing_reason: str | None = Field(
        default=None,
        description="Why `qr_url` and `qr_payload` are missing: the receiving account is not"
        " configured (then `bank` or `account` is null too), or is not one a VietQR can carry"
        " (a bank this server does not know, a malformed account); null when they are there.",
    )


class QrQuery(BaseModel):
    v: str | None = Field(
        default=None,
        max_length=64,
        description="The version `qr_url` carries: with it the image may be cached for good.",
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
