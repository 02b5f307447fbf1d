"""Single-use secrets sent by email: password-reset tokens and six-digit codes.

Only a hash is stored. A token is long and random, so it is looked up by its hash; a
six-digit code is short, so it is checked for one user with a cap on wrong guesses
(`MAX_CODE_ATTEMPTS`). Issuing a new one voids the user's earlier ones of that kind.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.accounts.models import AccountCode
from storage.ids import new_id

RESET, VERIFY = "reset", "verify"
MAX_CODE_ATTEMPTS = 5


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _code_hash(code_id: str, code: str) -> str:
    # Salted with the row id, so equal codes of different users hash apart.
    return _hash(f"{code_id}:{code}")


def new_token() -> str:
    return secrets.token_urlsafe(32)


def new_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


async def issue(
    session: AsyncSession, user_id: str, purpose: str, secret: str, ttl: timedelta, now: datetime
) -> None:
    """Store `secret` (a token, or a code) for one use by `user_id` until `now + ttl`."""
    await session.execute(
        delete(AccountCode).where(AccountCode.user_id == user_id, AccountCode.purpose == purpose)
    )
    code_id = new_id()
    session.add(
        AccountCode(
            id=code_id,
            user_id=user_id,
            purpose=purpose,
            code_hash=_hash(secret) if purpose == RESET else _code_hash(code_id, secret),
            created_at=now,
            expires_at=now + ttl,
            attempts=0,
        )
    )


async def spend_token(session: AsyncSession, token: str, now: datetime) -> str | None:
    """The user a valid reset token belongs to, spending it (None: unknown, used, expired)."""
    spent = await session.execute(
        update(AccountCode)
        .where(
            AccountCode.code_hash == _hash(token),
            AccountCode.purpose == RESET,
            AccountCode.used_at.is_(None),
            AccountCode.expires_at > now,
        )
        .values(used_at=now)
        .returning(AccountCode.user_id)
    )
    return spent.scalar()


async def spend_code(session: AsyncSession, user_id: str, code: str, now: datetime) -> bool:
    """Whether `code` is the user's live verification code, spending it if so; a wrong
    guess counts against the code, and past MAX_CODE_ATTEMPTS none is accepted."""
    row = await session.scalar(
        select(AccountCode)
        .where(
            AccountCode.user_id == user_id,
            AccountCode.purpose == VERIFY,
            AccountCode.used_at.is_(None),
            AccountCode.expires_at > now,
            AccountCode.attempts < MAX_CODE_ATTEMPTS,
        )
        .with_for_update()
    )
    if row is None:
        return False
    if not hmac.compare_digest(row.code_hash, _code_hash(row.id, code)):
        row.attempts += 1
        return False
    row.used_at = now
    return True
