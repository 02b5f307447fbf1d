"""A user's inbox in a crowded documents table: the page, the unread count, read-all
and a live session's chat history, with the document indexes (migration 0015) and
without them (as before it), on PostgreSQL.

In process, on a throw-away PostgreSQL database: the real `NotificationService` and
chat `recent` on `SqlDocuments`. The table holds `--documents` documents: notifications
for `--users` users and chat messages for `--sessions` live sessions, half each; the
measured user has `--unread` unread notifications of their own.

    .venv/bin/python bench/notification_inbox.py [--documents 1000000] [--samples 30]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import harness
from sqlalchemy import text

from commerce.notifications.channels import ChannelRegistry, Notification
from commerce.notifications.service import COLLECTION, NotificationService, now_iso
from live.hub.chat import CHAT, recent
from storage.documents.rules import MAX_LIMIT
from storage.documents.sql import SqlDocuments
from storage.documents.table import index_name
from storage.ids import new_id
from storage.sql import make_engine, session_factory
from storage.sql.migrate import upgrade

DEFAULT_JSON = harness.RESULTS / "notification_inbox.json"
MAX_DOCUMENTS = 2_000_000
MAX_SAMPLES = 200
SLOW_SAMPLES = 3  # without the indexes a query reads the whole table
SEEDERS = 8  # inserts in flight while seeding
INDEXES = (index_name("user_id"), index_name("live_session_id"))
ME = "bench-user"
SESSION = "bench-live-0"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--sessions", type=int, default=2_000)
    parser.add_argument("--unread", type=int, default=5_000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--json", default=str(DEFAULT_JSON))
    args = parser.parse_args(argv)
    if not MAX_LIMIT <= args.documents <= MAX_DOCUMENTS or not 1 <= args.samples <= MAX_SAMPLES:
        parser.error(f"--documents {MAX_LIMIT}..{MAX_DOCUMENTS}, --samples 1..{MAX_SAMPLES}")
    return args


def notification(user_id: str) -> dict:
    return Notification(
        new_id(), user_id, "shop_live", "Live now", "Come", {}, now_iso()
    ).to_document()


def message(n: int, live_session_id: str) -> dict:
    return {
        "id": new_id(),
        "live_session_id": live_session_id,
        "user_id": f"viewer-{n % 1000}",
        "display_name": "viewer",
        "text": "xin chào",
        "created_at": now_iso(),
        "deleted": False,
    }


async def seed(documents: SqlDocuments, args: argparse.Namespace) -> None:
    half = args.documents // 2
    chunks: list[tuple[str, list[dict]]] = []
    for start in range(0, half, MAX_LIMIT):
        size = min(MAX_LIMIT, half - start)
        users = [f"user-{(start + i) % args.users}" for i in range(size)]
        chunks.append((COLLECTION, [notification(u) for u in users]))
        sessions = [f"live-{(start + i) % args.sessions}" for i in range(size)]
        chunks.append((CHAT, [message(start + i, s) for i, s in enumerate(sessions)]))
    mine = [notification(ME) for _ in range(args.unread)]
    chunks += [(COLLECTION, mine[s : s + MAX_LIMIT]) for s in range(0, len(mine), MAX_LIMIT)]
    chunks.append((CHAT, [message(n, SESSION) for n in range(200)]))
    slots = asyncio.Semaphore(SEEDERS)

    async def insert(collection: str, docs: list[dict]) -> None:
        async with slots:
            await documents.insert_many(collection, docs)

    await asyncio.gather(*(insert(c, d) for c, d in chunks))


async def timed(work: Callable[[], Awaitable[object]], samples: int) -> dict:
    seconds = []
    for _ in range(samples):
        started = time.perf_counter()
        await work()
        seconds.append(time.perf_counter() - started)
    seconds.sort()
    return {
        "p50_ms": round(harness.percentile(seconds, 50) * 1000, 2),
        "max_ms": round(seconds[-1] * 1000, 2),
        "samples": samples,
    }


async def measure(documents: SqlDocuments, service: NotificationService, samples: int) -> dict:
    page = await service.page(ME, 20, None)
    if len(page[0]) != 20 or await service.unread_count(ME) == 0:
        raise SystemExit("the measured user's inbox is not as seeded")
    figures = {
        "inbox_page": await timed(lambda: service.page(ME, 20, None), samples),
        "unread_count": await timed(lambda: service.unread_count(ME), samples),
        "chat_history": await timed(lambda: recent(documents, SESSION), samples),
    }
    started = time.perf_counter()
    marked = await service.mark_all_read(ME)
    figures["read_all_ms"] = round((time.perf_counter() - started) * 1000, 2)
    figures["read_all_marked"] = marked
    await documents.update_many(COLLECTION, {"user_id": ME}, {"read_at": None})
    return figures


async def run(args: argparse.Namespace) -> dict:
    async with harness.scratch_database("streamcart_bench_inbox") as url:
        engine = make_engine(url)
        try:
            await upgrade(engine)
            documents = SqlDocuments(session_factory(engine))
            service = NotificationService(documents, ChannelRegistry())
            started = time.perf_counter()
            await seed(documents, args)
            seed_seconds = time.perf_counter() - started
            async with engine.begin() as conn:
                await conn.execute(text("ANALYZE documents"))
            indexed = await measure(documents, service, args.samples)
            async with engine.begin() as conn:
                for name in INDEXES:
                    await conn.execute(text(f"DROP INDEX {name}"))
                await conn.execute(text("ANALYZE documents"))
            unindexed = await measure(documents, service, min(args.samples, SLOW_SAMPLES))
        finally:
            await engine.dispose()
    return {
        "bench": "notification_inbox",
        "date": datetime.now(UTC).date().isoformat(),
        "documents": args.documents + args.unread + 200,
        "users": args.users,
        "sessions": args.sessions,
        "unread": args.unread,
        "seed_seconds": round(seed_seconds, 1),
        "with_indexes": indexed,
        "without_indexes": unindexed,
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = asyncio.run(run(args))
    rows = [("documents in the table", f"{result['documents']:,}")]
    for label, key in (("indexed", "with_indexes"), ("no index", "without_indexes")):
        figures = result[key]
        rows += [
            (f"{label}: inbox page p50 (ms)", f"{figures['inbox_page']['p50_ms']:.2f}"),
            (f"{label}: unread count p50 (ms)", f"{figures['unread_count']['p50_ms']:.2f}"),
            (f"{label}: chat history p50 (ms)", f"{figures['chat_history']['p50_ms']:.2f}"),
            (
                f"{label}: read-all of {figures['read_all_marked']:,} (ms)",
                f"{figures['read_all_ms']:.2f}",
            ),
        ]
    print(harness.render_table("notification inbox in a crowded documents table", rows))
    harness.write_json(harness.Path(args.json), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
