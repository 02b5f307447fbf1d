"""Access tokens verified before are remembered, but never past their expiry."""

from __future__ import annotations

import asyncio

import pytest

from commerce.accounts.tokens import AccessTokens, InvalidToken

SECRET = "a-test-secret-of-at-least-32-bytes-0123"


async def test_remembered_token_still_expires():
    tokens = AccessTokens(SECRET, ttl_seconds=1)
    token, expires = tokens.issue("u1", "buyer")
    assert tokens.verify(token).user_id == "u1"
    assert tokens.verify(token).expires_at == expires.replace(microsecond=0)
    await asyncio.sleep(1.1)  # bounded: the token's whole lifetime is one second
    with pytest.raises(InvalidToken):
        tokens.verify(token)


def test_remembered_tokens_are_per_secret():
    token, _ = AccessTokens(SECRET, ttl_seconds=60).issue("u1", "buyer")
    AccessTokens(SECRET, ttl_seconds=60).verify(token)
    with pytest.raises(InvalidToken):
        AccessTokens(SECRET + "-other", ttl_seconds=60).verify(token)
