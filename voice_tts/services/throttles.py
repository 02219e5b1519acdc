"""Per-user request counters for the rate limits (voice_tts/http/throttles.py applies them).

A fixed-window counter in Redis (INCR + EXPIRE + TTL in one round trip) instead of DRF's sliding
log: that read, unpickled, trimmed, pickled and wrote back every request time of the window on
each request (two round trips, O(requests) work), a third of a cache-hit job request's time
(bench/RESULTS.md). The price: a client may send up to twice the rate across a window boundary,
acceptable for abuse protection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis

from voice_tts.redis_client import redis_client, redis_key

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThrottleWindow:
    """This request is the `count`-th of a window with `ttl` seconds left."""

    count: int
    ttl: int


def throttle_key(scope: str, user_id: Any) -> str:
    return redis_key("throttle", scope, str(user_id))


def _window_add(*, key: str, amount: int, window_seconds: int) -> ThrottleWindow:
    """Add `amount` to the window's counter (opened with its expiry by the first add): one round trip."""
    pipe = redis_client().pipeline(transaction=False)
    pipe.incrby(key, amount)
    pipe.expire(key, window_seconds, nx=True)
    pipe.ttl(key)
    total, _, ttl = pipe.execute()
    return ThrottleWindow(count=total, ttl=ttl)


def throttle_count(*, scope: str, user_id: Any, window_seconds: int) -> ThrottleWindow | None:
    """Count one request of `user_id` in `scope`'s current window; None when Redis is down
    (refusing every caregiver would be worse than not counting)."""
    try:
        return _window_add(key=throttle_key(scope, user_id), amount=1, window_seconds=window_seconds)
    except (redis.RedisError, OSError):
        logger.warning("throttle counter unavailable; allowing the request", exc_info=True)
        return None


def throttle_take(*, scope: str, user_id: Any, window_seconds: int, count: int, limit: int) -> ThrottleWindow | None:
    """Take `count` units of `user_id`'s current window in `scope` at once (a request that queues several
    syntheses), all or none: if the window would pass `limit` they are given back (INCRBY, then DECRBY), so a
    request refused for being too big does not use up what a smaller one could still have. The window as it
    would have been with them (`count` over `limit`: refused); None when Redis is down (then not counted)."""
    key = throttle_key(scope, user_id)
    try:
        window = _window_add(key=key, amount=count, window_seconds=window_seconds)
        if window.count > limit:
            redis_client().decrby(key, count)
    except (redis.RedisError, OSError):
        logger.warning("throttle counter unavailable; allowing the request", exc_info=True)
        return None
    return window
