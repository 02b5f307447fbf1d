"""Cache and pub/sub: in-process by default, Redis when a URL is configured."""

from __future__ import annotations

from storage.cache.memory import MemoryCache
from storage.cache.port import Cache
from storage.cache.redis import RedisCache

__all__ = ["Cache", "MemoryCache", "RedisCache", "make_cache"]


def make_cache(url: str, prefix: str = "streamcart:") -> Cache:
    """A `RedisCache` for a `redis://` or `rediss://` URL; an empty URL means `MemoryCache`."""
    if not url:
        return MemoryCache()
    return RedisCache(url, prefix=prefix)
