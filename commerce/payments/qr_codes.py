"""A payment's VietQR text, looked up by the payment's id.

The id is the key: an `<img>` cannot send a bearer token, and the id (a UUIDv7 with 74
random bits) is given only to those who may read the payment: its buyer, its shop's
staff and admins. What the image shows (account, amount, transfer content) is what
that payment answer already shows them.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.payments.models import Payment
from commerce.payments.vietqr import BankAccount
from storage.web import Problem

NOT_FOUND = Problem(404, "payment-not-found", "No such payment.")


class PaymentQrCodes:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], bank: BankAccount) -> None:
        self._sessions = sessions
        self._bank = bank

    async def payload(self, payment_id: str) -> str:
        """404 for an unknown payment, and for one whose QR cannot be made (then the
        problem's detail says why, as the payment's `qr_missing_reason` does)."""
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(Payment.amount, Payment.code).where(Payment.id == payment_id)
                )
            ).first()
        if row is None:
            raise NOT_FOUND
        payload = self._bank.payload(row.amount, row.code)
        if payload is None:
            raise Problem(404, "payment-qr-missing", self._bank.missing_reason)
        return payload
