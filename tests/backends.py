"""Where the real backends live in tests, and what to do when one is missing.

Under `CI=true` a missing backend fails the test; elsewhere it skips with the reason.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from typing import NoReturn
from urllib.parse import urlsplit

import pytest
import redis.asyncio as redis

IN_CI = os.environ.get("CI", "").lower() == "true"

POSTGRES_URL = os.environ.get(
    "STREAMCART_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("STREAMCART_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("STREAMCART_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
MONGO_URL = os.environ.get("STREAMCART_TEST_MONGO_URL", "")

DEFAULT_PORTS = {"postgresql": 5432, "redis": 6379, "amqp": 5672, "mongodb": 27017}


@cache
def reachable(url: str) -> bool:
    parts = urlsplit(url)
    port = parts.port or DEFAULT_PORTS.get(parts.scheme.split("+")[0], 0)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def require(url: str, what: str) -> str:
    """Return `url` when its server answers; otherwise fail under CI, skip elsewhere."""
    if reachable(url):
        return url
    missing(f"{what} is not reachable at {urlsplit(url).netloc}")


def missing(message: str) -> NoReturn:
    """A test's backend or tool is not there: fail under CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(f"{message} (required under CI=true)")
    pytest.skip(message)


def require_mongo() -> str:
    """MongoDB cannot run on these machines; its suite runs only when a URL is given."""
    if not MONGO_URL:
        pytest.skip("MongoDB contract suite: set STREAMCART_TEST_MONGO_URL to run it")
    if not reachable(MONGO_URL):
        pytest.fail(f"STREAMCART_TEST_MONGO_URL is set but {MONGO_URL} does not answer")
    return MONGO_URL


@asynccontextmanager
async def fresh_redis_prefix() -> AsyncIterator[str]:
    """A key prefix nobody else uses on the test Redis, its keys deleted afterwards."""
    url = require(REDIS_URL, "Redis")
    prefix = f"streamcart-test:{uuid.uuid4().hex}:"
    try:
        yield prefix
    finally:
        client = redis.from_url(url)
        try:
            keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()
