"""A shop goes live: how long until the last of its 10,000 followers' in-app
notifications is stored (PostgreSQL document store) and pushed to its user's room.

In process, on a throw-away PostgreSQL database: the real consumer
(`NotificationConsumer.handle` for a `live.started` event), the real service and the
real push listener (`live.hub.notifications.pusher`) emitting on a python-socketio
server, one room per user. No sockets are attached to the rooms: what a socket write
costs is `socketio_fanout.py`'s subject.

    .venv/bin/python bench/notify_followers.py [--followers 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

import harness
import socketio
from sqlalchemy import insert

from commerce.accounts.models import Role, User
from commerce.follows.models import ShopFollow
from commerce.notifications.channels import ChannelRegistry
from commerce.notifications.consumer import NotificationConsumer
from commerce.notifications.service import COLLECTION, NotificationService
from commerce.shops.models import Shop, ShopStatus
from live.hub.notifications import pusher
from storage.bus import Event
from storage.documents.sql import SqlDocuments
from storage.ids import new_id
from storage.sql import make_engine, session_factory
from storage.sql.migrate import upgrade

DEFAULT_JSON = harness.RESULTS / "notify_followers.json"
MAX_FOLLOWERS = 100_000
MAX_RUNS = 10
RUN_TIMEOUT = 120.0  # seconds one run may take before the bench gives up
SEED_CHUNK = 5_000
TARGET_SECONDS = 2.0
POOL_SIZE = 10  # the server's default STREAMCART_DATABASE_POOL_SIZE


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--followers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", default=str(DEFAULT_JSON))
    args = parser.parse_args(argv)
    if not 1 <= args.followers <= MAX_FOLLOWERS or not 1 <= args.runs <= MAX_RUNS:
        parser.error(f"--followers 1..{MAX_FOLLOWERS}, --runs 1..{MAX_RUNS}")
    return args


class Rooms:
    """The hub's `emit`, on a bare Socket.IO server, counting what it pushed."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncServer(async_mode="aiohttp")
        self.pushed = 0

    async def emit(self, event: str, data: dict[str, Any], room: str) -> None:
        await self.sio.emit(event, data, to=room)
        self.pushed += 1


async def seed(sessions, followers: int) -> str:
    """A seller, an active shop and `followers` buyers following it; returns the shop id."""
    now = datetime.now(UTC)
    seller = new_id()
    users = [_user(seller, Role.SELLER, now)] + [
        _user(new_id(), Role.BUYER, now) for _ in range(followers)
    ]
    shop_id = new_id()
    async with sessions.begin() as session:
        for start in range(0, len(users), SEED_CHUNK):
            await session.execute(insert(User), users[start : start + SEED_CHUNK])
        await session.execute(
            insert(Shop),
            [
                {
                    "id": shop_id,
                    "owner_id": seller,
                    "name": "Bench shop",
                    "slug": "bench-shop",
                    "description": "",
                    "status": ShopStatus.ACTIVE,
                    "created_at": now,
                }
            ],
        )
        follows = [{"user_id": u["id"], "shop_id": shop_id, "created_at": now} for u in users[1:]]
        for start in range(0, len(follows), SEED_CHUNK):
            await session.execute(insert(ShopFollow), follows[start : start + SEED_CHUNK])
    return shop_id


def _user(user_id: str, role: Role, now: datetime) -> dict[str, Any]:
    return {
        "id": user_id,
        "email": f"{user_id}@bench.example",
        "password_hash": "x",
        "display_name": "bench",
        "role": role,
        "is_active": True,
        "created_at": now,
    }


async def one_run(consumer, documents, rooms: Rooms, shop_id: str, followers: int) -> dict:
    event = Event("live.started", {"live_session_id": new_id(), "shop_id": shop_id})
    before = rooms.pushed
    started = time.perf_counter()
    await asyncio.wait_for(consumer.handle(event), RUN_TIMEOUT)
    seconds = time.perf_counter() - started
    stored = await documents.count(COLLECTION, {"kind": "shop_live"})
    return {"seconds": seconds, "pushed": rooms.pushed - before, "stored_total": stored}


async def run(args: argparse.Namespace) -> dict:
    async with harness.scratch_database("streamcart_bench_notify") as url:
        engine = make_engine(url, pool_size=POOL_SIZE)
        try:
            await upgrade(engine)
            sessions = session_factory(engine)
            shop_id = await seed(sessions, args.followers)
            documents = SqlDocuments(sessions)
            rooms = Rooms()
            service = NotificationService(documents, ChannelRegistry())
            service.on_stored(pusher(rooms))
            consumer = NotificationConsumer(sessions, service, lambda _: None)
            runs = []
            for index in range(args.runs):
                result = await one_run(consumer, documents, rooms, shop_id, args.followers)
                if result["pushed"] != args.followers:
                    raise SystemExit(f"run {index + 1} pushed {result['pushed']} notifications")
                if result["stored_total"] != args.followers * (index + 1):
                    raise SystemExit(f"run {index + 1}: {result['stored_total']} stored in all")
                runs.append(result["seconds"])
        finally:
            await engine.dispose()
    return {
        "bench": "notify_followers",
        "date": datetime.now(UTC).date().isoformat(),
        "followers": args.followers,
        "runs_seconds": [round(s, 3) for s in runs],
        "median_seconds": round(statistics.median(runs), 3),
        "target_seconds": TARGET_SECONDS,
        "database_pool_size": POOL_SIZE,
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = asyncio.run(run(args))
    rows = [
        ("followers", f"{result['followers']:,}"),
        *((f"run {i + 1} (s)", f"{s:.3f}") for i, s in enumerate(result["runs_seconds"])),
        ("median (s)", f"{result['median_seconds']:.3f}"),
        ("target (s)", f"{TARGET_SECONDS:.1f}"),
    ]
    print(harness.render_table("shop went live: last follower stored and pushed", rows))
    harness.write_json(harness.Path(args.json), result)
    return 0 if result["median_seconds"] < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
