"""Stock gate: hot, small stocks decided in one atomic step; in-process by default,
Redis when a URL is configured."""

from __future__ import annotations

from storage.gate.memory import MemoryGate
from storage.gate.port import Decision, GateState, Pending, StockGate, Verdict, Window
from storage.gate.redis import RedisGate

__all__ = [
    "Decision",
    "GateState",
    "MemoryGate",
    "Pending",
    "RedisGate",
    "StockGate",
    "Verdict",
    "Window",
    "make_gate",
]


def make_gate(url: str, prefix: str = "streamcart:") -> StockGate:
    """A `RedisGate` for a `redis://` or `rediss://` URL; an empty URL means `MemoryGate`."""
    if not url:
        return MemoryGate()
    return RedisGate(url, prefix=prefix)
