"""Payment endpoints: Sepay's webhook and each payment's VietQR image."""

from __future__ import annotations

import asyncio

from aiohttp import web

from commerce.payments.models import Payment
from commerce.payments.qr_codes import PaymentQrCodes
from commerce.payments.qr_image import SVG, qr_svg, qr_version
from commerce.payments.schemas import (
    SEPAY_API_KEY,
    PaymentOut,
    QrQuery,
    SepayWebhookIn,
    WebhookAck,
)
from commerce.payments.sepay import SepayWebhooks
from commerce.payments.vietqr import BankAccount
from storage.web import ApiRoutes

routes = ApiRoutes()
SEPAY = web.AppKey("sepay", SepayWebhooks)
BANK = web.AppKey("bank_account", BankAccount)
PAYMENT_QR = web.AppKey("payment_qr", PaymentQrCodes)
QR_PATH = "/api/payments/{payment_id}/qr.svg"
# The versioned URL names one drawing for good; any other asks again each time.
# Private: the image shows one buyer's amount and transfer content.
CACHED_FOR_GOOD = "private, max-age=31536000, immutable"
QR_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'"}


def qr_url(payment_id: str, payload: str) -> str:
    return f"{QR_PATH.format(payment_id=payment_id)}?v={qr_version(payload)}"


def payment_out(payment: Payment, bank: BankAccount) -> PaymentOut:
    payload = bank.payload(payment.amount, payment.code)  # None unless configured
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
        qr_url=None if payload is None else qr_url(payment.id, payload),
        qr_payload=payload,
        qr_missing_reason=bank.missing_reason,
    )


@routes.route(
    "GET",
    QR_PATH,
    summary="A payment's VietQR image",
    tags=("payments",),
    query=QrQuery,
    response_media_type=SVG,
    errors=(404,),
)
async def payment_qr(request: web.Request, query: QrQuery) -> web.Response:
    """The VietQR code of a payment's `qr_url`, drawn by this server as SVG (its text is
    the payment's `qr_payload`). No bearer token, so an `<img>` can show it: the
    payment's id, given only to those who may read the payment, is the key. With the
    `v` that `qr_url` carries the image is cached for good (`immutable`); without it, or
    with an outdated one, it is the current drawing, not to be reused. 404
    `payment-qr-missing` when the receiving account is not configured usably."""
    payload = await request.app[PAYMENT_QR].payload(request.match_info["payment_id"])
    svg = await asyncio.to_thread(qr_svg, payload)
    cache = CACHED_FOR_GOOD if query.v == qr_version(payload) else "no-cache"
    headers = {**QR_HEADERS, "Cache-Control": cache}
    return web.Response(body=svg, content_type=SVG, headers=headers)


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
