"""Which access tokens stop working before they expire, known to every process.

The database is the record (table `revocations`): a logout, a re-used refresh token,
an admin disabling a user, and (by trigger) a user disabled or deleted by hand in SQL
each add a row. Every process keeps a mirror in memory and reads the rows newer than
the last it saw once per POLL_SECONDS, so checking a token on a request costs no I/O,
holds at once on the process that revoked it and within POLL_SECONDS on every other,
and does not depend on the cache: a Redis outage or a restart without persistence
cannot bring a logged-out token back.

A row matters only while tokens issued before it can still be alive, so rows older
than the access-token lifetime (plus a margin) are forgotten and deleted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Float

from commerce.accounts.models import Revocation
from commerce.accounts.tokens import Principal
from storage.periodic import Periodic

log = logging.getLogger("streamcart.accounts")

POLL_SECONDS = 1.0
# Rows are read again for this long after the newest one seen: a transaction that took
# its clock reading earlier but committed later is still picked up.
OVERLAP_SECONDS = 10.0
KEEP_MARGIN_SECONDS = 60.0
DELETE_EVERY_SECONDS = 60.0
TOKEN, FAMILY, USER = "token", "family", "user"

Listener = Callable[["Revoked"], None]


class DatabaseEpoch(FunctionElement):
    """The database's clock in seconds since the epoch (the triggers use the same)."""

    type = Float()
    inherit_cache = True


@compiles(DatabaseEpoch, "postgresql")
def _postgres_epoch(element, compiler, **kw) -> str:
    return "extract(epoch from clock_timestamp())"


@compiles(DatabaseEpoch)
def _sqlite_epoch(element, compiler, **kw) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"


@dataclass(frozen=True)
class Revoked:
    kind: str
    subject: str
    at: float


class Revocations:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], token_ttl: float) -> None:
        self._sessions = sessions
        self._keep = token_ttl + KEEP_MARGIN_SECONDS
        self._seen: dict[tuple[str, str], float] = {}
        self._newest = 0.0
        self._listeners: list[Listener] = []
        self._next_delete = 0.0
        self._periodic = Periodic("revocations", POLL_SECONDS, self.poll)

    def listen(self, listener: Listener) -> None:
        """Call `listener` for each revocation this process learns of (once each)."""
        self._listeners.append(listener)

    def revoked(self, principal: Principal) -> bool:
        seen = self._seen
        if (TOKEN, principal.token_id) in seen:
            return True
        if principal.family_id is not None and (FAMILY, principal.family_id) in seen:
            return True
        user_revoked_at = seen.get((USER, principal.user_id))
        return user_revoked_at is not None and principal.issued_at <= user_revoked_at

    async def record(self, session: AsyncSession, kind: str, subject: str) -> Revoked:
        """Record a revocation inside the caller's transaction; pass what it returns to
        `learn` once that commits, so this process holds it at once."""
        at = await session.scalar(select(DatabaseEpoch()))
        await session.execute(insert(Revocation).values(kind=kind, subject=subject, revoked_at=at))
        return Revoked(kind, subject, at)

    async def start(self) -> None:
        await self.poll()
        await self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def poll(self) -> None:
        since = max(0.0, self._newest - OVERLAP_SECONDS)
        async with self._sessions() as session:
            if since == 0.0:
                since = await session.scalar(select(DatabaseEpoch())) - self._keep
            rows = await session.execute(
                select(Revocation.kind, Revocation.subject, Revocation.revoked_at).where(
                    Revocation.revoked_at > since
                )
            )
        for kind, subject, at in rows:
            self.learn(Revoked(kind, subject, at))
        self._forget_expired()
        if time.monotonic() >= self._next_delete:
            self._next_delete = time.monotonic() + DELETE_EVERY_SECONDS
            await self.delete_expired()

    def learn(self, revoked: Revoked) -> None:
        key = (revoked.kind, revoked.subject)
        known = self._seen.get(key)
        self._newest = max(self._newest, revoked.at)
        if known is not None and known >= revoked.at:
            return
        self._seen[key] = revoked.at
        for listener in self._listeners:
            try:
                listener(revoked)
            except Exception:
                log.exception("revocation listener failed")

    def _forget_expired(self) -> None:
        horizon = self._newest - self._keep
        if horizon <= 0 or not any(at < horizon for at in self._seen.values()):
            return
        self._seen = {key: at for key, at in self._seen.items() if at >= horizon}

    async def delete_expired(self) -> None:
        """Remove rows no token can outlive (any process may; it is idempotent)."""
        async with self._sessions.begin() as session:
            await session.execute(
                delete(Revocation).where(Revocation.revoked_at < DatabaseEpoch() - self._keep)
            )
