"""`StockGate` on Redis: every step is one Lua script, so it is atomic across every
process of a deployment.

A stock lives in three keys that share a hash tag (one cluster slot): the window and
units left (`gate:{stock}`), each holder's count (`...:holders`) and the pending
attempts (`...:pending`, `quantity|at_ms|holder` by attempt id). All three expire
ten minutes after the window closes (or after the last resync, if later).
"""

from __future__ import annotations

from storage.cache.redis import pooled_client
from storage.gate.port import (
    KEEP_AFTER_WINDOW_MS,
    Decision,
    GateState,
    Pending,
    Verdict,
    Window,
)

# The order of checks is `storage.gate.memory.decide`'s: window, stock, holder.
_TAKE = """
local w = redis.call('HMGET', KEYS[1], 'left', 'lim', 'open', 'close', 'keep')
if not w[1] then return {'unknown', 0, 0} end
local left, qty, now = tonumber(w[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if now < tonumber(w[3]) then return {'not-open', left, held} end
if now >= tonumber(w[4]) then return {'closed', left, held} end
if left < qty then return {'sold-out', left, held} end
if held + qty > tonumber(w[2]) then return {'over-limit', left, held} end
redis.call('HSET', KEYS[1], 'left', left - qty)
redis.call('HSET', KEYS[2], ARGV[1], held + qty)
redis.call('HSET', KEYS[3], ARGV[3], qty .. '|' .. now .. '|' .. ARGV[1])
redis.call('PEXPIREAT', KEYS[2], w[5])
redis.call('PEXPIREAT', KEYS[3], w[5])
return {'won', left - qty, held + qty}
"""

_GIVE_BACK = """
local v = redis.call('HGET', KEYS[3], ARGV[1])
if not v then return 0 end
redis.call('HDEL', KEYS[3], ARGV[1])
local qty, at, holder = string.match(v, '^(%d+)|(%d+)|(.*)$')
if redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('HINCRBY', KEYS[1], 'left', qty)
    redis.call('HINCRBY', KEYS[2], holder, -tonumber(qty))
end
return 1
"""

_STATE = """
return {redis.call('HGET', KEYS[1], 'left'), redis.call('HGETALL', KEYS[3])}
"""

# ARGV: only_if_absent, quantity, per_holder, opens, closes, taken, now, keep_after,
# number of attempts to drop, the attempts, then holder and count pairs.
_RESYNC = """
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local dropped = tonumber(ARGV[9])
for i = 10, 9 + dropped do redis.call('HDEL', KEYS[3], ARGV[i]) end
redis.call('DEL', KEYS[2])
for i = 10 + dropped, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
local pending = redis.call('HGETALL', KEYS[3])
local pending_total = 0
for i = 2, #pending, 2 do
    local qty, at, holder = string.match(pending[i], '^(%d+)|(%d+)|(.*)$')
    pending_total = pending_total + tonumber(qty)
    redis.call('HINCRBY', KEYS[2], holder, qty)
end
local keep = math.max(tonumber(ARGV[5]), tonumber(ARGV[7])) + tonumber(ARGV[8])
local left = tonumber(ARGV[2]) - tonumber(ARGV[6]) - pending_total
redis.call('HSET', KEYS[1], 'q', ARGV[2], 'lim', ARGV[3], 'open', ARGV[4],
    'close', ARGV[5], 'left', left, 'keep', keep)
for k = 1, 3 do
    if redis.call('EXISTS', KEYS[k]) == 1 then redis.call('PEXPIREAT', KEYS[k], keep) end
end
return 1
"""


class RedisGate:
    def __init__(self, url: str, prefix: str = "streamcart:") -> None:
        self._prefix = prefix
        self._client = pooled_client(url)
        register = self._client.register_script
        self._take = register(_TAKE)
        self._give_back = register(_GIVE_BACK)
        self._state = register(_STATE)
        self._resync = register(_RESYNC)

    def _keys(self, stock: str) -> list[str]:
        base = f"{self._prefix}gate:{{{stock}}}"
        return [base, base + ":holders", base + ":pending"]

    async def take(
        self, stock: str, holder: str, quantity: int, attempt: str, now_ms: int
    ) -> Decision:
        verdict, left, held = await self._take(
            keys=self._keys(stock), args=[holder, quantity, attempt, now_ms]
        )
        return Decision(Verdict(verdict.decode()), int(left), int(held))

    async def settle(self, stock: str, attempt: str) -> None:
        await self._client.hdel(self._keys(stock)[2], attempt)

    async def give_back(self, stock: str, attempt: str) -> bool:
        return bool(await self._give_back(keys=self._keys(stock), args=[attempt]))

    async def state(self, stock: str) -> GateState | None:
        left, flat = await self._state(keys=self._keys(stock))
        if left is None:
            return None
        pending = {}
        for attempt, value in zip(flat[::2], flat[1::2], strict=True):
            quantity, at_ms, holder = value.decode().split("|", 2)
            pending[attempt.decode()] = Pending(holder, int(quantity), int(at_ms))
        return GateState(int(left), pending)

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
        args: list[str | int] = [
            int(only_if_absent),
            window.quantity,
            window.per_holder,
            window.opens_ms,
            window.closes_ms,
            taken,
            await self._now_ms(),
            KEEP_AFTER_WINDOW_MS,
            len(drop),
            *drop,
        ]
        for holder, count in holders.items():
            args += [holder, count]
        return bool(await self._resync(keys=self._keys(stock), args=args))

    async def _now_ms(self) -> int:
        seconds, micros = await self._client.time()
        return seconds * 1000 + micros // 1000

    async def close(self) -> None:
        await self._client.aclose(close_connection_pool=True)
