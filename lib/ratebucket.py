"""Token buckets that pace calls to a destination under its documented limits.

The budget belongs to the destination project, not to one process: with Redis
(REDIS_URL) every worker takes from the same bucket, atomically, through a Lua
script; without it each process keeps its own (fine for one machine).
"""

from __future__ import annotations

import threading
import time

from django.conf import settings

_LUA = """
local tokens_key, stamp_key = KEYS[1], KEYS[2]
local rate, capacity, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens = tonumber(redis.call('GET', tokens_key) or capacity)
local stamp = tonumber(redis.call('GET', stamp_key) or now)
tokens = math.min(capacity, tokens + math.max(0, now - stamp) * rate)
tokens = tokens - 1
local wait = 0
if tokens < 0 then wait = -tokens / rate end
local ttl = math.ceil(capacity / rate) + 60
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


def reserve(name: str, *, rate: float, capacity: float = 1.0) -> float:
    """Take a token from bucket ``name``; returns how long to wait first (0 when one was free).

    A caller that gets a wait must sleep it: the token is already its own.
    """
    now = time.time()
    client = _redis()
    if client is not None:
        return float(_script(keys=[f"bucket:{name}:t", f"bucket:{name}:s"], args=[rate, capacity, now]))
    with _local_lock:
        tokens, stamp = _local.get(name, (capacity, now))
        tokens = min(capacity, tokens + max(0.0, now - stamp) * rate)
        tokens -= 1  # may go negative: later callers queue behind this one
        _local[name] = (tokens, now)
        return max(0.0, -tokens / rate)
