"""Shops' vouchers: created and withdrawn by the shop's team; held by buyers who
claimed them (`live.vouchers` hands them out in live drops)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.accounts.tokens import Principal
from commerce.shops.access import require_shop_access
from commerce.vouchers.models import Voucher, VoucherClaim
from commerce.vouchers.schemas import VoucherIn
from storage.ids import new_id
from storage.web import Problem

MAX_LISTED = 500


class VoucherService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        on_disabled: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._sessions = sessions
        self._on_disabled = on_disabled  # e.g. close the claims gate at once

    async def create(self, principal: Principal, shop_id: str, body: VoucherIn) -> Voucher:
        async with self._sessions.begin() as session:
            await require_shop_access(session, principal, shop_id)
            voucher = Voucher(
                id=new_id(),
                shop_id=shop_id,
                **body.model_dump(),
                claimed=0,
                used=0,
                disabled=False,
                created_at=datetime.now(UTC),
            )
            session.add(voucher)
        return voucher

    async def of_shop(self, principal: Principal, shop_id: str) -> list[Voucher]:
        """The shop's vouchers, newest first (at most MAX_LISTED)."""
        async with self._sessions() as session:
            await require_shop_access(session, principal, shop_id)
            rows = await session.scalars(
                select(Voucher)
                .where(Voucher.shop_id == shop_id)
                .order_by(Voucher.id.desc())
                .limit(MAX_LISTED)
            )
            return list(rows)

    async def get(self, principal: Principal, voucher_id: str) -> Voucher:
        async with self._sessions() as session:
            return await _staff_voucher(session, principal, voucher_id)

    async def disable(self, principal: Principal, voucher_id: str) -> Voucher:
        async with self._sessions.begin() as session:
            voucher = await _staff_voucher(session, principal, voucher_id)
            voucher.disabled = True
        if self._on_disabled is not None:
            await self._on_disabled(voucher_id)
        return voucher

    async def held_by(self, buyer_id: str) -> list[tuple[VoucherClaim, Voucher]]:
        """The buyer's claimed vouchers not spent yet, still valid, newest first."""
        now = datetime.now(UTC)
        async with self._sessions() as session:
            rows = await session.execute(
                select(VoucherClaim, Voucher)
                .join(Voucher, Voucher.id == VoucherClaim.voucher_id)
                .where(
                    VoucherClaim.buyer_id == buyer_id,
                    VoucherClaim.used_at.is_(None),
                    Voucher.disabled.is_(False),
                    Voucher.ends_at > now,
                )
                .order_by(VoucherClaim.claimed_at.desc())
                .limit(MAX_LISTED)
            )
            return [(claim, voucher) for claim, voucher in rows]


async def _staff_voucher(session: AsyncSession, principal: Principal, voucher_id: str) -> Voucher:
    voucher = await session.get(Voucher, voucher_id)
    if voucher is None:
        raise Problem(404, "voucher-not-found", "There is no voucher with this id.")
    await require_shop_access(session, principal, voucher.shop_id)
    return voucher
