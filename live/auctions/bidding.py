"""Deciding a bid: one conditional UPDATE of the auction row, and the bid row after it.

The UPDATE raises the price only while the auction runs, its end has not passed and
the amount is at least the current price plus the increment (or the starting price
before any bid); in the same statement it moves the end for anti-sniping (a bid in the
last N seconds pushes the end to N seconds after it) or to the bid itself for
buy-it-now. The row lock makes racing bids go one after the other whichever process
sent them, and each sees the price the one before left: accepted amounts are strictly
increasing by construction, and the unique (auction, amount) index backs that up.

On PostgreSQL the clock is the database's (`clock_timestamp()`, read once per bid), so
two replicas with drifting clocks still agree on the end; SQLite has one process, and
its clock is ours.

Racing bids are written together (`GroupCommit`): a batch holds the row lock once and
commits once. On PostgreSQL a batch's bids go in one pipelined round trip (asyncpg's
`executemany` of the UPDATE with the bid row's INSERT, in order, in one implicit
transaction); after its commit, outside the row lock, one query reads which were
accepted and, for the others, the auction as it is then (a bid refused stays
refusable: the price only rises, and an auction over stays over). Round trips, not
the database's work, limit the rate of one hot row, all the more as each waits for a
busy event loop to resume the batch. Elsewhere each bid has its own statements and
savepoint.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Integer, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from live.auctions.models import AuctionStatus
from storage.ids import new_id
from storage.sql import UtcDateTime
from storage.sql.driver_pool import DriverPool
from storage.sql.group_commit import GroupCommit
from storage.sql.retry import retrying
from storage.sql.statements import OnSession, driver_sql
from storage.web import Problem

MAX_BATCH = 256
_BUYS_NOW = "buy_now_price IS NOT NULL AND :amount >= buy_now_price"


def _raise(now: str, later: str, clock: str) -> str:
    """The bid's UPDATE; `now` and `later` (now + the anti-sniping window) are SQL
    expressions of our own, read from `clock` on PostgreSQL."""
    return (
        "UPDATE auctions SET"  # noqa: S608
        f" current_price = CASE WHEN {_BUYS_NOW} THEN buy_now_price ELSE :amount END,"
        " leader_id = :bidder_id, bid_count = bid_count + 1,"
        f" ends_at = CASE WHEN {_BUYS_NOW} THEN {now}"
        f" WHEN ends_at < {later} THEN {later} ELSE ends_at END"
        f"{clock} WHERE id = :id AND status = 'running' AND ends_at > {now}"
        " AND :amount >= COALESCE(current_price + min_increment, starting_price)"
        f" RETURNING current_price AS amount, ends_at, bid_count, {now} AS placed_at,"
        " buy_now_price"
    )


_RAISE = (
    text(
        _raise(":now", ":later", "")  # noqa: S608
        + ", (SELECT display_name FROM users WHERE id = :bidder_id) AS bidder_name"
    )
    .bindparams(bindparam("now", type_=UtcDateTime()), bindparam("later", type_=UtcDateTime()))
    .columns(amount=BigInteger, ends_at=UtcDateTime(), bid_count=Integer, placed_at=UtcDateTime())
)
_RECORD = text(
    "INSERT INTO auction_bids (id, auction_id, bidder_id, sequence, amount, placed_at, ends_at)"
    " VALUES (:bid_id, :id, :bidder_id, :sequence, :amount, :placed_at, :ends_at)"
).bindparams(
    bindparam("placed_at", type_=UtcDateTime()),
    bindparam("ends_at", type_=UtcDateTime()),
    bindparam("amount", type_=BigInteger()),
)
_READ_STATE = text(
    "SELECT status, current_price, min_increment, starting_price, ends_at <= :now AS over"
    " FROM auctions WHERE id = :id"
).bindparams(bindparam("now", type_=UtcDateTime()))
_RAISE_AND_RECORD_ON_POSTGRES, _RAISE_PARAMETERS = driver_sql(
    text(
        "WITH clock AS (SELECT clock_timestamp() AS now), moved AS ("  # noqa: S608
        + _raise("clock.now", "clock.now + make_interval(secs => extend_seconds)", " FROM clock")
        + ") INSERT INTO auction_bids"
        " (id, auction_id, bidder_id, sequence, amount, placed_at, ends_at)"
        " SELECT :bid_id, :id, :bidder_id, bid_count, amount, placed_at, ends_at FROM moved"
    )
)
# Each auction of the batch as it is now, with each of the batch's bids it accepted.
_OUTCOMES_ON_POSTGRES = (
    "SELECT a.id AS auction_id, a.status, a.current_price, a.min_increment,"
    " a.starting_price, a.buy_now_price, a.ends_at <= clock_timestamp() AS over,"
    " b.id, b.amount, b.sequence AS bid_count, b.placed_at, b.ends_at,"
    " u.display_name AS bidder_name FROM auctions a"
    " LEFT JOIN auction_bids b ON b.auction_id = a.id AND b.id = ANY($1::varchar[])"
    " LEFT JOIN users u ON u.id = b.bidder_id WHERE a.id = ANY($2::varchar[])"
)


@dataclass(frozen=True, slots=True)
class Bid:
    """A bid as the database accepted it."""

    auction_id: str
    bidder_id: str
    bidder_name: str
    amount: int
    bid_count: int
    placed_at: datetime
    ends_at: datetime
    extended: bool
    bought: bool  # at the buy-it-now price: the auction ends with it


@dataclass(slots=True)
class _Pending:
    """A bid in a PostgreSQL batch; `outcome` is set once the batch committed and read
    by its caller then (a refusal is a value, so the batch commits the others)."""

    bid: dict[str, Any]
    window: int
    outcome: Bid | Problem | None = None


class BidWriter:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], driver_pool: DriverPool | None
    ) -> None:
        self._pool = driver_pool
        self._group: GroupCommit[Any]
        if driver_pool is None:
            self._group = GroupCommit(
                sessions.begin, lambda session: session.begin_nested(), retry=retrying
            )
        else:
            self._group = GroupCommit(
                lambda: _batch(driver_pool),
                lambda batch: contextlib.nullcontext(),  # a work only queues its bid
                retry=retrying,
                max_batch=MAX_BATCH,
            )

    async def place(self, auction_id: str, bidder_id: str, amount: int, window: int) -> Bid:
        """The accepted bid, or a refusal (`Problem`): `auction-ended`, `bid-too-low`...
        `window` is the auction's anti-sniping window in seconds (0: sudden death)."""
        bid = {"id": auction_id, "bidder_id": bidder_id, "amount": amount, "bid_id": new_id()}
        if self._pool is None:
            return await self._group.run(lambda session: _decide_in(session, bid, window))

        async def queue(batch: _Batch) -> _Pending:
            return batch.add(_Pending(bid, window))

        pending = await self._group.run(queue)
        if isinstance(pending.outcome, Problem):
            raise pending.outcome
        assert pending.outcome is not None
        return pending.outcome


class _Batch:
    """The bids of one PostgreSQL batch: queued by their works, decided on the way out."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.bids: list[_Pending] = []

    def add(self, pending: _Pending) -> _Pending:
        self.bids.append(pending)
        return pending

    async def decide(self) -> None:
        """Every queued bid in order, in one pipelined round trip and one transaction."""
        if self.bids:
            await self.connection.executemany(
                _RAISE_AND_RECORD_ON_POSTGRES,
                [[p.bid[name] for name in _RAISE_PARAMETERS] for p in self.bids],
            )

    async def read_outcomes(self) -> None:
        """What became of each bid, in one query once the batch committed: the row lock
        is not held meanwhile, and a refusal's reason stays true (module docstring)."""
        if not self.bids:
            return
        rows = await self.connection.fetch(
            _OUTCOMES_ON_POSTGRES,
            [p.bid["bid_id"] for p in self.bids],
            list({p.bid["id"] for p in self.bids}),
        )
        states = {row["auction_id"]: row for row in rows}
        accepted = {row["id"]: row for row in rows if row["id"] is not None}
        for pending in self.bids:
            row = accepted.get(pending.bid["bid_id"])
            if row is not None:
                pending.outcome = _accepted(pending.bid, row, pending.window)
            else:
                pending.outcome = _refusal(states.get(pending.bid["id"]))


@contextlib.asynccontextmanager
async def _batch(pool: DriverPool) -> AsyncIterator[_Batch]:
    """No BEGIN and COMMIT of our own: asyncpg's `executemany` is one implicit
    transaction (all or nothing), which saves two round trips per batch."""
    async with pool.acquire() as connection:
        batch = _Batch(connection)
        yield batch
        await batch.decide()
        await batch.read_outcomes()


async def _decide_in(session: AsyncSession, bid: dict[str, Any], window: int) -> Bid:
    db = OnSession(session)
    now = datetime.now(UTC)
    clock = {"now": now, "later": now + timedelta(seconds=window)}
    row = await db.row(_RAISE, {**bid, **clock})
    if row is None:
        raise _refusal(await db.row(_READ_STATE, {**bid, **clock}))
    await db.execute(
        _RECORD,
        {
            **bid,
            "sequence": row["bid_count"],
            "amount": row["amount"],
            "placed_at": row["placed_at"],
            "ends_at": row["ends_at"],
        },
    )
    return _accepted(bid, row, window)


def _accepted(bid: dict[str, Any], row: Any, window: int) -> Bid:
    placed_at, ends_at, amount = row["placed_at"], row["ends_at"], row["amount"]
    return Bid(
        auction_id=bid["id"],
        bidder_id=bid["bidder_id"],
        bidder_name=row["bidder_name"] or "",
        amount=amount,
        bid_count=row["bid_count"],
        placed_at=placed_at,
        ends_at=ends_at,
        extended=bool(window) and ends_at == placed_at + timedelta(seconds=window),
        bought=row["buy_now_price"] is not None and amount >= row["buy_now_price"],
    )


def _refusal(state: Any) -> Problem:
    """Why the UPDATE matched nothing, from the auction as it is after it."""
    if state is None:
        return not_found()
    if state["status"] == AuctionStatus.CANCELLED:
        return Problem(409, "auction-cancelled", "This auction was cancelled.")
    if state["status"] != AuctionStatus.RUNNING or state["over"]:
        return Problem(409, "auction-ended", "This auction has ended.")
    minimum = (
        state["starting_price"]
        if state["current_price"] is None
        else state["current_price"] + state["min_increment"]
    )
    return Problem(409, "bid-too-low", f"The lowest bid now is {minimum} VND.", minimum=minimum)


def not_found() -> Problem:
    return Problem(404, "auction-not-found", "No such auction.")
