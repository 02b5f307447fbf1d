"""All infrastructure adapters of one process, chosen from URLs, opened and closed together.

Constructors are cheap and connect lazily, so services can be wired at build
time; `start()` migrates the schema and starts the bus and the outbox relay.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import make_url

from storage.bus import SqlProcessedStore, make_bus
from storage.cache import make_cache
from storage.documents import make_documents
from storage.gate import make_gate
from storage.outbox import OutboxRelay
from storage.sql import make_engine, ping, session_factory
from storage.sql.driver_pool import DriverPool
from storage.sql.migrate import upgrade

log = logging.getLogger("streamcart.storage")
CHECK_TIMEOUT = 3.0


@dataclass(frozen=True)
class BackendUrls:
    database: str
    redis: str = ""
    amqp: str = ""
    mongo: str = ""
    mongo_database: str = "streamcart"
    redis_prefix: str = "streamcart:"
    database_pool_size: int = 10


class Backends:
    def __init__(self, urls: BackendUrls) -> None:
        self.urls = urls
        self.engine = make_engine(urls.database, pool_size=urls.database_pool_size)
        self.sessions = session_factory(self.engine)
        self.driver_pool: DriverPool | None = None  # PostgreSQL only
        if self.engine.dialect.name == "postgresql":
            self.driver_pool = DriverPool(urls.database, urls.database_pool_size)
        self.cache = make_cache(urls.redis, prefix=urls.redis_prefix)
        self.gate = make_gate(urls.redis, prefix=urls.redis_prefix)
        self.bus = make_bus(urls.amqp, SqlProcessedStore(self.sessions, self.driver_pool))
        self.documents = make_documents(urls.mongo, self.sessions, urls.mongo_database)
        self.relay = OutboxRelay(self.sessions, self.bus)

    def kinds(self) -> dict[str, str]:
        """Which adapter serves each port, for logs and /readyz."""
        return {
            "sql": make_url(self.urls.database).get_backend_name(),
            "cache": "redis" if self.urls.redis else "memory",
            "bus": "rabbitmq" if self.urls.amqp else "memory",
            "documents": "mongodb" if self.urls.mongo else "sql",
        }

    async def start(self, *, migrate: bool = True) -> None:
        if migrate:
            await upgrade(self.engine)
        await self.bus.start()
        await self.relay.start()
        log.info("backends ready", extra=self.kinds())

    async def close(self) -> None:
        await self.relay.stop()
        closings = (self.bus.close(), self.cache.close(), self.gate.close(), self.documents.close())
        for closing in closings:
            try:
                await closing
            except Exception:
                log.exception("error while closing a backend")
        if self.driver_pool is not None:
            await self.driver_pool.close()
        await self.engine.dispose()

    async def check(self) -> dict[str, dict[str, Any]]:
        """Ping every backend concurrently, each bounded by a timeout."""
        probes = {
            "sql": ping(self.engine),
            "cache": self.cache.ping(),
            "bus": self.bus.ping(),
            "documents": self.documents.ping(),
        }
        results = await asyncio.gather(
            *(asyncio.wait_for(p, CHECK_TIMEOUT) for p in probes.values()), return_exceptions=True
        )
        kinds = self.kinds()
        report = {}
        for name, result in zip(probes, results, strict=True):
            entry: dict[str, Any] = {"backend": kinds[name], "ok": result is None}
            if isinstance(result, BaseException):
                entry["error"] = (
                    type(result).__name__
                    if isinstance(result, TimeoutError)
                    else f"{type(result).__name__}: {result}"[:200]
                )
            report[name] = entry
        return report
