"""The rate-limit counters on the real shared cache (Redis) when the run has one."""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings as django_settings

from lib import ratelimit


@pytest.fixture
def redis_cache(settings):
    if not django_settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set (CI sets it)")
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": django_settings.REDIS_URL}
    }


def test_counts_are_shared_and_limited_on_redis(redis_cache):
    ident = uuid.uuid4().hex
    verdicts = [ratelimit.hit("test", ident, limit=3).allowed for _ in range(4)]
    assert verdicts == [True, True, True, False]
    assert 0 < ratelimit.hit("test", ident, limit=3).retry_after <= 2 * ratelimit.WINDOW_SECONDS


def test_cost_counts_a_batch(redis_cache):
    ident = uuid.uuid4().hex
    assert ratelimit.hit("test", ident, limit=10, cost=8).allowed
    assert not ratelimit.hit("test", ident, limit=10, cost=3).allowed


def test_zero_means_no_limit():
    assert all(ratelimit.hit("test", "x", limit=0).allowed for _ in range(5))


def test_junk_identifiers_are_hashed(settings):
    assert ratelimit.hit("test", "ü \n" * 50, limit=1).allowed


def test_a_burst_across_a_minute_boundary_is_still_limited(monkeypatch):
    """Three hits just before the minute turns and one just after: a fixed window would allow the fourth."""
    clock = [1_800_000_000 - 0.5]  # half a second before a window boundary (a multiple of 60)
    monkeypatch.setattr(ratelimit, "_clock", lambda: clock[0])
    ident = uuid.uuid4().hex
    assert [ratelimit.hit("test", ident, limit=3).allowed for _ in range(3)] == [True, True, True]
    clock[0] += 1.0
    verdict = ratelimit.hit("test", ident, limit=3)
    assert not verdict.allowed and 1 <= verdict.retry_after <= 60
    clock[0] += 2 * ratelimit.WINDOW_SECONDS  # two quiet minutes later the budget is whole again
    assert ratelimit.hit("test", ident, limit=3).allowed


def test_retry_after_is_when_a_hit_fits_again_and_refusals_are_not_counted(monkeypatch):
    clock = [1_800_000_000 - 10.0]  # 10 s before a window boundary
    monkeypatch.setattr(ratelimit, "_clock", lambda: clock[0])
    ident = uuid.uuid4().hex
    assert all(ratelimit.hit("test", ident, limit=30).allowed for _ in range(30))
    refused = [ratelimit.hit("test", ident, limit=30) for _ in range(5)]
    assert not any(v.allowed for v in refused)
    # 30 hits weigh 30 x (1 - t/60) in the next window: one more fits once that is <= 29, 2 s in, 12 s from now.
    assert refused[-1].retry_after == 12
    clock[0] += refused[-1].retry_after
    assert ratelimit.hit("test", ident, limit=30).allowed  # told when, and let in then


def test_redis_counters_are_plain_cache_integers_that_expire(redis_cache, monkeypatch):
    """The pipelined path writes what the cache API reads: the refusal's decr and a later window's get."""
    from django.core.cache import cache

    monkeypatch.setattr(ratelimit, "_clock", lambda: 1_800_000_030.0)  # mid-window
    ident = uuid.uuid4().hex
    window = int(1_800_000_030 // ratelimit.WINDOW_SECONDS)
    key = f"rl:test:{ident}:{window}"
    ratelimit.hit("test", ident, limit=10, cost=4)
    assert cache.get(key) == 4
    raw = cache.make_and_validate_key(key)
    assert 0 < cache._cache.get_client(raw).ttl(raw) <= ratelimit.COUNTER_SECONDS
    cache.set(f"rl:test:{ident}:{window - 1}", 100, timeout=60)  # a busy previous window weighs in
    assert not ratelimit.hit("test", ident, limit=10).allowed
    assert cache.get(key) == 4  # the refused hit was taken back
