"""Keeps the stock gate's view of a hot, small stock true to the database: a flash
sale's units, a live session's allocation of a product.

Attempts are decided by the gate (`storage.gate`): one atomic step on a shared counter,
so a sold-out stock, a buyer at the limit or a stock outside its window is refused
without the database. Only winners write, and the database stays the source of truth;
this keeper mends the gate wherever the two can disagree. What a stock is in the
database (its window, units taken, holders' counts, which attempts were written, which
stocks may still be taken) comes from a `StockSource`.

- **First use** (and after Redis lost the keys): the gate is loaded from the database.
- **A winner the database refused** (a sale cancelled, or the gate thought more was
  left than is): its units go back at once, and the gate is resynchronised.
- **A process that died between deciding and writing** leaves a pending attempt. One
  older than `pending_seconds` that was not written is dropped and its units counted as
  left again; a write must refuse decisions older than half that (`fresh_for`, judged
  when it holds the stock's row lock), so a late write cannot sell a unit given back.
  The other half is the margin for clocks that differ between processes.
- **Units returned** by a cancelled or expired order: the owner resynchronises.

A resynchronisation reads the stock under its row lock (`SELECT ... FOR UPDATE`), so no
winner writes meanwhile: left = quantity - taken - what is pending, exactly. Every
process checks the running stocks every `interval` seconds (`tick`) and resynchronises
one only when its pending attempts are stale or the gate shows fewer units than the
database; any number of processes may do so, each under the lock. Once the gate said
sold out, a process says so itself for SOLD_OUT_HINT_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.gate import Decision, StockGate, Verdict, Window
from storage.periodic import Periodic
from storage.single_flight import SingleFlight

log = logging.getLogger("streamcart.gate")
SOLD_OUT_HINT_SECONDS = 0.1
MAX_HINTS = 10_000
# Added to a winner's conditional UPDATE on PostgreSQL: the gate's decision is still
# fresh by the database's clock once the row lock is held (see `fresh_for`).
FRESH_ON_POSTGRES = (
    " AND CAST(:decided_at AS timestamptz) > clock_timestamp() - make_interval(secs => :fresh)"
)
T = TypeVar("T")


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Truth:
    """A stock as the database has it: its window, units taken, each holder's count."""

    window: Window
    taken: int
    holders: dict[str, int]


class StockSource(Protocol):
    async def truth(self, session: AsyncSession, stock: str) -> Truth | None:
        """The stock read under its row lock; None when it does not exist."""
        ...

    async def written(self, session: AsyncSession, attempts: Collection[str]) -> set[str]:
        """Which of these attempts are in the database (those not known may be kept
        pending a while longer, and then dropped: never a unit sold twice)."""
        ...

    async def running(self, session: AsyncSession, since: datetime) -> list[tuple[str, int]]:
        """The stocks that may still be taken (or were, after `since`), with what the
        database says is left of each."""
        ...


class StockKeeper:
    def __init__(
        self,
        name: str,
        sessions: async_sessionmaker[AsyncSession],
        gate: StockGate,
        source: StockSource,
        pending_seconds: float = 30.0,
        interval: float = 1.0,
        renew_seconds: float | None = None,
    ) -> None:
        self.name = name
        self._renew_seconds = renew_seconds
        self._resynced: dict[str, float] = {}  # stock -> when this process last set it
        self._sessions = sessions
        self._gate = gate
        self._source = source
        self.pending_ms = int(pending_seconds * 1000)
        self.fresh_for = timedelta(seconds=pending_seconds / 2)
        self._sold_out: dict[str, tuple[float, int]] = {}  # until (monotonic), units left
        self._loads: SingleFlight[Any] = SingleFlight()
        self._periodic = Periodic(name, interval, self.tick)

    async def start(self) -> None:
        await self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def take(
        self, stock: str, holder: str, quantity: int, attempt: str, now: datetime
    ) -> Decision:
        """The gate's decision; the stock is loaded into the gate on first use (UNKNOWN
        still when the database has no such stock)."""
        hint = self._sold_out.get(stock)
        if hint is not None and hint[1] < quantity and hint[0] > time.monotonic():
            return Decision(Verdict.SOLD_OUT, hint[1], 0)
        decision = await self._gate.take(stock, holder, quantity, attempt, epoch_ms(now))
        if decision.verdict is Verdict.UNKNOWN:
            await self.load(stock)
            decision = await self._gate.take(stock, holder, quantity, attempt, epoch_ms(now))
        if decision.verdict is Verdict.SOLD_OUT:
            if len(self._sold_out) >= MAX_HINTS:
                self._sold_out.clear()
            self._sold_out[stock] = (time.monotonic() + SOLD_OUT_HINT_SECONDS, decision.left)
        return decision

    async def load(self, stock: str) -> None:
        """Put the stock into the gate unless it holds it already (once per process at a
        time: a burst of first attempts shares one load)."""
        await self._loads.run(stock, lambda: self.resync(stock, only_if_absent=True))

    async def written(self, stock: str, attempt: str) -> None:
        await self._gate.settle(stock, attempt)

    async def write_winner(
        self,
        stock: str,
        attempt: str,
        write: Callable[[], Awaitable[T]],
        disagrees: Callable[[BaseException], bool],
    ) -> T:
        """Write a winner the gate chose: its attempt settles once written; if the write
        fails its units go back, and the gate is resynchronised when `disagrees(error)`
        (the database refused what the gate allowed)."""
        try:
            result = await write()
        except BaseException as error:
            resync = disagrees(error)
            await asyncio.shield(self.not_written(stock, attempt, resync=resync))
            raise
        await self.written(stock, attempt)
        return result

    async def not_written(self, stock: str, attempt: str, *, resync: bool) -> None:
        """The winner's write failed: its units go back; `resync` when the database
        disagreed with the gate."""
        await self._gate.give_back(stock, attempt)
        self._sold_out.pop(stock, None)
        if resync:
            await self.resync(stock)

    async def resync(self, stock: str, *, only_if_absent: bool = False) -> None:
        """Set the gate from the database, under the stock's row lock (see the module)."""
        self._sold_out.pop(stock, None)
        self._resynced[stock] = time.monotonic()
        async with self._sessions.begin() as session:
            truth = await self._source.truth(session, stock)
            if truth is None:
                return
            state = await self._gate.state(stock)
            if state is not None and only_if_absent:
                return
            pending = {} if state is None else state.pending
            written = await self._source.written(session, pending) if pending else set()
            stale_before = epoch_ms(datetime.now(UTC)) - self.pending_ms
            void = [a for a, p in pending.items() if a not in written and p.at_ms < stale_before]
            await self._gate.resync(
                stock,
                truth.window,
                truth.taken,
                truth.holders,
                [*written, *void],
                only_if_absent=only_if_absent,
            )
        if void:
            log.warning(
                "attempts dropped: decided but never written",
                extra={"keeper": self.name, "stock": stock, "attempts": len(void)},
            )

    async def tick(self) -> int:
        """Resynchronise every running stock whose gate has stale pending attempts or
        shows fewer units than the database, or (with `renew_seconds`, for stocks whose
        window the source can only lease) that this process set longer ago than that;
        returns how many it resynchronised."""
        now = datetime.now(UTC)
        async with self._sessions() as session:
            running = await self._source.running(
                session, now - timedelta(milliseconds=self.pending_ms)
            )
        mended = 0
        stale_before = epoch_ms(now) - self.pending_ms
        renew_before = time.monotonic() - (self._renew_seconds or float("inf"))
        if len(self._resynced) > MAX_HINTS:
            self._resynced.clear()
        for stock, remaining in running:
            state = await self._gate.state(stock)
            if state is None:
                continue
            if self._resynced.get(stock, 0.0) < renew_before:
                await self.resync(stock)
                mended += 1
                continue
            pending = sum(p.quantity for p in state.pending.values())
            stale = any(p.at_ms < stale_before for p in state.pending.values())
            if stale or state.left + pending < remaining:
                await self.resync(stock)
                mended += 1
        return mended
