"""Payment endpoints: Sepay's webhook."""

from __future__ import annotations

from aiohttp import web

from commerce.payments.models import Payment
from commerce.payments.schemas import SEPAY_API_KEY, PaymentOut, SepayWebhookIn, WebhookAck
from commerce.payments.sepay import SepayWebhooks
from commerce.payments.vietqr import BankAccount
from storage.web import ApiRoutes

routes = ApiRoutes()
SEPAY = web.AppKey("sepay", SepayWebhooks)
BANK = web.AppKey("bank_account", BankAccount)


QR_MISSING_REASON = (
    "The VietQR image, bank and account are missing because the operator has not set"
    " STREAMCART_SEPAY_ACCOUNT and STREAMCART_SEPAY_BANK."
)


def payment_out(payment: Payment, bank: BankAccount) -> PaymentOut:
    qr_url = bank.qr_url(payment.amount, payment.code)  # None unless both are set
    return PaymentOut(
        id=payment.id,
        order_id=payment.order_id,
        code=payment.code,
        amount=payment.amount,
        received=payment.received,
        refund_due=payment.refund_due,
        status=payment.status,
        expires_at=payment.expires_at,
        bank=bank.bank or None,
        account=bank.account or None,
        qr_url=qr_url,
        qr_missing_reason=None if qr_url else QR_MISSING_REASON,
    )


async def sepay_key(request: web.Request) -> None:
    request.app[SEPAY].authenticate(request.headers.get("Authorization"))


@routes.route(
    "POST",
    "/api/payments/sepay/webhook",
    summary="Sepay transaction webhook",
    tags=("payments",),
    body=SepayWebhookIn,
    response=WebhookAck,
    guard=sepay_key,
    security=SEPAY_API_KEY,
    allow_nul=True,  # Sepay's content may carry NUL: recorded cleaned, never refused
)
async def sepay_webhook(request: web.Request, body: SepayWebhookIn) -> WebhookAck:
    """Authenticated with `Authorization: Apikey <key>`. Idempotent on Sepay's `id`: a
    redelivery answers success and applies nothing twice. The effects are committed
    before the answer."""
    await request.app[SEPAY].receive(body)
    return WebhookAck()
