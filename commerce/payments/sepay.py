"""Sepay webhooks: authenticate, store verbatim (less NUL characters, which PostgreSQL
text cannot hold), apply exactly once, answer fast.

Sepay retries anything but a 2xx for half an hour, so the handler is idempotent
on Sepay's transaction id: the audit row is inserted with ON CONFLICT DO NOTHING
and only the request that inserted it applies the money, in the same transaction.
Every accepted transfer ends in a recorded outcome; none is dropped.
"""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.codes import is_payment_code, payment_codes_in
from commerce.orders.lifecycle import SYSTEM, end_unpaid_or_cancel, mark_paid
from commerce.orders.models import OrderStatus
from commerce.payments.models import (
    SEPAY_ID_DIGITS,
    Payment,
    PaymentStatus,
    SepayTransaction,
    WebhookOutcome,
)
from commerce.payments.schemas import SepayWebhookIn
from storage.ids import new_id
from storage.outbox import add_event
from storage.web import Problem

log = logging.getLogger("streamcart.sepay")
OPEN = (PaymentStatus.PENDING, PaymentStatus.PARTIAL)


class SepayWebhooks:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], api_key: str) -> None:
        self._sessions = sessions
        self._expected = f"Apikey {api_key}".encode() if api_key else None

    def authenticate(self, authorization: str | None) -> None:
        """Constant-time check of `Authorization: Apikey <key>`; 401 for anything else."""
        given = (authorization or "").strip().encode()
        if self._expected is None or not hmac.compare_digest(given, self._expected):
            raise Problem(
                401,
                "invalid-webhook-key",
                "Missing or wrong Sepay API key.",
                headers={"WWW-Authenticate": "Apikey"},
            )

    async def receive(self, body: SepayWebhookIn) -> WebhookOutcome | None:
        """Record and apply one transaction; None when this Sepay id was already applied.
        NUL characters are taken out of its strings first (PostgreSQL text cannot hold
        them, and the transfer must be recorded, not refused); an id too long to be one
        (over SEPAY_ID_DIGITS digits) is refused with 422, so Sepay keeps retrying."""
        if len(str(body.id)) > SEPAY_ID_DIGITS:
            raise Problem(
                422,
                "invalid-sepay-id",
                f"A Sepay transaction id has at most {SEPAY_ID_DIGITS} digits.",
            )
        body = SepayWebhookIn.model_validate(without_nul(body.model_dump()))
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            row_id = await _insert_once(session, body, now)
            if row_id is None:
                log.info("sepay redelivery ignored", extra={"sepay_id": body.id})
                return None
            outcome, payment_id, refund, note = await _apply(session, body, now)
            await session.execute(
                update(SepayTransaction)
                .where(SepayTransaction.id == row_id)
                .values(outcome=outcome, payment_id=payment_id, refund_due=refund, note=note)
            )
        log.info("sepay transaction", extra={"sepay_id": body.id, "outcome": outcome.value})
        return outcome


def without_nul(value: Any) -> Any:
    """`value` (JSON-like) with NUL removed from every string in it, keys included."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    return value


async def _insert_once(session: AsyncSession, body: SepayWebhookIn, now: datetime) -> str | None:
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    row_id = new_id()
    inserted = await session.execute(
        dialect.insert(SepayTransaction)
        .values(
            id=row_id,
            sepay_id=str(body.id),
            payload=body.model_dump(mode="json"),
            transfer_type=body.transferType,
            amount=body.transferAmount,
            content=body.content,
            outcome=WebhookOutcome.UNMATCHED,
            refund_due=0,
            received_at=now,
            note="",
        )
        .on_conflict_do_nothing(index_elements=["sepay_id"])
        .returning(SepayTransaction.id)
    )
    return inserted.scalar()


async def _apply(session: AsyncSession, body: SepayWebhookIn, now: datetime):
    """Decide what the transfer means; returns (outcome, payment id, refund due, note)."""
    amount = body.transferAmount
    if body.transferType == "out":
        return WebhookOutcome.OUTGOING, None, 0, "outgoing transfer"
    payment = await _find_payment(session, body)
    if payment is None:
        add_event(session, "payment.unmatched", _transfer_data(body))
        return WebhookOutcome.UNMATCHED, None, amount, "no payment code matched"

    if payment.status == PaymentStatus.PAID:  # a second transfer for a settled payment
        received = await _add_refund(session, payment, amount)
        _announce(session, payment, body, WebhookOutcome.OVERPAID, received)
        return WebhookOutcome.OVERPAID, payment.id, amount, "payment was already settled"
    if payment.status not in OPEN or payment.expires_at <= now:
        if payment.status in OPEN:  # the sweeper has not got to it yet: expire it now
            await end_unpaid_or_cancel(
                session,
                payment.order_id,
                OrderStatus.EXPIRED,
                SYSTEM,
                reason="payment arrived after the deadline",
            )
        received = await _add_refund(session, payment, amount)
        _announce(session, payment, body, WebhookOutcome.LATE, received)
        return WebhookOutcome.LATE, payment.id, amount, f"payment was {payment.status}"

    received = payment.received + amount
    values: dict = {"received": received}
    if received < payment.amount:
        outcome, refund = WebhookOutcome.PARTIAL, 0
        values["status"] = PaymentStatus.PARTIAL
    else:
        refund = received - payment.amount
        outcome = WebhookOutcome.OVERPAID if refund else WebhookOutcome.PAID
        values.update(status=PaymentStatus.PAID, paid_at=now, refund_due=refund)
    await session.execute(update(Payment).where(Payment.id == payment.id).values(values))
    if values.get("status") == PaymentStatus.PAID:
        await mark_paid(session, payment.order_id, reason=f"Sepay transaction {body.id}")
    _announce(session, payment, body, outcome, received)
    return outcome, payment.id, refund, ""


async def _find_payment(session: AsyncSession, body: SepayWebhookIn) -> Payment | None:
    """Sepay's own `code` first, then any valid code hidden in the transfer content.

    The row is locked so two different transfers for one payment add up correctly.
    """
    candidates = [c for c in payment_codes_in(body.code or "") if is_payment_code(c)]
    candidates += [c for c in payment_codes_in(body.content) if c not in candidates]
    if not candidates:
        return None
    return await session.scalar(
        select(Payment)
        .where(Payment.code.in_(candidates))
        .order_by(Payment.created_at.desc())
        .limit(1)
        .with_for_update()
    )


async def _add_refund(session: AsyncSession, payment: Payment, amount: int) -> int:
    """Keep the transfer for a refund; returns what the payment has received in all,
    computed before the update (which may refresh `payment` from the database)."""
    received = payment.received + amount
    await session.execute(
        update(Payment)
        .where(Payment.id == payment.id)
        .values(received=Payment.received + amount, refund_due=Payment.refund_due + amount)
    )
    return received


def _transfer_data(body: SepayWebhookIn) -> dict:
    return {"sepay_id": body.id, "amount": body.transferAmount, "gateway": body.gateway}


def _announce(session, payment: Payment, body: SepayWebhookIn, outcome, received: int) -> None:
    add_event(
        session,
        "payment.received",
        {
            **_transfer_data(body),
            "payment_id": payment.id,
            "order_id": payment.order_id,
            "buyer_id": payment.buyer_id,
            "outcome": outcome.value,
            "received": received,
            "due": payment.amount,
        },
    )
