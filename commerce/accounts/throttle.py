"""Failed-login throttling per account and per client IP, shared through the cache."""

from __future__ import annotations

import hashlib
import math

from storage.cache.port import Cache
from storage.web import Problem


class LoginThrottle:
    def __init__(self, cache: Cache, per_account: int, per_ip: int, window_seconds: int) -> None:
        self._cache = cache
        self._limits = {"account": per_account, "ip": per_ip}
        self._window = window_seconds

    def _keys(self, email: str, ip: str) -> dict[str, str]:
        # Hash the email so cache keys (and Redis dumps) hold no personal data.
        account = hashlib.sha256(email.encode()).hexdigest()[:32]
        return {"account": f"login-fail:account:{account}", "ip": f"login-fail:ip:{ip}"}

    async def check(self, email: str, ip: str) -> None:
        """Refuse with 429 while either counter is at its limit."""
        for kind, key in self._keys(email, ip).items():
            raw = await self._cache.get(key)
            if raw is not None and int(raw) >= self._limits[kind]:
                retry = await self._cache.ttl(key) or self._window
                raise Problem(
                    429,
                    "too-many-login-attempts",
                    "Too many failed logins. Try again later.",
                    headers={"Retry-After": str(max(1, math.ceil(retry)))},
                )

    async def failed(self, email: str, ip: str) -> None:
        for key in self._keys(email, ip).values():
            await self._cache.incr(key, ttl=self._window)

    async def succeeded(self, email: str) -> None:
        await self._cache.delete(self._keys(email, "")["account"])
