"""Flash-sale claims racing on PostgreSQL: attempts decided per second, latency, the
server's CPU per refused and per won attempt, and exactly the flash sale's units sold.
With `--target voucher`, the same race for a voucher dropped on air: exactly its
`total` claims given out, nobody above the per-buyer limit.

    .venv/bin/python bench/flash_claims.py               # 1 server process
    .venv/bin/python bench/flash_claims.py --workers 2   # 2 processes sharing Redis
    .venv/bin/python bench/flash_claims.py --workers 2 --target voucher

A fresh database is created, migrated and seeded directly (one shop, a live session
that is live with one product on show, B buyers with minted access tokens). The seller
starts the flash sale over HTTP with a short countdown; separate load-generator
processes, already connected, fire every attempt (`POST .../claim`, one unit) at the
instant it starts. Once it is sold out as many attempts again measure refusals alone.
The database is audited afterwards: exactly the flash sale's units sold, in as many
orders, nobody above the per-buyer limit. Prints a table, writes JSON, exits 1 when an
attempt had no clear answer or the audit fails. The machine has 2 cores: the servers,
PostgreSQL, Redis and the load generators share them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import harness
import uvloop
from checkout import (
    REDIS_URL,
    TOKEN_TTL,
    git_commit,
    print_sample,
    seed_people,
    seed_product,
    server_settings,
)
from sqlalchemy import text

from commerce.accounts.models import Role
from commerce.accounts.tokens import AccessTokens
from live.sessions.models import LiveProduct, LiveSession, LiveStatus
from live.sessions.service import hash_stream_key, new_stream_key
from storage.ids import new_id
from storage.sql import make_engine, session_factory
from storage.sql.migrate import upgrade

TARGET_PER_SECOND = 5_000
TARGET_P99_MS = 50.0
FLASH_PRICE = 50_000  # below the seeded product's regular price (100,000 VND)
CLAIM_BODY = json.dumps({"quantity": 1}).encode()
PROBLEM_JSON = "application/problem+json"
GENERATOR_READY_TIMEOUT = 60.0
GENERATOR_STOP_TIMEOUT = 5.0
SETTLE_LIMIT = 5.0  # at most this long for the servers to go quiet between phases
SETTLE_WINDOW = 0.5
SETTLE_QUIET_PCT = 10.0
PHASE_LEAD = 1.0  # seconds between the refusals phase's command and its start
BUSY_GENERATOR_PCT = 90.0
UNANSWERED = "unanswered (phase timeout)"
WARM_TIMEOUT = aiohttp.ClientTimeout(total=30)  # opening connections, whatever --timeout says
EXPECTED_REFUSALS = {
    "409 flash-sold-out",
    "409 flash-limit-reached",
    "409 flash-not-started",
    "409 flash-ended",
    "403 staff-cannot-claim",
    "409 voucher-all-claimed",
    "409 voucher-limit-reached",
    "409 voucher-claims-closed",
}
ONCE_GONE = {  # the answers once all is taken
    "flash": {"201", "409 flash-sold-out", "409 flash-limit-reached"},
    "voucher": {"201", "409 voucher-all-claimed", "409 voucher-limit-reached"},
}
VOUCHER_DISCOUNT = 10_000  # VND, a fixed voucher
REASON = re.compile(r"^4\d\d [a-z0-9][a-z0-9-]*$")  # a 4xx with a problem code
DEFAULT_JSON = {
    "flash": harness.RESULTS / "flash_claims.json",
    "voucher": harness.RESULTS / "voucher_claims.json",
}
SCRIPT = Path(__file__).resolve()


# --- command line -----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, refused early when they would make an unbounded or impossible run."""
    parser = argparse.ArgumentParser(
        description="Racing flash-sale claims on PostgreSQL: rate, latency, CPU per attempt "
        "and an oversell/undersell audit (this machine has 2 cores for everything)."
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes; > 1 shares Redis (1)"
    )
    parser.add_argument("--redis", action="store_true", help="use Redis with one process too")
    parser.add_argument(
        "--target",
        choices=tuple(ONCE_GONE),
        default="flash",
        help="what the buyers race for: a flash sale's units or a dropped voucher (flash)",
    )
    parser.add_argument("--buyers", type=int, default=5_000, help="buyer accounts (5000)")
    parser.add_argument("--attempts", type=int, default=10_000, help="attempts per phase (10000)")
    parser.add_argument("--units", type=int, default=100, help="units in the flash sale (100)")
    parser.add_argument("--per-buyer-limit", type=int, default=1, help="units per buyer (1)")
    parser.add_argument("--clients", type=int, default=2, help="load generator processes (2)")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="connections in flight per client (32)"
    )
    parser.add_argument(
        "--countdown", type=int, default=2, help="seconds from starting the sale to its start (2)"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="bound on each phase, in seconds (60)"
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin each load generator to its own CPU"
    )
    parser.add_argument(
        "--sample",
        type=Path,
        help="run the first server under bench/stack_sampler.py for the sold-out phase,"
        " report to this file",
    )
    parser.add_argument("--json", type=Path, help="where to write JSON (bench/results/)")
    args = parser.parse_args(argv)
    args.redis = args.redis or args.workers > 1
    args.json = args.json or DEFAULT_JSON[args.target]
    problems = [
        not 1 <= args.workers <= 4 and "--workers must be 1..4",
        not 1 <= args.buyers <= 100_000 and "--buyers must be 1..100000",
        not 1 <= args.attempts <= 200_000 and "--attempts must be 1..200000",
        not 1 <= args.units <= 100_000 and "--units must be 1..100000",
        not 1 <= args.per_buyer_limit <= 999 and "--per-buyer-limit must be 1..999",
        not 1 <= args.clients <= 16 and "--clients must be 1..16",
        not 1 <= args.concurrency <= 1024 and "--concurrency must be 1..1024",
        args.concurrency < args.workers and "--concurrency must be >= --workers",
        not 1 <= args.countdown <= 60 and "--countdown must be 1..60",
        not 1 <= args.timeout <= 600 and "--timeout must be in [1, 600]",
        args.attempts < args.units and "--attempts must be >= --units (to sell out)",
        args.buyers * args.per_buyer_limit < args.units and "too few buyers to sell out",
    ]
    for problem in problems:
        if problem:
            parser.error(problem)
    return args


# --- the database -----------------------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    """What the run needs: tokens, the session and the product on show."""

    seller_token: str
    buyer_tokens: list[str]
    shop_id: str
    live_session_id: str
    product_id: str
    variant_id: str
    stock: int


async def seed(database_url: str, buyers: int, stock: int, jwt_secret: str) -> Fixture:
    """Migrate; insert a seller with an active shop, a live session showing one product
    with `stock` units, and the buyers; mint their access tokens."""
    engine = make_engine(database_url)
    try:
        await upgrade(engine)
        now = datetime.now(UTC)
        seller, users, shop = seed_people(buyers, now)
        product, variant = seed_product(shop.id, "Flash product", stock, now)
        live = LiveSession(
            id=new_id(),
            shop_id=shop.id,
            host_id=seller.id,
            title="Bench flash sale",
            description="",
            status=LiveStatus.LIVE,
            scheduled_at=now,
            started_at=now,
            stream_key_hash=hash_stream_key(new_stream_key()),
            slow_mode_seconds=0,
            created_at=now,
        )
        on_show = LiveProduct(live_session_id=live.id, product_id=product.id, live_sold=0)
        stages = ([seller, *users], [shop], [product], [variant], [live], [on_show])
        async with session_factory(engine).begin() as session:
            for stage in stages:
                session.add_all(stage)
                await session.flush()  # parents before the rows that reference them
    finally:
        await engine.dispose()
    tokens = AccessTokens(jwt_secret, TOKEN_TTL)
    return Fixture(
        seller_token=tokens.issue(seller.id, Role.SELLER)[0],
        buyer_tokens=[tokens.issue(u.id, Role.BUYER)[0] for u in users],
        shop_id=shop.id,
        live_session_id=live.id,
        product_id=product.id,
        variant_id=variant.id,
        stock=stock,
    )


AUDIT_SQL = {
    "flash": "SELECT quantity, sold, per_buyer_limit FROM flash_sales WHERE id = :flash",
    "linked": (
        "SELECT count(DISTINCT o.id) AS orders, COALESCE(SUM(a.quantity), 0) AS units"
        " FROM live_allocations a JOIN orders o ON o.id = a.order_id"
        " WHERE a.flash_sale_id = :flash AND a.returned_at IS NULL"
    ),
    "orders": "SELECT count(*) FROM orders",
    "lines": (
        "SELECT COALESCE(SUM(quantity), 0) FROM order_items"
        " WHERE variant_id = :variant AND unit_price = :price"
    ),
    "claims": (
        "SELECT COALESCE(SUM(quantity), 0) AS units, COALESCE(MAX(quantity), 0) AS top"
        " FROM flash_claims WHERE flash_sale_id = :flash"
    ),
    "per_buyer": (
        "SELECT COALESCE(MAX(units), 0) FROM (SELECT SUM(quantity) AS units"
        " FROM live_allocations WHERE flash_sale_id = :flash AND returned_at IS NULL"
        " GROUP BY buyer_id) AS b"
    ),
    # buyers whose counted claims differ from the units their orders hold
    "mismatched": (
        "SELECT count(*) FROM (SELECT buyer_id, SUM(quantity) AS units FROM live_allocations"
        " WHERE flash_sale_id = :flash AND returned_at IS NULL GROUP BY buyer_id) AS a"
        " FULL JOIN (SELECT buyer_id, quantity AS units FROM flash_claims"
        " WHERE flash_sale_id = :flash AND quantity > 0) AS c USING (buyer_id)"
        " WHERE a.units IS DISTINCT FROM c.units"
    ),
    "variant": "SELECT on_hand, reserved FROM variants WHERE id = :variant",
    "on_show": (
        "SELECT live_sold FROM live_products"
        " WHERE live_session_id = :live AND product_id = :product"
    ),
}


async def audit_flash(database_url: str, fixture: Fixture, flash_id: str) -> dict:
    """What the database holds for the flash sale, once the servers have stopped."""
    params = {
        "flash": flash_id,
        "variant": fixture.variant_id,
        "price": FLASH_PRICE,
        "live": fixture.live_session_id,
        "product": fixture.product_id,
    }
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = {
                name: (await conn.execute(text(sql), params)).one()
                for name, sql in AUDIT_SQL.items()
            }
    finally:
        await engine.dispose()
    flash, linked, claims, variant = rows["flash"], rows["linked"], rows["claims"], rows["variant"]
    return {
        "quantity": flash.quantity,
        "sold": flash.sold,
        "per_buyer_limit": flash.per_buyer_limit,
        "linked_orders": linked.orders,
        "linked_units": int(linked.units),
        "orders_in_db": rows["orders"][0],
        "flash_price_units": int(rows["lines"][0]),
        "claimed_units": int(claims.units),
        "most_claimed_by_a_buyer": int(claims.top),
        "most_ordered_by_a_buyer": int(rows["per_buyer"][0]),
        "buyers_claims_not_orders": rows["mismatched"][0],
        "variant_on_hand": variant.on_hand,
        "variant_reserved": variant.reserved,
        "live_sold": rows["on_show"][0],
    }


VOUCHER_AUDIT_SQL = {
    "voucher": "SELECT total, claimed, per_buyer_limit FROM vouchers WHERE id = :voucher",
    "claims": "SELECT count(*) FROM voucher_claims WHERE voucher_id = :voucher",
    "per_buyer": (
        "SELECT COALESCE(MAX(n), 0) FROM (SELECT count(*) AS n FROM voucher_claims"
        " WHERE voucher_id = :voucher GROUP BY buyer_id) AS b"
    ),
}


async def audit_voucher(database_url: str, voucher_id: str) -> dict:
    """What the database holds for the dropped voucher, once the servers have stopped."""
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = {
                name: (await conn.execute(text(sql), {"voucher": voucher_id})).one()
                for name, sql in VOUCHER_AUDIT_SQL.items()
            }
    finally:
        await engine.dispose()
    voucher = rows["voucher"]
    return {
        "total": voucher.total,
        "claimed": voucher.claimed,
        "per_buyer_limit": voucher.per_buyer_limit,
        "claims_in_db": rows["claims"][0],
        "most_claimed_by_a_buyer": rows["per_buyer"][0],
    }


def voucher_audit_problems(
    audit: dict, units: int, limit: int, race_won: int, refused_won: int
) -> list:
    """Every way the answers and the database disagree with exactly `units` claims."""
    expected = {
        "vouchers.claimed": (audit["claimed"], units),
        "voucher_claims rows": (audit["claims_in_db"], units),
        "201 answers in the race": (race_won, units),
        "201 answers once all claimed": (refused_won, 0),
    }
    problems = [
        f"{name} = {got}, expected {want}" for name, (got, want) in expected.items() if got != want
    ]
    if audit["most_claimed_by_a_buyer"] > limit:
        problems.append(
            f"most claimed by a buyer = {audit['most_claimed_by_a_buyer']}, above the limit {limit}"
        )
    return problems


def audit_problems(audit: dict, units: int, limit: int, race_won: int, refused_won: int) -> list:
    """Every way the answers and the database disagree with exactly `units` sold."""
    expected = {
        "flash_sales.sold": (audit["sold"], units),
        "orders linked to the flash sale": (audit["linked_orders"], units),
        "units in those orders": (audit["linked_units"], units),
        "orders in the database": (audit["orders_in_db"], units),
        "order lines at the flash price (units)": (audit["flash_price_units"], units),
        "sum of flash_claims.quantity": (audit["claimed_units"], units),
        "buyers whose claims differ from their orders": (audit["buyers_claims_not_orders"], 0),
        "variant's reserved units": (audit["variant_reserved"], units),
        "live_products.live_sold": (audit["live_sold"], units),
        "201 answers in the race": (race_won, units),
        "201 answers once sold out": (refused_won, 0),
    }
    problems = [
        f"{name} = {got}, expected {want}" for name, (got, want) in expected.items() if got != want
    ]
    for name in ("most_claimed_by_a_buyer", "most_ordered_by_a_buyer"):
        if audit[name] > limit:
            problems.append(f"{name.replace('_', ' ')} = {audit[name]}, above the limit {limit}")
    if audit["variant_reserved"] > audit["variant_on_hand"]:
        problems.append(
            f"variant reserved {audit['variant_reserved']} > on hand {audit['variant_on_hand']}"
        )
    return problems


# --- a load generator process -----------------------------------------------------------


def classify(status: int, content_type: str, payload: bytes) -> str:
    """An attempt's outcome: `201`, `<status> <problem code>`, or `<status> (no code)`."""
    if status == 201:
        return "201"
    code = None
    if content_type == PROBLEM_JSON:
        with contextlib.suppress(ValueError, AttributeError):
            code = json.loads(payload).get("code")
    if not isinstance(code, str) or not code:
        return f"{status} (no code)"
    return f"{status} {code}"


def is_error(outcome: str) -> bool:
    """No clear reason: not 201 and not a 4xx with a problem code (so every 5xx, every
    answer without a code, every connection error and every unanswered attempt)."""
    return outcome != "201" and not REASON.match(outcome)


async def sleep_until(at: float) -> None:
    """Sleep until the wall clock (shared by every process here) reaches `at`."""
    await asyncio.sleep(max(0.0, at - time.time()))
    if (left := at - time.time()) > 0:  # a timer may fire a little early
        await asyncio.sleep(left + 0.001)


class LoadGenerator:
    """One process's share of the attempts: attempt i is buyer i mod B on server i mod N.
    `concurrency` workers, worker k on server k mod N, each with one request in flight on
    a kept-alive connection."""

    def __init__(self, setup: dict) -> None:
        self.urls: list[str] = setup["urls"]
        self.headers = [
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            for token in setup["tokens"]
        ]
        self.share = range(setup["first"], setup["first"] + setup["count"])
        self.concurrency: int = setup["concurrency"]
        self.timeout: float = setup["timeout"]
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self.concurrency, limit_per_host=0, keepalive_timeout=60
            ),
            timeout=aiohttp.ClientTimeout(total=self.timeout),
        )

    async def warm(self) -> None:
        """Open each worker's connection before the start (GET /healthz)."""

        async def one(k: int) -> None:
            url = self.urls[k % len(self.urls)] + "/healthz"
            async with self.session.get(url, timeout=WARM_TIMEOUT) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"/healthz answered {response.status}")

        await asyncio.gather(*(one(k) for k in range(self.concurrency)))

    async def phase(self, path: str, at: float) -> dict:
        """Fire the whole share at `path` at `at`; answers each outcome's latencies (ms), the first
        send and last answer (wall clock) and this process's CPU while it was busy."""
        servers = len(self.urls)
        queues: list[deque[int]] = [deque() for _ in range(servers)]
        for i in self.share:
            queues[i % servers].append(i % len(self.headers))
        latencies: dict[str, list[float]] = {}
        examples: list[dict] = []
        times = {"first": math.inf, "last": 0.0}
        go = asyncio.Event()

        async def worker(k: int) -> None:
            queue, url = queues[k % servers], self.urls[k % servers] + path
            await go.wait()
            while queue:
                headers = self.headers[queue.popleft()]
                times["first"] = min(times["first"], time.time())
                started = time.perf_counter()
                content_type, payload = "", b""
                try:
                    async with self.session.post(url, data=CLAIM_BODY, headers=headers) as r:
                        payload, content_type = await r.read(), r.content_type
                        outcome = classify(r.status, content_type, payload)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    outcome = type(exc).__name__
                seconds = time.perf_counter() - started
                times["last"] = max(times["last"], time.time())
                latencies.setdefault(outcome, []).append(round(seconds * 1000, 3))
                if is_error(outcome) and len(examples) < 5:
                    body = payload[:300].decode(errors="replace")
                    examples.append(
                        {"outcome": outcome, "content_type": content_type, "body": body}
                    )

        await self.warm()
        workers = [asyncio.create_task(worker(k)) for k in range(self.concurrency)]
        await sleep_until(at)
        cpu_before = time.process_time()
        go.set()
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.gather(*workers)
        except TimeoutError:
            pass  # what is left unanswered is counted below
        cpu = time.process_time() - cpu_before
        answered = sum(len(v) for v in latencies.values())
        busy = max(times["last"] - times["first"], 1e-9) if answered else 0.0
        return {
            "attempts": len(self.share),
            "unanswered": len(self.share) - answered,
            "first_send": times["first"] if answered else None,
            "last_answer": times["last"] if answered else None,
            "latencies_ms": latencies,
            "error_examples": examples,
            "cpu_s": round(cpu, 4),
            "busy_s": round(busy, 4),
            "cpu_pct": round(100 * cpu / busy, 1) if busy else 0.0,
        }


def emit(message: dict) -> None:
    """One JSON line to the parent."""
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def generate(setup: dict) -> None:
    """The load generator: warm up, say ready, then run each phase the parent names
    (`{"phase": ..., "path": ..., "at": epoch}`) until it says quit or closes stdin."""
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    generator = LoadGenerator(setup)
    try:
        await generator.warm()
        emit({"event": "ready"})
        while line := await commands.readline():
            command = json.loads(line)
            if command.get("quit"):
                break
            result = await generator.phase(command["path"], command["at"])
            emit({"event": "result", "phase": command["phase"], **result})
    except Exception as exc:
        emit({"event": "error", "message": f"{type(exc).__name__}: {exc}"})
        raise
    finally:
        await generator.session.close()


def generator_main(setup_path: str) -> int:
    """Entry of `flash_claims.py _generator SETUP`, on uvloop as the server."""
    try:
        uvloop.run(generate(json.loads(Path(setup_path).read_text())))
    except KeyboardInterrupt:
        return 130
    return 0


# --- the parent's side of the generators ------------------------------------------------


@dataclass
class Generator:
    """A load generator process, pinned to `cpu` (None: not pinned)."""

    index: int
    process: asyncio.subprocess.Process
    cpu: int | None

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, message: dict) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")

    async def receive(self, bound: float) -> dict:
        """The generator's next message; fails when it reports an error, exits or is late."""
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(bound):
                line = await self.process.stdout.readline()
        except TimeoutError:
            raise RuntimeError(f"load generator {self.index} silent for {bound:.0f} s") from None
        if not line:
            code = await self.process.wait()
            raise RuntimeError(f"load generator {self.index} exited with {code}")
        message = json.loads(line)
        if message["event"] == "error":
            raise RuntimeError(f"load generator {self.index} failed: {message['message']}")
        return message


async def start_generators(
    args: argparse.Namespace,
    urls: list[str],
    fixture: Fixture,
    work_dir: Path,
    into: list[Generator],
) -> None:
    """Start `--clients` generator processes, each appended to `into` as soon as it exists
    (so that a failure still stops it), and wait until all are connected."""
    cpus = sorted(os.sched_getaffinity(0))
    pin = not args.no_pin and args.clients <= len(cpus)
    for index in range(args.clients):
        first = index * args.attempts // args.clients
        setup = {
            "urls": urls,
            "tokens": fixture.buyer_tokens,
            "first": first,
            "count": (index + 1) * args.attempts // args.clients - first,
            "concurrency": args.concurrency,
            "timeout": args.timeout,
        }
        path = work_dir / f"generator-{index}.json"
        process = await harness.start_generator(SCRIPT, setup, path, 64 * 1024 * 1024)
        cpu = cpus[index % len(cpus)] if pin else None
        into.append(Generator(index, process, cpu))
        if cpu is not None:
            os.sched_setaffinity(process.pid, {cpu})
    for generator in into:
        await generator.receive(GENERATOR_READY_TIMEOUT)


async def stop_generators(generators: list[Generator]) -> None:
    """Ask each generator to quit, then kill whichever is still running."""
    for generator in generators:
        if generator.process.returncode is None and generator.process.stdin is not None:
            with contextlib.suppress(OSError, RuntimeError):
                generator.send({"quit": True})
                generator.process.stdin.close()
    for generator in generators:
        try:
            async with asyncio.timeout(GENERATOR_STOP_TIMEOUT):
                await generator.process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                generator.process.kill()
            await generator.process.wait()


# --- one run ----------------------------------------------------------------------------


def flash_duration(timeout: float) -> int:
    """A window long enough for both phases and the pause between them."""
    return min(3600, max(10, math.ceil(2 * timeout + SETTLE_LIMIT + 30)))


async def start_flash_sale(url: str, fixture: Fixture, args: argparse.Namespace) -> dict:
    """The seller starts the flash sale over HTTP, as in production (so the server
    schedules and announces it), with a countdown; answers the API's flash sale."""
    body = {
        "product_id": fixture.product_id,
        "flash_price": FLASH_PRICE,
        "quantity": args.units,
        "duration_seconds": flash_duration(args.timeout),
        "per_buyer_limit": args.per_buyer_limit,
        "countdown_seconds": args.countdown,
    }
    headers = {"Authorization": f"Bearer {fixture.seller_token}"}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.post(
            f"{url}/api/live-sessions/{fixture.live_session_id}/flash-sales",
            json=body,
            headers=headers,
        ) as response,
    ):
        if response.status != 201:
            raise RuntimeError(
                f"starting the flash sale: {response.status} {await response.text()}"
            )
        return await response.json()


def summarise_phase(
    results: list[dict], before: harness.CpuSample, after: harness.CpuSample, n_servers: int
) -> dict:
    """One phase's figures from the generators' results and the CPU samples around it
    (`servers` in the samples: the server processes, then the generators)."""
    outcomes: Counter = Counter()
    answered: list[float] = []
    won: list[float] = []
    for result in results:
        for outcome, values in result["latencies_ms"].items():
            outcomes[outcome] += len(values)
            answered.extend(values)
        won.extend(result["latencies_ms"].get("201", []))
        outcomes[UNANSWERED] += result["unanswered"]
    outcomes = +outcomes  # no zero counts
    answered.sort()
    won.sort()
    firsts = [r["first_send"] for r in results if r["first_send"] is not None]
    lasts = [r["last_answer"] for r in results if r["last_answer"] is not None]
    elapsed = max(lasts) - min(firsts) if firsts else 0.0
    wall = max(after.wall - before.wall, 1e-9)
    used = [a - b for a, b in zip(after.servers, before.servers, strict=True)]
    database = sum(s - before.database.get(pid, 0.0) for pid, s in after.database.items())
    machine = after.machine - before.machine

    def pct(seconds: float) -> float:
        return round(100 * seconds / wall, 1)

    def spread(values: list[float]) -> dict[str, float]:
        quantiles = {f"p{q}": harness.percentile(values, q) for q in (50, 95, 99)}
        return {**quantiles, "max": values[-1] if values else 0.0}

    return {
        "attempts": sum(r["attempts"] for r in results),
        "answered": len(answered),
        "first_send": min(firsts) if firsts else None,
        "last_answer": max(lasts) if lasts else None,
        "elapsed_s": round(elapsed, 4),
        "decided_per_s": round(len(answered) / elapsed, 1) if elapsed else 0.0,
        "latency_ms": spread(answered),
        "won_latency_ms": spread(won),
        "outcomes": dict(outcomes.most_common()),
        "won": outcomes["201"],
        "refused": sum(n for k, n in outcomes.items() if REASON.match(k)),
        "errors": {k: n for k, n in outcomes.items() if is_error(k)},
        "error_examples": [e for r in results for e in r["error_examples"]],
        "cpu": {
            "wall_s": round(wall, 4),
            "servers_s": [round(s, 3) for s in used[:n_servers]],
            "generators_s": [round(s, 3) for s in used[n_servers:]],
            "database_s": round(database, 3),
            "machine_s": round(machine, 3),
            "servers_pct": pct(sum(used[:n_servers])),
            "per_server_pct": [pct(s) for s in used[:n_servers]],
            "generators_pct": [pct(s) for s in used[n_servers:]],
            "database_pct": pct(database),
            "other_pct": pct(max(0.0, machine - sum(used) - database)),
            "machine_pct": pct(machine),
            "machine_capacity_pct": 100 * (os.cpu_count() or 1),
        },
        # each generator's CPU while it was sending, in % of one core
        "generators": [
            {"cpu_pct": r["cpu_pct"], "cpu_s": r["cpu_s"], "busy_s": r["busy_s"]} for r in results
        ],
    }


async def run_phase(
    name: str,
    path: str,
    at: float,
    servers: list[harness.Server],
    generators: list[Generator],
    limit_s: float,
) -> dict:
    """Every generator fires its share at `at`; CPU is sampled from `at` until the last
    generator reported."""
    for generator in generators:
        generator.send({"phase": name, "path": path, "at": at})
    await sleep_until(at)
    pids = [s.pid for s in servers] + [g.pid for g in generators]
    before = harness.cpu_sample(pids)
    bound = limit_s + 30  # the generators bound the phase themselves; this is a backstop
    results = await asyncio.gather(*(g.receive(bound) for g in generators))
    after = harness.cpu_sample(pids)
    harness.check_alive(servers)
    return summarise_phase(results, before, after, len(servers))


async def settle(servers: list[harness.Server]) -> float:
    """Wait (at most SETTLE_LIMIT s) until every server is near idle: what the race left
    behind (the outbox relay, announcements) should not be charged to the refusals."""
    started = time.monotonic()
    last = [harness.process_cpu_seconds(s.pid) for s in servers]
    while time.monotonic() - started < SETTLE_LIMIT:
        await asyncio.sleep(SETTLE_WINDOW)
        now = [harness.process_cpu_seconds(s.pid) for s in servers]
        busy = [100 * (n - b) / SETTLE_WINDOW for n, b in zip(now, last, strict=True)]
        if max(busy) < SETTLE_QUIET_PCT:
            break
        last = now
    return round(time.monotonic() - started, 2)


async def seller_post(url: str, fixture: Fixture, path: str, body: dict) -> dict:
    """The seller's POST over HTTP, as in production; its 201 answer."""
    headers = {"Authorization": f"Bearer {fixture.seller_token}"}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.post(url + path, json=body, headers=headers) as response,
    ):
        if response.status != 201:
            raise RuntimeError(f"POST {path}: {response.status} {await response.text()}")
        return await response.json()


async def drop_voucher(url: str, fixture: Fixture, args: argparse.Namespace) -> dict:
    """The seller creates a fixed voucher of `--units` and drops it on air, open long
    enough for both phases; answers the voucher with its id."""
    now = datetime.now(UTC)
    voucher = await seller_post(
        url,
        fixture,
        f"/api/shops/{fixture.shop_id}/vouchers",
        {
            "code": "BENCH",
            "kind": "fixed",
            "value": VOUCHER_DISCOUNT,
            "starts_at": now.isoformat(),
            "ends_at": (now + timedelta(days=1)).isoformat(),
            "total": args.units,
            "per_buyer_limit": args.per_buyer_limit,
        },
    )
    drop_path = f"/api/live-sessions/{fixture.live_session_id}/vouchers/{voucher['id']}/drop"
    await seller_post(url, fixture, drop_path, {"claim_seconds": flash_duration(args.timeout)})
    return voucher


async def open_race(
    url: str, fixture: Fixture, args: argparse.Namespace
) -> tuple[dict, str, float]:
    """What is raced for, the claim path and when the race starts (epoch): a flash sale
    at the end of its countdown, a voucher `--countdown` s after its drop."""
    if args.target == "voucher":
        voucher = await drop_voucher(url, fixture, args)
        path = f"/api/live-sessions/{fixture.live_session_id}/vouchers/{voucher['id']}/claim"
        return voucher, path, time.time() + args.countdown
    flash = await start_flash_sale(url, fixture, args)
    path = f"/api/live-sessions/{fixture.live_session_id}/flash-sales/{flash['id']}/claim"
    return flash, path, datetime.fromisoformat(flash["starts_at"]).timestamp()


async def load(
    args: argparse.Namespace,
    servers: list[harness.Server],
    generators: list[Generator],
    fixture: Fixture,
) -> dict:
    """Open the race (a flash sale or a voucher drop), race at its start, let the
    servers settle, then measure attempts once all is taken."""
    flash, path, starts_at = await open_race(servers[0].url, fixture, args)
    lead = starts_at - time.time()
    print(f"{args.target} {flash['id']} opens in {lead:.2f} s", flush=True)
    race = await run_phase("race", path, starts_at, servers, generators, args.timeout)
    print(f"race: {race['answered']:,} answered in {race['elapsed_s']:.2f} s", flush=True)
    if race["first_send"] is not None:  # how close to the start the first attempt went
        race["first_send_after_start_ms"] = round(1000 * (race["first_send"] - starts_at), 2)
    settled = await settle(servers)
    if args.sample is not None:
        os.kill(servers[0].pid, signal.SIGUSR1)  # the sampler forgets all before this phase
    at = time.time() + PHASE_LEAD
    refusals = await run_phase("refusals", path, at, servers, generators, args.timeout)
    print(f"refusals: {refusals['answered']:,} answered in {refusals['elapsed_s']:.2f} s")
    return {
        "flash": flash,
        "lead_s": round(lead, 3),
        "race": race,
        "settle_s": settled,
        "refusals": refusals,
    }


async def run(args: argparse.Namespace) -> dict:
    """Create and seed the database, start the servers and generators, race, audit; every
    process and the database are gone when this returns or raises."""
    jwt_secret = secrets.token_urlsafe(48)
    async with harness.scratch_database("streamcart_bench") as database_url:
        # twice the units in stock: the variant's stock never refuses before the flash
        # sale does, so a flash-sale oversell would show as more orders, not as 409s
        fixture = await seed(database_url, args.buyers, 2 * args.units, jwt_secret)
        settings = server_settings(database_url, jwt_secret, args.workers, None)
        if args.redis:  # one process with Redis (server_settings adds it for > 1)
            harness.require_loopback(REDIS_URL)
            settings["STREAMCART_REDIS_URL"] = REDIS_URL
        with tempfile.TemporaryDirectory(prefix="streamcart-bench-") as work_dir:
            servers: list[harness.Server] = []
            generators: list[Generator] = []
            try:
                await harness.start_sampled_servers(
                    servers, settings, Path(work_dir), args.workers, args.sample
                )
                urls = [s.url for s in servers]
                await start_generators(args, urls, fixture, Path(work_dir), generators)
                measured = await load(args, servers, generators, fixture)
            finally:
                await stop_generators(generators)
                harness.stop_servers(servers)
        if args.target == "voucher":
            audit = await audit_voucher(database_url, measured["flash"]["id"])
        else:
            audit = await audit_flash(database_url, fixture, measured["flash"]["id"])
    return {**measured, "audit": audit, "generator_cpus": [g.cpu for g in generators]}


# --- the report -------------------------------------------------------------------------


def per_attempt_us(race: dict, refusals: dict, key: str) -> dict[str, float | None]:
    """CPU per refused attempt (the refusals phase's CPU over its attempts) and per won
    attempt (the race's CPU less its refusals at that price, over the units won), in µs,
    of `key` (`servers_s` summed, or `database_s`)."""

    def total(phase: dict) -> float:
        value = phase["cpu"][key]
        return sum(value) if isinstance(value, list) else value

    refused = total(refusals) / refusals["answered"] if refusals["answered"] else None
    won = None
    if race["won"] and refused is not None:
        won = (total(race) - race["refused"] * refused) / race["won"]
    return {
        "refused": None if refused is None else round(refused * 1e6, 1),
        "won": None if won is None else round(won * 1e6, 1),
    }


def verdict(args: argparse.Namespace, result: dict) -> dict[str, list[str]]:
    """What makes the run fail: attempts without a clear reason, refusals once sold out
    that are not, and the audit."""
    race, refusals = result["race"], result["refusals"]
    errors = [
        f"{name}: {n:,} x {outcome}"
        for name, phase in (("race", race), ("refusals", refusals))
        for outcome, n in phase["errors"].items()
    ]
    once_sold_out = ONCE_GONE[args.target]
    errors += [
        f"refusals: {n:,} x {outcome} once sold out"
        for outcome, n in refusals["outcomes"].items()
        if outcome not in once_sold_out and not is_error(outcome)
    ]
    check = voucher_audit_problems if args.target == "voucher" else audit_problems
    audit = check(result["audit"], args.units, args.per_buyer_limit, race["won"], refusals["won"])
    return {"errors": errors, "audit": audit}


def summarise(args: argparse.Namespace, result: dict) -> dict:
    """The figures of one run, as written to JSON."""
    race, refusals = result["race"], result["refusals"]
    failures = verdict(args, result)
    unexpected = sorted(
        {
            outcome
            for phase in (race, refusals)
            for outcome in phase["outcomes"]
            if REASON.match(outcome) and outcome not in EXPECTED_REFUSALS
        }
    )
    flash = result["flash"]
    return {
        "benchmark": "flash_claims",
        "race_for": args.target,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "config": {
            "workers": args.workers,
            "redis": args.redis,
            "buyers": args.buyers,
            "attempts": args.attempts,
            "units": args.units,
            "per_buyer_limit": args.per_buyer_limit,
            "clients": args.clients,
            "concurrency": args.concurrency,
            "generator_cpus": result["generator_cpus"],
            "countdown_s": args.countdown,
            "timeout_s": args.timeout,
        },
        args.target: {
            k: flash.get(k)
            for k in ("id", "quantity", "total", "per_buyer_limit", "starts_at", "ends_at")
        },
        "lead_s": result["lead_s"],
        "race": race,
        "settle_s": result["settle_s"],
        "refusals": refusals,
        "cpu_per_attempt_us": {
            "server": per_attempt_us(race, refusals, "servers_s"),
            "database": per_attempt_us(race, refusals, "database_s"),
        },
        "unexpected_refusals": unexpected,
        "audit": {**result["audit"], "problems": failures["audit"]},
        "errors": failures["errors"],
        "ok": not failures["audit"] and not failures["errors"],
        "target": {
            "decided_per_s": TARGET_PER_SECOND,
            "p99_ms": TARGET_P99_MS,
            "rate_met": race["decided_per_s"] >= TARGET_PER_SECOND,
            "p99_met": race["latency_ms"]["p99"] < TARGET_P99_MS,
        },
    }


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} µs"


def phase_rows(name: str, phase: dict) -> list[tuple[str, str]]:
    """A phase's rows: rate, latency, outcomes, CPU."""
    lat, won, cpu = phase["latency_ms"], phase["won_latency_ms"], phase["cpu"]
    errors = sum(phase["errors"].values())
    rows = [
        (f"{name}: attempts decided/s", f"{phase['decided_per_s']:,.0f}"),
        (f"{name}: first send to last answer", f"{phase['elapsed_s']:.2f} s"),
        (
            f"{name}: latency p50/p95/p99/max",
            f"{lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f} / {lat['max']:.1f} ms",
        ),
    ]
    if phase["won"]:
        rows.append((f"{name}: won p50/p99", f"{won['p50']:.1f} / {won['p99']:.1f} ms"))
    if "first_send_after_start_ms" in phase:
        rows.append(
            (f"{name}: first send after starts_at", f"{phase['first_send_after_start_ms']:.1f} ms")
        )
    rows += [
        (f"{name}: {'201 (won)' if outcome == '201' else outcome}", f"{n:,}")
        for outcome, n in phase["outcomes"].items()
    ]
    rows += [
        (f"{name}: errors (no clear reason)", f"{errors:,}"),
        (
            f"{name}: server CPU (% of a core)",
            f"{cpu['servers_pct']:.0f} ({' + '.join(f'{p:.0f}' for p in cpu['per_server_pct'])})",
        ),
        (f"{name}: PostgreSQL CPU", f"{cpu['database_pct']:.0f}"),
        (
            f"{name}: load generators CPU",
            " + ".join(f"{g['cpu_pct']:.0f}" for g in phase["generators"]) + " (while sending)",
        ),
        (f"{name}: everything else (Redis, kernel…)", f"{cpu['other_pct']:.0f}"),
        (f"{name}: machine CPU", f"{cpu['machine_pct']:.0f} of {cpu['machine_capacity_pct']}"),
    ]
    for index, generator in enumerate(phase["generators"]):
        if generator["cpu_pct"] >= BUSY_GENERATOR_PCT:
            rows.append(
                (
                    f"{name}: WARNING",
                    f"load generator {index} at {generator['cpu_pct']:.0f}% of a core:"
                    " it may be the bottleneck",
                )
            )
    return rows


def table_rows(summary: dict) -> list[tuple[str, str]]:
    """The printed table: one (metric, value) row per line."""
    config, audit, target = summary["config"], summary["audit"], summary["target"]
    server_cpu, database_cpu = (summary["cpu_per_attempt_us"][k] for k in ("server", "database"))
    pins = config["generator_cpus"]
    pinned = "not pinned" if None in pins else "CPUs " + ", ".join(map(str, pins))
    if audit["problems"]:
        audit_text = f"FAILED: {len(audit['problems'])} problem(s)"
    elif summary["race_for"] == "voucher":
        audit_text = (
            f"OK: claimed {audit['claimed']}/{audit['total']}, {audit['claims_in_db']} claims,"
            f" at most {audit['most_claimed_by_a_buyer']} per buyer"
        )
    else:
        audit_text = (
            f"OK: sold {audit['sold']}/{audit['quantity']}, {audit['linked_orders']} orders,"
            f" at most {audit['most_claimed_by_a_buyer']} per buyer"
        )
    rows = [
        ("race for", summary["race_for"]),
        ("server processes", f"{config['workers']} ({'Redis' if config['redis'] else 'no Redis'})"),
        (
            "attempts / buyers / units",
            f"{config['attempts']:,} / {config['buyers']:,} / {config['units']:,},"
            f" {config['per_buyer_limit']} per buyer",
        ),
        (
            "load generators",
            f"{config['clients']} x {config['concurrency']} connections, {pinned}",
        ),
        ("countdown left when the sale was started", f"{summary['lead_s']:.2f} s"),
        *phase_rows("race", summary["race"]),
        ("servers quiet after", f"{summary['settle_s']:.1f} s"),
        *phase_rows("sold out", summary["refusals"]),
        ("server CPU per refused attempt", _us(server_cpu["refused"])),
        ("server CPU per won attempt", _us(server_cpu["won"])),
        ("PostgreSQL CPU per refused attempt", _us(database_cpu["refused"])),
        ("PostgreSQL CPU per won attempt", _us(database_cpu["won"])),
    ]
    if summary["unexpected_refusals"]:
        rows.append(("unexpected refusal codes", ", ".join(summary["unexpected_refusals"])))
    rows += [
        ("audit (database)", audit_text),
        (
            f"target >= {TARGET_PER_SECOND:,} attempts/s",
            "met" if target["rate_met"] else "NOT met",
        ),
        (f"target p99 < {TARGET_P99_MS:.0f} ms", "met" if target["p99_met"] else "NOT met"),
    ]
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run, print the table, write JSON; 1 when an attempt had no clear reason or the
    audit failed, 130 when stopped."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [harness.GENERATOR]:
        return generator_main(argv[1])
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up on SIGTERM too
    try:
        result = asyncio.run(run(args))
    except KeyboardInterrupt:
        print("interrupted: generators and servers stopped, database dropped", file=sys.stderr)
        return 130
    except RuntimeError as exc:  # a server or generator failed; everything is stopped
        print(f"flash_claims failed: {exc}", file=sys.stderr)
        return 1
    summary = summarise(args, result)
    title = f"flash_claims benchmark, {args.target} (PostgreSQL, {args.workers} server process(es))"
    print(harness.render_table(title, table_rows(summary)))
    harness.write_json(args.json, summary)
    print(f"JSON: {args.json}")
    if args.sample is not None:
        print(f"stack sampler report (first server, sold-out phase): {args.sample}")
        print_sample(args.sample)
    for error in summary["errors"]:
        print(f"ERROR: {error}", file=sys.stderr)
    for phase in ("race", "refusals"):
        for example in summary[phase]["error_examples"]:
            print(f"  {phase} example: {json.dumps(example)}", file=sys.stderr)
    for problem in summary["audit"]["problems"]:
        print(f"OVERSOLD/UNDERSOLD CHECK FAILED: {problem}", file=sys.stderr)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
