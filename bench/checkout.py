"""Checkout throughput on PostgreSQL: checkouts per second, p50/p99 latency, zero oversell.

    .venv/bin/python bench/checkout.py [--workers 2] [--concurrency 64] [--duration 15]

A fresh database is created, migrated and seeded directly (one active shop, B buyers
with minted access tokens, a handful of products with 1,000,000 units each and one
"hot" product with 10 units). `streamcart serve` runs as separate processes on
127.0.0.1; C concurrent buyers then POST /api/orders/checkout (1 unit of a random
product, bank transfer) for a fixed time, bounded by a request count. Finally 200
buyers race for the 10 hot units and the database is audited: exactly 10 sold, and
for every variant 0 <= reserved <= on_hand and reserved equals the held reservations
of unpaid orders. Prints a table, writes JSON, exits 1 on any oversell.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import harness
from argon2 import PasswordHasher
from sqlalchemy import text

from commerce.accounts.models import Role, User
from commerce.accounts.tokens import AccessTokens
from commerce.catalog.models import Product, ProductStatus, Variant
from commerce.shops.models import Shop, ShopStatus
from storage.ids import new_id
from storage.sql import make_engine, session_factory
from storage.sql.migrate import upgrade

TARGET_PER_SECOND = 1_000
BIG_STOCK = 1_000_000
HOT_STOCK = 10
HOT_BUYERS = 200
TOKEN_TTL = 3600
REQUEST_TIMEOUT = 10.0
CHECKOUT_PATH = "/api/orders/checkout"
REDIS_URL = os.environ.get("STREAMCART_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
DEFAULT_JSON = harness.RESULTS / "checkout.json"


# --- command line -----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, refused early when they would make an unbounded or impossible run."""
    parser = argparse.ArgumentParser(
        description="Checkouts per second and latency on PostgreSQL, with an oversell check."
    )
    parser.add_argument("--buyers", type=int, default=200, help="buyer accounts (default 200)")
    parser.add_argument("--products", type=int, default=10, help="big-stock products (10)")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="concurrent buyers/connections (64)"
    )
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds (15)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first (2)")
    parser.add_argument(
        "--max-requests", type=int, default=100_000, help="cap on measured requests (100000)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes on separate ports, sharing Redis when > 1 (1)",
    )
    parser.add_argument(
        "--pool-size",
        type=int,
        default=None,
        help="STREAMCART_DATABASE_POOL_SIZE of each server (the server's default)",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    profiling = parser.add_mutually_exclusive_group()
    profiling.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="run the (single) server under cProfile, save the stats here and print hotspots",
    )
    profiling.add_argument(
        "--sample",
        type=Path,
        default=None,
        help="run the (single) server under bench/stack_sampler.py, report to this file",
    )
    args = parser.parse_args(argv)
    problems = [
        args.buyers < 1 and "--buyers must be >= 1",
        args.products < 1 and "--products must be >= 1",
        not 1 <= args.concurrency <= 1024 and "--concurrency must be 1..1024",
        not 0 < args.duration <= 600 and "--duration must be in (0, 600]",
        not 0 <= args.warmup <= 60 and "--warmup must be in [0, 60]",
        args.max_requests < 1 and "--max-requests must be >= 1",
        not 1 <= args.workers <= 8 and "--workers must be 1..8",
        args.pool_size is not None and args.pool_size < 1 and "--pool-size must be >= 1",
        (args.profile or args.sample) and args.workers != 1 and "profiling needs --workers 1",
        args.max_requests * 2 > args.products * BIG_STOCK and "not enough stock for the cap",
    ]
    for problem in problems:
        if problem:
            parser.error(problem)
    return args


# --- the database -----------------------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    """What the load needs: one header set per buyer and one request body per product."""

    buyer_headers: list[dict[str, str]]
    product_bodies: list[bytes]
    hot_body: bytes
    hot_variant_id: str


def seed_product(shop_id: str, name: str, stock: int, now: datetime) -> tuple[Product, Variant]:
    """An active product sold as one default variant with `stock` units."""
    product = Product(
        id=new_id(),
        shop_id=shop_id,
        name=name,
        description="",
        images=[],
        category="bench",
        base_price=100_000,
        status=ProductStatus.ACTIVE,
        search_text=name.lower(),
        created_at=now,
        updated_at=now,
    )
    variant = Variant(
        id=new_id(),
        product_id=product.id,
        options={},
        on_hand=stock,
        reserved=0,
        is_default=True,
        archived=False,
    )
    return product, variant


def seed_user(email: str, role: Role, password_hash: str, now: datetime) -> User:
    """An active account; every account shares one precomputed password hash."""
    return User(
        id=new_id(),
        email=email,
        password_hash=password_hash,
        display_name=email.split("@")[0],
        role=role,
        is_active=True,
        created_at=now,
    )


def _checkout_body(product_id: str) -> bytes:
    """The request body buying one unit by bank transfer, serialised once."""
    items = [{"product_id": product_id, "quantity": 1}]
    return json.dumps({"payment_method": "bank_transfer", "items": items}).encode()


def seed_people(buyers: int, now: datetime) -> tuple[User, list[User], Shop]:
    """A seller with an active shop and `buyers` buyers, as rows not yet added."""
    password_hash = PasswordHasher().hash("bench password, never used to log in")
    seller = seed_user("seller@bench.invalid", Role.SELLER, password_hash, now)
    users = [
        seed_user(f"buyer{i}@bench.invalid", Role.BUYER, password_hash, now) for i in range(buyers)
    ]
    shop = Shop(
        id=new_id(),
        owner_id=seller.id,
        name="Bench shop",
        slug="bench-shop",
        description="",
        status=ShopStatus.ACTIVE,
        created_at=now,
    )
    return seller, users, shop


async def seed(database_url: str, buyers: int, products: int, jwt_secret: str) -> Fixture:
    """Migrate, insert the seller, shop, buyers and products, and mint buyer tokens."""
    engine = make_engine(database_url)
    try:
        await upgrade(engine)
        now = datetime.now(UTC)
        seller, users, shop = seed_people(buyers, now)
        big = [seed_product(shop.id, f"Product {i}", BIG_STOCK, now) for i in range(products)]
        hot = seed_product(shop.id, "Hot product", HOT_STOCK, now)
        rows = [*big, hot]
        async with session_factory(engine).begin() as session:
            for stage in ([seller, *users], [shop], [p for p, _ in rows], [v for _, v in rows]):
                session.add_all(stage)
                await session.flush()  # parents before the rows that reference them
    finally:
        await engine.dispose()
    tokens = AccessTokens(jwt_secret, TOKEN_TTL)
    return Fixture(
        buyer_headers=[
            {
                "Authorization": f"Bearer {tokens.issue(u.id, Role.BUYER)[0]}",
                "Content-Type": "application/json",
            }
            for u in users
        ],
        product_bodies=[_checkout_body(p.id) for p, _ in big],
        hot_body=_checkout_body(hot[0].id),
        hot_variant_id=hot[1].id,
    )


AUDIT_SQL = """
SELECT v.id, v.on_hand, v.reserved,
       COALESCE(SUM(r.quantity) FILTER (WHERE r.status = 'held'), 0) AS held,
       COALESCE(SUM(r.quantity) FILTER (
           WHERE r.status = 'held' AND o.status = 'pending_payment'), 0) AS held_unpaid
FROM variants v
LEFT JOIN reservations r ON r.variant_id = v.id
LEFT JOIN orders o ON o.id = r.order_id
GROUP BY v.id, v.on_hand, v.reserved
"""


async def audit_stock(database_url: str, hot_variant_id: str) -> dict:
    """Check the stock invariants of every variant and count what was sold of the hot one."""
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            variants = (await conn.execute(text(AUDIT_SQL))).all()
            hot_sold = await conn.scalar(
                text("SELECT COALESCE(SUM(quantity), 0) FROM order_items WHERE variant_id = :v"),
                {"v": hot_variant_id},
            )
            orders = await conn.scalar(text("SELECT count(*) FROM orders"))
            unpublished = await conn.scalar(
                text("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            )
    finally:
        await engine.dispose()
    violations = []
    for row in variants:
        if not 0 <= row.reserved <= row.on_hand:
            violations.append(f"variant {row.id}: reserved {row.reserved}, on hand {row.on_hand}")
        if row.reserved != row.held or row.held != row.held_unpaid:
            violations.append(
                f"variant {row.id}: reserved {row.reserved} but held {row.held} "
                f"({row.held_unpaid} by unpaid orders)"
            )
    return {
        "variants": len(variants),
        "violations": violations,
        "hot_sold": int(hot_sold),
        "orders_in_db": int(orders),
        "outbox_unpublished": int(unpublished),
    }


# --- the load ---------------------------------------------------------------------------


@dataclass
class Tally:
    """Outcomes of one load phase: latency of each success, count of every status."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    sent: int = 0
    elapsed: float = 0.0

    @property
    def ok(self) -> int:
        return self.statuses["201"]

    @property
    def errors(self) -> dict[str, int]:
        return {k: v for k, v in sorted(self.statuses.items()) if k != "201"}


async def post_checkout(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes
) -> tuple[str, float, bytes]:
    """One checkout: its status (or exception name), latency in seconds and response body."""
    started = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as response:
            payload = await response.read()
            status = str(response.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        status, payload = type(exc).__name__, b""
    return status, time.perf_counter() - started, payload


async def run_load(
    session: aiohttp.ClientSession,
    urls: list[str],
    fixture: Fixture,
    *,
    concurrency: int,
    duration: float,
    max_requests: int,
    rng: random.Random,
) -> Tally:
    """`concurrency` buyers each checking out in a loop until the time or count runs out.
    Buyer i sends to server i mod N, so each connection stays on one server."""
    tally = Tally()
    deadline = time.perf_counter() + duration

    async def buyer(index: int) -> None:
        """One buyer's connection: check out again as soon as the last one answered."""
        url = urls[index % len(urls)] + CHECKOUT_PATH
        while tally.sent < max_requests and time.perf_counter() < deadline:
            tally.sent += 1
            headers = rng.choice(fixture.buyer_headers)
            status, seconds, _ = await post_checkout(
                session, url, headers, rng.choice(fixture.product_bodies)
            )
            tally.statuses[status] += 1
            if status == "201":
                tally.latencies.append(seconds)

    started = time.perf_counter()
    await asyncio.gather(*(buyer(i) for i in range(concurrency)))
    tally.elapsed = time.perf_counter() - started
    return tally


def client_session(concurrency: int) -> aiohttp.ClientSession:
    """One keep-alive session with exactly `concurrency` connections."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, limit_per_host=0),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
    )


async def oversell_race(urls: list[str], fixture: Fixture) -> Counter:
    """200 buyers at once for the 10 hot units; outcome counts such as `201` and
    `409 out-of-stock`."""
    outcomes: Counter = Counter()
    async with client_session(HOT_BUYERS) as session:
        results = await asyncio.gather(
            *(
                post_checkout(
                    session,
                    urls[i % len(urls)] + CHECKOUT_PATH,
                    fixture.buyer_headers[i % len(fixture.buyer_headers)],
                    fixture.hot_body,
                )
                for i in range(HOT_BUYERS)
            )
        )
    for status, _, payload in results:
        code = ""
        if status == "409":
            try:
                code = " " + json.loads(payload).get("code", "")
            except ValueError:
                code = " (not JSON)"
        outcomes[status + code] += 1
    return outcomes


# --- one run ----------------------------------------------------------------------------


def server_settings(
    database_url: str, jwt_secret: str, workers: int, pool_size: int | None
) -> dict[str, str]:
    """STREAMCART_* for the servers; several processes share Redis for the deny-list."""
    settings = {
        "STREAMCART_DATABASE_URL": database_url,
        "STREAMCART_JWT_SECRET": jwt_secret,
        "STREAMCART_SWEEP_INTERVAL": "3600",
        # RTMP ingest idle on any free loopback port: processes must not share 1935
        "STREAMCART_RTMP_HOST": harness.HOST,
        "STREAMCART_RTMP_PORT": "0",
        # no WebRTC here either, and processes must not share its default port (8189)
        "STREAMCART_WEBRTC_UDP_PORT": "0",
        "STREAMCART_WEBRTC_TCP_PORT": "0",
    }
    if pool_size is not None:
        settings["STREAMCART_DATABASE_POOL_SIZE"] = str(pool_size)
    if workers > 1:
        harness.require_loopback(REDIS_URL)
        settings["STREAMCART_REDIS_URL"] = REDIS_URL
    return settings


async def load_servers(args: argparse.Namespace, servers: list[harness.Server], fixture) -> dict:
    """Warm up, measure the throughput phase with CPU accounting, then run the race."""
    urls = [s.url for s in servers]
    rng = random.Random(1)  # the load's shape, not a secret
    async with client_session(args.concurrency) as session:
        warmup = Tally()
        if args.warmup > 0:
            warmup = await run_load(
                session,
                urls,
                fixture,
                concurrency=args.concurrency,
                duration=args.warmup,
                max_requests=args.max_requests,
                rng=rng,
            )
        if args.sample is not None:
            os.kill(servers[0].pid, signal.SIGUSR1)  # the sampler forgets start-up and warm-up
        before = harness.cpu_sample([s.pid for s in servers])
        tally = await run_load(
            session,
            urls,
            fixture,
            concurrency=args.concurrency,
            duration=args.duration,
            max_requests=args.max_requests,
            rng=rng,
        )
        cpu = harness.cpu_usage(before, harness.cpu_sample([s.pid for s in servers]))
    race = await oversell_race(urls, fixture)
    harness.check_alive(servers)
    answered = warmup.ok + tally.ok + race["201"]
    return {"tally": tally, "cpu": cpu, "race": race, "answered_201": answered}


async def run(args: argparse.Namespace) -> dict:
    """Create and seed the database, start the servers, load them, audit, clean up."""
    jwt_secret = secrets.token_urlsafe(48)
    async with harness.scratch_database("streamcart_bench") as database_url:
        fixture = await seed(database_url, args.buyers, args.products, jwt_secret)
        settings = server_settings(database_url, jwt_secret, args.workers, args.pool_size)
        with tempfile.TemporaryDirectory(prefix="streamcart-bench-") as work_dir:
            command = harness.serve_command(args.profile, args.sample)
            servers: list[harness.Server] = []
            try:
                for index in range(args.workers):
                    servers.append(harness.start_server(settings, Path(work_dir), index, command))
                await harness.wait_healthy(servers)
                measured = await load_servers(args, servers, fixture)
            finally:
                harness.stop_servers(servers)
        audit = await audit_stock(database_url, fixture.hot_variant_id)
    return {**measured, "audit": audit, "cache": "redis" if args.workers > 1 else "memory"}


# --- the report -------------------------------------------------------------------------


def oversell_verdict(race: Counter, audit: dict, answered: int) -> tuple[int, list[str]]:
    """Units sold beyond stock, and every reason the race or the audit failed."""
    problems = list(audit["violations"])
    if audit["orders_in_db"] < answered:
        problems.append(f"{answered} checkouts answered 201 but {audit['orders_in_db']} orders")
    sold = race["201"]
    unexpected = {k: v for k, v in race.items() if k not in {"201", "409 out-of-stock"}}
    if sold != HOT_STOCK:
        problems.append(f"{sold} of {HOT_BUYERS} racing checkouts succeeded, expected {HOT_STOCK}")
    if unexpected:
        problems.append(f"unexpected race outcomes: {unexpected}")
    if audit["hot_sold"] != sold:
        problems.append(f"{audit['hot_sold']} hot units in order lines but {sold} answered 201")
    return max(0, audit["hot_sold"] - HOT_STOCK, sold - HOT_STOCK), problems


def git_commit() -> str:
    """The checked-out commit, to tell which code the figures belong to."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=harness.ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def summarise(args: argparse.Namespace, result: dict) -> dict:
    """The figures of one run, as written to JSON."""
    tally: Tally = result["tally"]
    latencies = sorted(tally.latencies)
    per_second = tally.ok / tally.elapsed if tally.elapsed else 0.0
    oversell, problems = oversell_verdict(result["race"], result["audit"], result["answered_201"])
    return {
        "benchmark": "checkout",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "config": {
            "workers": args.workers,
            "cache": result["cache"],
            "buyers": args.buyers,
            "products": args.products,
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "max_requests": args.max_requests,
            "pool_size": args.pool_size,
            "profiled": bool(args.profile or args.sample),
        },
        "elapsed_s": round(tally.elapsed, 3),
        "requests": tally.sent,
        "checkouts": tally.ok,
        "checkouts_per_s": round(per_second, 1),
        "latency_ms": {
            "p50": round(harness.percentile(latencies, 50) * 1000, 2),
            "p99": round(harness.percentile(latencies, 99) * 1000, 2),
            "max": round((latencies[-1] if latencies else 0) * 1000, 2),
        },
        "errors": tally.errors,
        "cpu": result["cpu"],
        "cpu_ms_per_checkout": {
            "server": _per_checkout(result["cpu"]["servers_pct"], per_second),
            "database": _per_checkout(result["cpu"]["database_pct"], per_second),
        },
        # What PostgreSQL's own work per checkout allows with no server, no load and
        # nothing else on the machine: an upper bound for the whole system here.
        "database_ceiling_per_s": round(
            per_second * 100 * (os.cpu_count() or 1) / result["cpu"]["database_pct"]
            if result["cpu"]["database_pct"]
            else 0.0
        ),
        "oversell": {
            "units": oversell,
            "ok": oversell == 0 and not problems,
            "race": dict(result["race"]),
            "answered_201": result["answered_201"],
            "problems": problems,
            **{k: v for k, v in result["audit"].items() if k != "violations"},
        },
        "target": {
            "checkouts_per_s": TARGET_PER_SECOND,
            "met": per_second >= TARGET_PER_SECOND,
        },
    }


def _per_checkout(percent_of_core: float, per_second: float) -> float:
    """CPU milliseconds per checkout from a share of one core at a checkout rate."""
    return round(10 * percent_of_core / per_second, 3) if per_second else 0.0


def table_rows(summary: dict) -> list[tuple[str, str]]:
    """The printed table: one (metric, value) row per line."""
    config, cpu, race = summary["config"], summary["cpu"], summary["oversell"]
    errors = sum(summary["errors"].values())
    error_text = f"{errors:,}" + (f" {summary['errors']}" if errors else "")
    per_server = " + ".join(f"{p:.0f}" for p in cpu["per_server_pct"])
    oversell_text = f"{race['units']} ({race['hot_sold']}/{HOT_STOCK} hot units sold)"
    if not race["ok"]:
        oversell_text = f"FAILED: {race['units']} over, {len(race['problems'])} problem(s)"
    return [
        ("server processes", f"{config['workers']} (cache: {config['cache']})"),
        ("concurrency", f"{config['concurrency']} ({config['buyers']} buyers)"),
        ("duration", f"{summary['elapsed_s']:.1f} s"),
        ("successful checkouts", f"{summary['checkouts']:,}"),
        ("checkouts/s", f"{summary['checkouts_per_s']:,.0f}"),
        ("p50 latency", f"{summary['latency_ms']['p50']:.1f} ms"),
        ("p99 latency", f"{summary['latency_ms']['p99']:.1f} ms"),
        ("errors", error_text),
        ("server CPU (% of one core)", f"{cpu['servers_pct']:.0f} ({per_server})"),
        ("load generator CPU", f"{cpu['load_generator_pct']:.0f}"),
        ("PostgreSQL CPU", f"{cpu['database_pct']:.0f}"),
        ("everything else", f"{cpu['other_pct'] - cpu['database_pct']:.0f}"),
        ("server CPU per checkout", f"{summary['cpu_ms_per_checkout']['server']:.2f} ms"),
        ("PostgreSQL CPU per checkout", f"{summary['cpu_ms_per_checkout']['database']:.2f} ms"),
        ("ceiling if PostgreSQL had every core", f"{summary['database_ceiling_per_s']:,.0f}/s"),
        ("machine CPU", f"{cpu['machine_pct']:.0f} of {cpu['machine_capacity_pct']}"),
        ("oversell", oversell_text),
        (
            f"target >= {TARGET_PER_SECOND:,}/s",
            "met" if summary["target"]["met"] else "NOT met",
        ),
    ]


def print_profile(path: Path, limit: int = 25) -> None:
    """cProfile's hottest functions by cumulative and by own time, and own time by package.
    With asyncio and SQLAlchemy's greenlets the cumulative column overcounts (it can exceed
    the run time); own time (tottime) is reliable."""
    if not path.exists():
        print(f"no profile written to {path}", file=sys.stderr)
        return
    stats = pstats.Stats(str(path))
    by_package: Counter = Counter()
    for (filename, _, _), (_, _, own, _, _) in stats.stats.items():
        by_package[_package(filename)] += own
    stats.strip_dirs()
    stats.sort_stats("cumulative").print_stats(limit)
    stats.sort_stats("tottime").print_stats(limit)
    total = sum(by_package.values()) or 1
    print("own time by package:")
    for package, seconds in by_package.most_common(12):
        print(f"  {100 * seconds / total:5.1f}%  {seconds:7.2f} s  {package}")


def _package(filename: str) -> str:
    """The top-level package (or project directory) a profiled file belongs to."""
    if filename == "~":
        return "(C functions and builtins)"
    for marker, label in (("site-packages/", ""), (f"{harness.ROOT}/", "project: ")):
        if marker in filename:
            return label + filename.split(marker, 1)[1].split("/", 1)[0]
    return "(standard library)" if "/lib/python3" in filename else filename


def print_sample(path: Path, lines: int = 100) -> None:
    """The head of the stack sampler's report."""
    if not path.exists():
        print(f"no sampler report written to {path}", file=sys.stderr)
        return
    print("\n".join(path.read_text().splitlines()[:lines]))


def main(argv: list[str] | None = None) -> int:
    """Run, print the table, write JSON; 1 when the oversell check fails, 130 when stopped."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up on SIGTERM too
    try:
        result = asyncio.run(run(args))
    except KeyboardInterrupt:
        print("interrupted: servers stopped, database dropped", file=sys.stderr)
        return 130
    summary = summarise(args, result)
    print(harness.render_table("checkout benchmark (PostgreSQL)", table_rows(summary)))
    harness.write_json(args.json, summary)
    print(f"JSON: {args.json}")
    if args.profile is not None:
        print("figures measured under cProfile: far slower than without")
        print_profile(args.profile)
    if args.sample is not None:
        print(f"stack sampler report: {args.sample}")
        print_sample(args.sample)
    if not summary["oversell"]["ok"]:
        for problem in summary["oversell"]["problems"] or ["oversold"]:
            print(f"OVERSELL CHECK FAILED: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
