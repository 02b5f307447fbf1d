"""Vouchers dropped on air: the seller drops one of the shop's vouchers in a live
session, and viewers race to claim it.

A claim is decided as a flash sale's is (`live.stock_keeper`): the stock gate counts it
in one atomic step or refuses it (closed, all claimed, over the buyer's limit) without
the database, the voucher's terms and the shop's team being cached; only a winner
writes (`claim_writer.py`), by a conditional UPDATE that never counts past `total`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.accounts.tokens import Principal
from commerce.shops.access import ShopTeams
from commerce.vouchers.models import Voucher
from commerce.vouchers.redeem import usable_problem
from live.sessions.models import LiveStatus
from live.sessions.service import LiveSessionService
from live.vouchers.claim_writer import Claim, Claimed, VoucherClaimWriter, refusal
from live.vouchers.gatekeeper import VoucherGatekeeper, voucher_stock
from storage.gate import Verdict
from storage.ids import new_id
from storage.outbox import add_event
from storage.web import Problem

# A winner the database refused for these: the gate believed otherwise, so it is reset.
DATABASE_DISAGREES = frozenset({"voucher-all-claimed", "voucher-claims-closed"})


def drop_data(voucher: Voucher, now: datetime) -> dict[str, Any]:
    """The drop as `voucher:dropped` and the drop endpoint show it."""
    assert voucher.claims_close_at is not None
    return {
        "live_session_id": voucher.dropped_in,
        "voucher_id": voucher.id,
        "code": voucher.code,
        "kind": voucher.kind,
        "value": voucher.value,
        "min_order": voucher.min_order,
        "max_discount": voucher.max_discount,
        "total": voucher.total,
        "remaining": voucher.total - voucher.claimed,
        "per_buyer_limit": voucher.per_buyer_limit,
        "claims_close_at": min(voucher.claims_close_at, voucher.ends_at).isoformat(),
        "ends_at": voucher.ends_at.isoformat(),
        "server_time": now.isoformat(),
    }


class VoucherDrops:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        live_sessions: LiveSessionService,
        gatekeeper: VoucherGatekeeper,
        teams: ShopTeams,
    ) -> None:
        self._sessions = sessions
        self._live = live_sessions
        self._gatekeeper = gatekeeper
        self._teams = teams
        self._writer = VoucherClaimWriter(sessions, gatekeeper.fresh_for)

    async def drop(
        self, principal: Principal, live_session_id: str, voucher_id: str, claim_seconds: int
    ) -> dict[str, Any]:
        """Open the voucher's claims for `claim_seconds` (within its validity) and tell
        the room. For the shop's team, in a session that is live; once per voucher."""
        live = await self._live.require_staff(principal, live_session_id)
        if live.status != LiveStatus.LIVE:
            raise Problem(409, "live-session-not-live", "Vouchers are dropped on air only.")
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            voucher = await session.get(Voucher, voucher_id)
            if voucher is None or voucher.shop_id != live.shop_id:
                raise Problem(404, "voucher-not-found", "This shop has no such voucher.")
            if voucher.live_session_id not in (None, live.id):
                raise Problem(
                    409, "voucher-wrong-session", "This voucher is for another live session."
                )
            if (problem := usable_problem(voucher, now)) is not None:
                raise problem
            dropped = await session.scalar(
                update(Voucher)
                .where(Voucher.id == voucher_id, Voucher.dropped_at.is_(None))
                .values(
                    dropped_at=now,
                    dropped_in=live.id,
                    claims_close_at=now + timedelta(seconds=claim_seconds),
                )
                .returning(Voucher)
            )
            if dropped is None:
                raise Problem(409, "voucher-already-dropped", "This voucher was dropped already.")
            data = drop_data(dropped, now)
            add_event(session, "voucher.dropped", data)
        await self._gatekeeper.resync(voucher_stock(voucher_id))  # ready for the first claim
        return data

    async def drops(self, live_session_id: str) -> list[dict[str, Any]]:
        """The vouchers dropped in the session, newest first: for a viewer who joined
        after a drop (or reloads) to find it, with what is left and until when."""
        await self._live.get(live_session_id)
        return await self._drops(live_session_id, datetime.now(UTC))

    async def claimable(self, live_session_id: str) -> list[dict[str, Any]]:
        """The drops still open to claims with some left, not withdrawn, newest first
        (the join snapshot's)."""
        now = datetime.now(UTC)
        return await self._drops(
            live_session_id,
            now,
            Voucher.claimed < Voucher.total,
            Voucher.claims_close_at > now,
            Voucher.ends_at > now,
            Voucher.disabled.is_(False),
        )

    async def _drops(
        self, live_session_id: str, now: datetime, *conditions: ColumnElement[bool]
    ) -> list[dict[str, Any]]:
        async with self._sessions() as session:
            vouchers = await session.scalars(
                select(Voucher)
                .where(Voucher.dropped_in == live_session_id, *conditions)
                .order_by(Voucher.dropped_at.desc())
            )
            return [drop_data(voucher, now) for voucher in vouchers]

    async def claim(
        self, principal: Principal, live_session_id: str, voucher_id: str
    ) -> dict[str, Any]:
        """Claim one of the dropped voucher. The shop's own team may not claim."""
        terms = await self._gatekeeper.terms(voucher_id)
        if terms is None or terms.dropped_in != live_session_id:
            raise Problem(
                409, "voucher-not-dropped", "This voucher was not dropped in this live session."
            )
        if await self._teams.role(principal, terms.shop_id) is not None:
            raise Problem(403, "staff-cannot-claim", "The shop's team cannot claim vouchers.")
        stock = voucher_stock(voucher_id)
        decided_at = datetime.now(UTC)
        attempt = new_id()  # the claim's id, if it is written
        decision = await self._gatekeeper.take(stock, principal.user_id, 1, attempt, decided_at)
        if decision.verdict is not Verdict.WON:
            raise refusal(decision.verdict, terms)
        claimed: Claimed = await self._gatekeeper.write_winner(
            stock,
            attempt,
            lambda: self._writer.write(Claim(principal.user_id, terms, attempt, decided_at)),
            lambda error: isinstance(error, Problem) and error.code in DATABASE_DISAGREES,
        )
        return {
            "claim_id": claimed.claim_id,
            "voucher_id": voucher_id,
            "code": terms.code,
            "live_session_id": live_session_id,
            "claimed_at": claimed.claimed_at.isoformat(),
            "remaining": claimed.remaining,
        }
