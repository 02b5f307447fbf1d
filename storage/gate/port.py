"""Stock gate port: decides who wins a small, hot stock (a flash sale's units) in one
atomic step, so losers are refused without the database.

A gate keeps, per stock: the window it is sold in, how many units are left, how many
each holder (buyer) has, and the *pending* attempts: won at the gate, not yet known
to be written to the database. The database stays the source of truth; the caller
writes each winner there and then either `settle`s the attempt (written) or
`give_back`s it (not written), and `resync`s the gate from the database whenever the
two may disagree (a crash between deciding and writing, units returned by a
cancelled order). Embedded: `MemoryGate` (one process). Shared: `RedisGate` (a Lua
script per step, so every process decides against the same counters).

Times are milliseconds since the epoch on the caller's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Verdict(StrEnum):
    WON = "won"
    SOLD_OUT = "sold-out"
    OVER_LIMIT = "over-limit"
    NOT_OPEN = "not-open"
    CLOSED = "closed"
    UNKNOWN = "unknown"  # the gate does not hold this stock: load it with `resync`


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    left: int  # units left after this attempt
    held: int  # what the holder has after this attempt (pending included)


@dataclass(frozen=True, slots=True)
class Window:
    """What a stock is sold under: `quantity` units in all, at most `per_holder` each,
    from `opens_ms` until (not including) `closes_ms`."""

    quantity: int
    per_holder: int
    opens_ms: int
    closes_ms: int


@dataclass(frozen=True, slots=True)
class Pending:
    holder: str
    quantity: int
    at_ms: int  # when the gate decided it


@dataclass(frozen=True, slots=True)
class GateState:
    left: int
    pending: dict[str, Pending]  # by attempt id


KEEP_AFTER_WINDOW_MS = 600_000  # how long a stock is kept after its window closes


class StockGate(Protocol):
    async def take(
        self, stock: str, holder: str, quantity: int, attempt: str, now_ms: int
    ) -> Decision:
        """Refuse (sold out, over the holder's limit, outside the window), or take the
        units and record `attempt` as pending. One atomic step."""
        ...

    async def settle(self, stock: str, attempt: str) -> None:
        """The attempt's units are written to the database: stop tracking it."""
        ...

    async def give_back(self, stock: str, attempt: str) -> bool:
        """The attempt was not written: return its units to the stock and the holder.
        Only the first call for a pending attempt does so (True)."""
        ...

    async def state(self, stock: str) -> GateState | None:
        """Units left and the pending attempts; None when the gate does not hold it."""
        ...

    async def resync(
        self,
        stock: str,
        window: Window,
        taken: int,
        holders: dict[str, int],
        drop: list[str],
        *,
        only_if_absent: bool = False,
    ) -> bool:
        """Set the stock from the database's truth (`taken` units, `holders`' counts),
        dropping the pending attempts in `drop` (written, or never to be) and counting
        the remaining pending ones on top; keep it until a while after the window.
        The caller holds the database's lock on the stock, so nothing is written
        meanwhile. With `only_if_absent`, does nothing when the gate holds the stock
        already. True when it set the stock."""
        ...

    async def close(self) -> None: ...
