"""`StockGate` in this process's memory: each step runs without awaiting, so it is
atomic on the event loop. For one process (embedded); with several, each has its own
gate, which then only filters and the database still decides."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from storage.gate.port import (
    KEEP_AFTER_WINDOW_MS,
    Decision,
    GateState,
    Pending,
    Verdict,
    Window,
)


@dataclass
class _Stock:
    window: Window
    left: int
    holders: dict[str, int]
    pending: dict[str, Pending] = field(default_factory=dict)
    keep_until_ms: int = 0


class MemoryGate:
    def __init__(self) -> None:
        self._stocks: dict[str, _Stock] = {}

    def _get(self, stock: str) -> _Stock | None:
        held = self._stocks.get(stock)
        if held is not None and held.keep_until_ms <= time.time() * 1000:
            del self._stocks[stock]
            return None
        return held

    async def take(
        self, stock: str, holder: str, quantity: int, attempt: str, now_ms: int
    ) -> Decision:
        s = self._get(stock)
        if s is None:
            return Decision(Verdict.UNKNOWN, 0, 0)
        held = s.holders.get(holder, 0)
        verdict = decide(s.window, s.left, held, quantity, now_ms)
        if verdict is not Verdict.WON:
            return Decision(verdict, s.left, held)
        s.left -= quantity
        s.holders[holder] = held + quantity
        s.pending[attempt] = Pending(holder, quantity, now_ms)
        return Decision(verdict, s.left, held + quantity)

    async def settle(self, stock: str, attempt: str) -> None:
        s = self._get(stock)
        if s is not None:
            s.pending.pop(attempt, None)

    async def give_back(self, stock: str, attempt: str) -> bool:
        s = self._get(stock)
        pending = None if s is None else s.pending.pop(attempt, None)
        if s is None or pending is None:
            return False
        s.left += pending.quantity
        s.holders[pending.holder] = s.holders.get(pending.holder, 0) - pending.quantity
        return True

    async def state(self, stock: str) -> GateState | None:
        s = self._get(stock)
        return None if s is None else GateState(s.left, dict(s.pending))

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
        s = self._get(stock)
        if s is not None and only_if_absent:
            return False
        pending = {} if s is None else s.pending
        for attempt in drop:
            pending.pop(attempt, None)
        counted = dict(holders)
        for p in pending.values():
            counted[p.holder] = counted.get(p.holder, 0) + p.quantity
        left = window.quantity - taken - sum(p.quantity for p in pending.values())
        keep = max(window.closes_ms, int(time.time() * 1000)) + KEEP_AFTER_WINDOW_MS
        self._stocks[stock] = _Stock(window, left, counted, pending, keep)
        return True

    async def close(self) -> None:
        self._stocks.clear()


def decide(window: Window, left: int, held: int, quantity: int, now_ms: int) -> Verdict:
    """The rule both adapters apply (the Redis script mirrors it): the window first,
    then the stock, then the holder's limit."""
    if now_ms < window.opens_ms:
        return Verdict.NOT_OPEN
    if now_ms >= window.closes_ms:
        return Verdict.CLOSED
    if left < quantity:
        return Verdict.SOLD_OUT
    if held + quantity > window.per_holder:
        return Verdict.OVER_LIMIT
    return Verdict.WON
