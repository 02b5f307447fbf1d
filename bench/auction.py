"""A live auction on PostgreSQL: B Socket.IO bidders on one auction, bids decided per
second, the time from a bid to every viewer seeing it, and a bid-history audit.

    .venv/bin/python bench/auction.py                   # 1,000 bidders, 2 server processes
    .venv/bin/python bench/auction.py --quick           # 50 bidders, 2 s: a smoke run

A fresh database is created, migrated and seeded directly (a shop, a live session that is
live with one product on show, the bidders with minted access tokens). `--workers`
server processes share it and Redis. Load-generator processes connect the bidders
(websocket transport, spread over the servers) and join each to the session: every
bidder is also a viewer. The seller starts a sudden-death auction over REST; from its
start, at a fixed total rate spread evenly over the bidders (each at a random phase),
a bidder sends `auction:bid` for the highest price it has seen plus 1 to 5 increments
(so racing bids mostly beat the price they saw, and some lose to one decided first).

Figures: bids decided (answered: accepted or refused with a reason) and accepted per
second over the bidding window; p50/p99 from a bid's send to its answer; and for each
accepted bid, from its send to the moment the last of the B viewers saw it or a higher
bid (`auction:bid` pushes are coalesced per auction per process: viewers get the newest
price, so a higher bid seen counts as this one seen). Audit: the bid history has
exactly the accepted answers, strictly increasing in the order decided; after the end
exactly one order, the winner's, at the winning price, and every viewer got
`auction:ended`. Prints a table, writes JSON, exits 1 when the audit fails or a bid had
no clear answer. This machine has 2 cores: servers, PostgreSQL, Redis and the load
generators share them.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import random
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import harness
import uvloop
from checkout import REDIS_URL, git_commit, print_sample, server_settings
from flash_claims import Fixture, Generator, emit, seed, sleep_until, stop_generators
from sqlalchemy import text

from storage.sql import make_engine

STARTING_PRICE = 100_000
INCREMENT = 1_000
MAX_STEPS = 5  # a bid is the price seen plus 1..MAX_STEPS increments
LEAD_SECONDS = 2.0  # from starting the auction to the first bid
END_MARGIN = 0.5  # bidders stop this long before the (fixed) end
DRAIN_SECONDS = 3.0  # after the end: late pushes and `auction:ended`
TARGET_DECIDED_PER_SECOND = 2_000
TARGET_P99_MS = 100.0
# a bid sent near the end may be decided after it, when the servers lag behind
EXPECTED_REFUSALS = {"bid-too-low", "auction-ended"}
GENERATOR_READY_TIMEOUT = 120.0
CONNECT_CONCURRENCY = 50
ANSWER_TIMEOUT = 10.0
DEFAULT_JSON = harness.RESULTS / "auction.json"
SCRIPT = Path(__file__).resolve()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Socket.IO bidders on one live auction on PostgreSQL: rate, latency, audit."
    )
    parser.add_argument("--bidders", type=int, default=1_000, help="bidders, each a viewer (1000)")
    parser.add_argument("--workers", type=int, default=2, help="server processes (2)")
    parser.add_argument("--clients", type=int, default=2, help="load generator processes (2)")
    parser.add_argument("--rate", type=float, default=2_500, help="bids sent per second (2500)")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds of bidding (8)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 50 bidders, 2 s")
    parser.add_argument(
        "--sample", type=Path, help="run the first server under bench/stack_sampler.py"
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.bidders, args.seconds, args.rate = 50, 2.0, 200.0
    problems = [
        not 2 <= args.bidders <= 5_000 and "--bidders must be 2..5000",
        not 1 <= args.workers <= 4 and "--workers must be 1..4",
        not 1 <= args.clients <= 8 and "--clients must be 1..8",
        not 1 <= args.rate <= 20_000 and "--rate must be 1..20000",
        not 1 <= args.seconds <= 60 and "--seconds must be 1..60",
    ]
    for problem in problems:
        if problem:
            parser.error(problem)
    return args


# --- a load generator process -----------------------------------------------------------


class Bidder:
    """One Socket.IO client over a websocket, speaking just what it needs of Engine.IO 4
    and Socket.IO 5 (connect, ping, events, acks): a python-socketio client costs about
    80 us of CPU per message received, so a thousand viewers' deliveries would make the
    load generator the bottleneck. It bids, and as a viewer notes each `auction:bid`."""

    def __init__(self, http: aiohttp.ClientSession, url: str, token: str) -> None:
        self.http, self.url, self.token = http, url, token
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task | None = None
        self.acks: dict[int, asyncio.Future] = {}
        self.next_ack = 0
        self.seen = 0  # the highest price it knows of: pushed, or its own accepted bid
        self.viewed = 0  # the highest price pushed to it
        self.receipts: list[tuple[float, int]] = []  # (when, amount), each a new highest
        self.ended = 0

    async def join(self, live_session_id: str) -> None:
        ws = await self.http.ws_connect(
            f"{self.url}/socket.io/?EIO=4&transport=websocket", autoping=False
        )
        self.ws = ws
        opened = await ws.receive_str(timeout=ANSWER_TIMEOUT)  # "0{sid, pingInterval...}"
        if not opened.startswith("0"):
            raise RuntimeError(f"unexpected Engine.IO open: {opened[:80]}")
        await ws.send_str("40" + json.dumps({"token": self.token}))
        connected = await ws.receive_str(timeout=ANSWER_TIMEOUT)
        if not connected.startswith("40"):
            raise RuntimeError(f"Socket.IO connect refused: {connected[:200]}")
        self.reader = asyncio.create_task(self._read(ws))
        joined = await self.call("session:join", {"live_session_id": live_session_id})
        if not joined.get("ok"):
            raise RuntimeError(f"session:join refused: {joined}")

    async def call(self, event: str, data: dict) -> dict:
        assert self.ws is not None
        self.next_ack += 1
        ack = self.next_ack
        self.acks[ack] = asyncio.get_running_loop().create_future()
        await self.ws.send_str(f"42{ack}" + json.dumps([event, data]))
        async with asyncio.timeout(ANSWER_TIMEOUT):
            return await self.acks[ack]

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            text_ = message.data
            if text_ == "2":  # the server's ping
                await ws.send_str("3")
            elif text_.startswith("43"):  # an ack: 43<id>[answer]
                bracket = text_.index("[")
                future = self.acks.pop(int(text_[2:bracket]), None)
                if future is not None and not future.done():
                    future.set_result(json.loads(text_[bracket:])[0])
            elif text_.startswith('42["auction:bid"'):
                amount = json.loads(text_[2:])[1]["amount"]
                if amount > self.viewed:
                    self.viewed = amount
                    self.seen = max(self.seen, amount)
                    self.receipts.append((time.time(), amount))
            elif text_.startswith('42["auction:ended"'):
                self.ended += 1
        for future in self.acks.values():
            if not future.done():
                future.set_exception(ConnectionError("socket closed"))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await self.reader


class BidLoad:
    def __init__(self, setup: dict) -> None:
        self.setup = setup
        urls, tokens = setup["urls"], setup["tokens"]
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self.bidders = [
            Bidder(self.http, urls[(setup["first"] + i) % len(urls)], token)
            for i, token in enumerate(tokens)
        ]
        self.accepted: list[tuple[int, float, float]] = []  # (amount, sent, answered)
        self.refused: Counter[str] = Counter()
        self.answer_ms: list[float] = []
        self.first_sent = float("inf")
        self.last_answered = 0.0

    async def warm(self) -> None:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one(bidder: Bidder) -> None:
            async with gate:
                await bidder.join(self.setup["live_session_id"])

        await asyncio.gather(*(one(b) for b in self.bidders))

    async def run(self, command: dict) -> dict:
        start, stop = command["start_at"], command["stop_at"]
        interval = len(self.bidders) * self.setup["clients"] / command["rate"]
        rng = random.Random(self.setup["first"])
        busy_before = time.process_time()
        await asyncio.gather(
            *(
                self._bid_from(
                    b, command["auction_id"], start + rng.random() * interval, stop, interval, rng
                )
                for b in self.bidders
            )
        )
        await sleep_until(command["end_at"] + DRAIN_SECONDS)
        return {
            "accepted": self.accepted,
            "refused": dict(self.refused),
            "answer_ms": self.answer_ms,
            "first_sent": self.first_sent,
            "last_answered": self.last_answered,
            "receipts": [b.receipts for b in self.bidders],
            "ended_seen": sum(1 for b in self.bidders if b.ended),
            "cpu_s": round(time.process_time() - busy_before, 3),
        }

    async def _bid_from(
        self, bidder: Bidder, auction_id: str, at: float, stop: float, interval: float, rng
    ) -> None:
        while at < stop:
            await sleep_until(at)
            amount = max(bidder.seen, STARTING_PRICE - INCREMENT) + INCREMENT * rng.randint(
                1, MAX_STEPS
            )
            sent = time.time()
            self.first_sent = min(self.first_sent, sent)
            try:
                answer = await bidder.call(
                    "auction:bid", {"auction_id": auction_id, "amount": amount}
                )
            except Exception as exc:  # no answer: counted, never guessed
                self.refused[f"no answer ({type(exc).__name__})"] += 1
            else:
                answered = time.time()
                self.last_answered = max(self.last_answered, answered)
                self.answer_ms.append(1000 * (answered - sent))
                if answer.get("ok"):
                    self.accepted.append((answer["amount"], sent, answered))
                    bidder.seen = max(bidder.seen, answer["amount"])
                else:
                    self.refused[answer["error"]["code"]] += 1
            at += interval

    async def close(self) -> None:
        await asyncio.gather(*(b.close() for b in self.bidders), return_exceptions=True)
        await self.http.close()


async def generate(setup: dict) -> None:
    """Connect and join, say ready, run the one command the parent sends, report."""
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    load = BidLoad(setup)
    try:
        await load.warm()
        emit({"event": "ready"})
        command = json.loads(await commands.readline())
        emit({"event": "result", **await load.run(command)})
    except Exception as exc:
        emit({"event": "error", "message": f"{type(exc).__name__}: {exc}"})
        raise
    finally:
        await load.close()


def generator_main(setup_path: str) -> int:
    try:
        uvloop.run(generate(json.loads(Path(setup_path).read_text())))
    except KeyboardInterrupt:
        return 130
    return 0


# --- the parent -------------------------------------------------------------------------


async def start_generators(
    args: argparse.Namespace, urls: list[str], fixture: Fixture, work_dir: Path, into: list
) -> None:
    for index in range(args.clients):
        first = index * args.bidders // args.clients
        last = (index + 1) * args.bidders // args.clients
        setup = {
            "urls": urls,
            "tokens": fixture.buyer_tokens[first:last],
            "first": first,
            "clients": args.clients,
            "live_session_id": fixture.live_session_id,
        }
        path = work_dir / f"generator-{index}.json"
        process = await harness.start_generator(SCRIPT, setup, path, 256 * 1024 * 1024)
        into.append(Generator(index, process, None))
    for generator in into:
        await generator.receive(GENERATOR_READY_TIMEOUT)


async def start_auction(url: str, fixture: Fixture, seconds: float) -> dict:
    body = {
        "product_id": fixture.product_id,
        "starting_price": STARTING_PRICE,
        "min_increment": INCREMENT,
        "duration_seconds": max(10, int(LEAD_SECONDS + seconds + END_MARGIN + 1)),
        "ending": "sudden_death",
    }
    headers = {"Authorization": f"Bearer {fixture.seller_token}"}
    async with aiohttp.ClientSession(base_url=url) as http:
        path = f"/api/live-sessions/{fixture.live_session_id}/auctions"
        return await harness.expect_json(await http.post(path, json=body, headers=headers), 201)


async def audit(database_url: str, auction_id: str, product_id: str) -> dict:
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT status, current_price, leader_id, bid_count, order_id"
                        " FROM auctions WHERE id = :id"
                    ),
                    {"id": auction_id},
                )
            ).one()
            bids = (
                await conn.execute(
                    text(
                        "SELECT sequence, amount, bidder_id FROM auction_bids"
                        " WHERE auction_id = :id ORDER BY sequence"
                    ),
                    {"id": auction_id},
                )
            ).all()
            orders = (
                await conn.execute(
                    text(
                        "SELECT o.id, o.buyer_id, i.unit_price FROM orders o"
                        " JOIN order_items i ON i.order_id = o.id WHERE i.product_id = :product"
                    ),
                    {"product": product_id},
                )
            ).all()
    finally:
        await engine.dispose()
    return {"auction": row._asdict(), "bids": [b._asdict() for b in bids], "orders": orders}


def audit_problems(found: dict, accepted: list[int]) -> list[str]:
    auction, bids, orders = found["auction"], found["bids"], found["orders"]
    amounts = [b["amount"] for b in bids]
    problems = []
    if [b["sequence"] for b in bids] != list(range(1, len(bids) + 1)):
        problems.append("bid sequence is not 1..n")
    if any(x >= y for x, y in itertools.pairwise(amounts)):
        problems.append("bid history not strictly increasing in the order decided")
    if sorted(accepted) != amounts:
        problems.append(f"{len(accepted)} accepted answers but {len(amounts)} bids stored")
    if auction["bid_count"] != len(bids):
        problems.append(f"bid_count {auction['bid_count']} != {len(bids)} bids")
    if auction["status"] != "ended":
        problems.append(f"auction {auction['status']}, not ended")
    if bids and auction["current_price"] != amounts[-1]:
        problems.append("the auction's price is not the highest bid")
    expected = [(auction["order_id"], bids[-1]["bidder_id"], amounts[-1])] if bids else []
    if [tuple(o) for o in orders] != expected:
        problems.append(f"orders {list(map(tuple, orders))}, expected exactly {expected}")
    return problems


def seen_by_all(results: list[dict], accepted: list[tuple[int, float, float]]) -> dict:
    """Per accepted bid, the time from its send until the last viewer saw it or a higher
    bid; and how many (bid, viewer) pairs never did."""
    viewers = [
        ([t for t, _ in r], [a for _, a in r]) for result in results for r in result["receipts"]
    ]
    latencies, missing = [], 0
    for amount, sent, _ in accepted:
        last = 0.0
        for times, amounts in viewers:
            index = bisect.bisect_left(amounts, amount)
            if index == len(amounts):
                missing += 1
            else:
                last = max(last, times[index])
        latencies.append(1000 * (last - sent))
    return {"latencies_ms": sorted(latencies), "missing": missing, "viewers": len(viewers)}


async def run(args: argparse.Namespace) -> dict:
    jwt_secret = secrets.token_urlsafe(48)
    async with harness.scratch_database("streamcart_bench_auction") as database_url:
        fixture = await seed(database_url, args.bidders, 10, jwt_secret)
        settings = server_settings(database_url, jwt_secret, args.workers, None)
        harness.require_loopback(REDIS_URL)
        settings["STREAMCART_REDIS_URL"] = REDIS_URL
        settings["STREAMCART_REDIS_PREFIX"] = f"bench-{secrets.token_hex(4)}:"
        with tempfile.TemporaryDirectory(prefix="streamcart-bench-") as work_dir:
            servers: list[harness.Server] = []
            generators: list[Generator] = []
            try:
                await harness.start_sampled_servers(
                    servers, settings, Path(work_dir), args.workers, args.sample
                )
                urls = [s.url for s in servers]
                joining = time.perf_counter()
                await start_generators(args, urls, fixture, Path(work_dir), generators)
                join_s = time.perf_counter() - joining
                auction = await start_auction(urls[0], fixture, args.seconds)
                start_at = time.time() + LEAD_SECONDS
                end_at = datetime.fromisoformat(auction["ends_at"]).timestamp()
                command = {
                    "auction_id": auction["id"],
                    "start_at": start_at,
                    "stop_at": start_at + args.seconds,
                    "end_at": end_at,
                    "rate": args.rate,
                }
                before = harness.cpu_sample([s.pid for s in servers])
                for generator in generators:
                    generator.send(command)
                results = [
                    await g.receive(end_at - time.time() + DRAIN_SECONDS + 60) for g in generators
                ]
                cpu = harness.cpu_usage(before, harness.cpu_sample([s.pid for s in servers]))
                harness.check_alive(servers)
            finally:
                await stop_generators(generators)
                harness.stop_servers(servers)
        found = await audit(database_url, auction["id"], fixture.product_id)
    return {
        "auction": auction,
        "join_s": round(join_s, 2),
        "results": results,
        "found": found,
        "cpu": cpu,
    }


def summarise(args: argparse.Namespace, measured: dict) -> dict:
    results = measured["results"]
    accepted = sorted((a for r in results for a in r["accepted"]), key=lambda a: a[0])
    refused = Counter()
    for result in results:
        refused.update(result["refused"])
    answer_ms = sorted(ms for r in results for ms in r["answer_ms"])
    fan = seen_by_all(results, accepted)
    decided = len(accepted) + sum(n for code, n in refused.items() if not code.startswith("no "))
    # from the first bid sent to the last answer: a backlog answered late counts its time
    window = max(r["last_answered"] for r in results) - min(r["first_sent"] for r in results)
    no_answer = sum(n for code, n in refused.items() if code.startswith("no "))
    problems = audit_problems(measured["found"], [a[0] for a in accepted])
    ended_seen = sum(r["ended_seen"] for r in results)
    if ended_seen != args.bidders:
        problems.append(f"{ended_seen} of {args.bidders} viewers saw auction:ended")
    if fan["missing"]:
        problems.append(f"{fan['missing']} (bid, viewer) pairs never seen")
    if no_answer:
        problems.append(f"{no_answer} bids without an answer")
    unexpected = set(refused) - EXPECTED_REFUSALS - {c for c in refused if c.startswith("no ")}
    if unexpected:
        problems.append(f"unexpected refusals: {sorted(unexpected)}")
    latencies = fan["latencies_ms"]
    figures = {
        "decided_per_s": round(decided / window, 1),
        "accepted_per_s": round(len(accepted) / window, 1),
        "offered_per_s": args.rate,
        "window_s": round(window, 2),
        "decided": decided,
        "accepted": len(accepted),
        "refused": dict(refused),
        "answer_ms": {name: round(harness.percentile(answer_ms, q), 1) for name, q in PCTS},
        "seen_by_all_ms": {name: round(harness.percentile(latencies, q), 1) for name, q in PCTS},
    }
    return {
        "benchmark": "auction",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "settings": vars(args) | {"json": str(args.json), "sample": str(args.sample or "")},
        "join_s": measured["join_s"],
        **figures,
        "viewers": fan["viewers"],
        "cpu": measured["cpu"],
        "generator_cpu_s": [r["cpu_s"] for r in results],
        "final_price": measured["found"]["auction"]["current_price"],
        "targets": {
            "decided_per_s": figures["decided_per_s"] >= TARGET_DECIDED_PER_SECOND,
            "p99_seen_by_all": figures["seen_by_all_ms"]["p99"] < TARGET_P99_MS,
        },
        "problems": problems,
        "ok": not problems,
    }


PCTS = (("p50", 50), ("p99", 99), ("max", 100))


def table_rows(summary: dict) -> list[tuple[str, str]]:
    answer, seen, cpu = summary["answer_ms"], summary["seen_by_all_ms"], summary["cpu"]
    return [
        ("bidders (each a viewer)", f"{summary['viewers']:,}"),
        ("join all, s", f"{summary['join_s']:.1f}"),
        ("bids offered / s", f"{summary['offered_per_s']:,.0f}"),
        ("bids decided / s (first send to last answer)", f"{summary['decided_per_s']:,.0f}"),
        ("bids accepted / s", f"{summary['accepted_per_s']:,.0f}"),
        ("refused (reason: count)", ", ".join(f"{k}: {v}" for k, v in summary["refused"].items())),
        ("bid -> answer p50 / p99 ms", f"{answer['p50']} / {answer['p99']}"),
        (
            "bid -> every viewer p50 / p99 / max ms",
            f"{seen['p50']} / {seen['p99']} / {seen['max']}",
        ),
        ("servers CPU % (per server)", f"{cpu['servers_pct']} {cpu['per_server_pct']}"),
        ("PostgreSQL CPU %", f"{cpu['database_pct']}"),
        ("machine CPU % of", f"{cpu['machine_pct']} of {cpu['machine_capacity_pct']}"),
        ("final price, VND", f"{summary['final_price']:,}"),
        ("audit", "ok" if summary["ok"] else "FAILED"),
        (f"target >= {TARGET_DECIDED_PER_SECOND:,} decided/s", _met(summary, "decided_per_s")),
        (f"target p99 < {TARGET_P99_MS:.0f} ms", _met(summary, "p99_seen_by_all")),
    ]


def _met(summary: dict, target: str) -> str:
    return "met" if summary["targets"][target] else "NOT met"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [harness.GENERATOR]:
        return generator_main(argv[1])
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        measured = asyncio.run(run(args))
    except KeyboardInterrupt:
        print("interrupted: generators and servers stopped, database dropped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"auction bench failed: {exc}", file=sys.stderr)
        return 1
    summary = summarise(args, measured)
    title = f"auction benchmark (PostgreSQL, {args.workers} server process(es))"
    print(harness.render_table(title, table_rows(summary)))
    harness.write_json(args.json, summary)
    print(f"JSON: {args.json}")
    if args.sample is not None:
        print(f"stack sampler report (first server, whole run): {args.sample}")
        print_sample(args.sample)
    for problem in summary["problems"]:
        print(f"AUDIT FAILED: {problem}", file=sys.stderr)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
