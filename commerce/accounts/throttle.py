"""Attempt throttling per account and per client IP, shared through the cache: logins,
and (under another name) the account actions that send mail or check a secret."""

from __future__ import annotations

import hashlib
import math

from storage.cache.port import Cache
from storage.web import Problem


class LoginThrottle:
    def __init__(
        self,
        cache: Cache,
        per_account: int,
        per_ip: int,
        window_seconds: int,
        name: str = "login",
        detail: str = "Too many failed logins. Try again later.",
    ) -> None:
        self._cache = cache
        self._limits = {"account": per_account, "ip": per_ip}
        self._window = window_seconds
        self._name = name
        self._detail = detail

    def _keys(self, email: str, ip: str) -> dict[str, str]:
        # Hash the email so cache keys (and Redis dumps) hold no personal data.
        account = hashlib.sha256(email.encode()).hexdigest()[:32]
        return {
            "account": f"{self._name}-fail:account:{account}",
            "ip": f"{self._name}-fail:ip:{ip}",
        }

    async def attempt(self, email: str, ip: str) -> None:
        """Count this attempt before its password is checked, and refuse it with 429 once
        either counter is past its limit. Counting first, in one atomic step per counter,
        means at most the limit is ever verified in a window however many attempts
        arrive at once (reading the counter and raising it after the slow hash let 40
        parallel guesses through)."""
        for kind, key in self._keys(email, ip).items():
            if await self._cache.incr(key, ttl=self._window) > self._limits[kind]:
                retry = await self._cache.ttl(key) or self._window
                raise Problem(
                    429,
                    f"too-many-{self._name}-attempts",
                    self._detail,
                    headers={"Retry-After": str(max(1, math.ceil(retry)))},
                )

    async def succeeded(self, email: str, ip: str) -> None:
        """A good password clears the account's count and takes its attempt back off the
        address's, so people signing in behind one NAT do not lock each other out."""
        keys = self._keys(email, ip)
        await self._cache.delete(keys["account"])
        await self._cache.incr(keys["ip"], -1, ttl=self._window)
