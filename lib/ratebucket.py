"""Token buckets that pace calls to a destination under its documented limits.

The budget belongs to the destination project, not to one process: with Redis
(REDIS_URL) every worker takes from the same bucket, atomically, through a Lua
script; without it each process keeps its own (fine for one machine).
"""

from __future__ import annotations

import math
import threading
import time

from django.conf import settings

# The clock is Redis's own (TIME), read when the token is taken: a time the caller read before
# its round trip would date the take too early (by a slow first connection, a busy machine, or
# another machine's clock), and the next caller's token would come that much too soon.
# ARGV[3] is the longest wait the caller accepts: a token that would come later is not taken
# (the bucket is left as it was) and only the wait is returned, so the caller can decide.
# ARGV[4]: '' takes a token; 'peek' only says the wait; 'block' leaves no token for ARGV[3] seconds.
_LUA = """
local tokens_key, stamp_key = KEYS[1], KEYS[2]
local rate, capacity, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local tokens = tonumber(redis.call('GET', tokens_key) or capacity)
local stamp = tonumber(redis.call('GET', stamp_key) or now)
tokens = math.min(capacity, tokens + math.max(0, now - stamp) * rate)
if ARGV[4] == 'block' then
  -- The destination said to wait (a 429's Retry-After): no token for anyone before then.
  tokens = math.min(tokens, 1 - max_wait * rate)
else
  tokens = tokens - 1
end
local wait = 0
if tokens < 0 then wait = -tokens / rate end
if ARGV[4] == 'peek' or (ARGV[4] ~= 'block' and max_wait >= 0 and wait > max_wait) then return tostring(wait) end
local ttl = math.ceil((capacity + math.max(0, -tokens)) / rate) + 60  -- outlives a block too
redis.call('SET', tokens_key, tokens, 'EX', ttl)
redis.call('SET', stamp_key, now, 'EX', ttl)
return tostring(wait)
"""

_local_lock = threading.Lock()
_local: dict[str, tuple[float, float]] = {}
_redis_client = None
_script = None


def _redis():
    global _redis_client, _script
    if not settings.REDIS_URL:
        return None
    if _redis_client is None:
        import redis

        _redis_client = redis.Redis.from_url(settings.REDIS_URL)
        _script = _redis_client.register_script(_LUA)
    return _redis_client


def reserve(name: str, *, rate: float, capacity: float = 1.0, max_wait: float = math.inf) -> float:
    """Take a token from bucket ``name``; returns how long to wait first (0 when one was free).

    A caller that gets a wait of at most ``max_wait`` must sleep it: the token is already its own.
    A longer wait takes nothing: the caller learns when a token would be free and may come back
    then (``max_wait=0``: take a token only if one is free now).
    """
    client = _redis()
    if client is not None:
        limit = -1 if math.isinf(max_wait) else max_wait
        return float(_script(keys=[f"bucket:{name}:t", f"bucket:{name}:s"], args=[rate, capacity, limit, ""]))
    with _local_lock:
        now = time.monotonic()
        tokens, stamp = _local.get(name, (capacity, now))
        tokens = min(capacity, tokens + max(0.0, now - stamp) * rate)
        tokens -= 1  # may go negative: later callers queue behind this one
        wait = max(0.0, -tokens / rate)
        if wait <= max_wait:
            _local[name] = (tokens, now)
        return wait


def peek(name: str, *, rate: float, capacity: float = 1.0) -> float:
    """How long until bucket ``name`` has a token, taking none (0: one is free now)."""
    client = _redis()
    if client is not None:
        return float(_script(keys=[f"bucket:{name}:t", f"bucket:{name}:s"], args=[rate, capacity, 0, "peek"]))
    with _local_lock:
        now = time.monotonic()
        tokens, stamp = _local.get(name, (capacity, now))
        tokens = min(capacity, tokens + max(0.0, now - stamp) * rate) - 1
        return max(0.0, -tokens / rate)


def block(name: str, *, rate: float, seconds: float, capacity: float = 1.0) -> None:
    """Give no token of bucket ``name`` to anyone for ``seconds`` (the destination answered 429 with a
    Retry-After): every worker spending the budget waits, not only the request that was refused, and
    a run can see the wait coming (peek) and hand its worker slot back instead of sleeping in it."""
    client = _redis()
    if client is not None:
        _script(keys=[f"bucket:{name}:t", f"bucket:{name}:s"], args=[rate, capacity, seconds, "block"])
        return
    with _local_lock:
        now = time.monotonic()
        tokens, stamp = _local.get(name, (capacity, now))
        tokens = min(capacity, tokens + max(0.0, now - stamp) * rate)
        _local[name] = (min(tokens, 1 - seconds * rate), now)
