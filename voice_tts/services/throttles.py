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


def throttle_count(*, scope: str, user_id: Any, window_seconds: int) -> ThrottleWindow | None:
    """Count one request of `user_id` in `scope`'s current window; None when Redis is down
    (refusing every caregiver would be worse than not counting)."""
    key = throttle_key(scope, user_id)
    try:
        pipe = redis_client().pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, window_seconds, nx=True)
        pipe.ttl(key)
        count, _, ttl = pipe.execute()
    except (redis.RedisError, OSError):
        logger.warning("throttle counter unavailable; allowing the request", exc_info=True)
        return None
    return ThrottleWindow(count=count, ttl=ttl)


def throttle_take(*, scope: str, user_id: Any, window_seconds: int, count: int, limit: int) -> ThrottleWindow | None:
    """Take `count` units of `user_id`'s current window in `scope` at once (a request that queues several
    syntheses), all or none: if the window would pass `limit` they are given back (INCRBY, then DECRBY), so a
    request refused for being too big does not use up what a smaller one could still have. The window as it
    would have been with them (`count` over `limit`: refused); None when Redis is down (then not counted)."""
    key = throttle_key(scope, user_id)
    try:
        client = redis_client()
        pipe = client.pipeline(transaction=False)
        pipe.incrby(key, count)
        pipe.expire(key, window_seconds, nx=True)
        pipe.ttl(key)
        total, _, ttl = pipe.execute()
        if total > limit:
            client.decrby(key, count)
    except (redis.RedisError, OSError):
        logger.warning("throttle counter unavailable; allowing the request", exc_info=True)
        return None
    return ThrottleWindow(count=total, ttl=ttl)
