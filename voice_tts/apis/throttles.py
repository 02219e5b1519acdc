"""Per-user rate limits on the operations that cost GPU time or disk."""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)


class UserRateThrottle(SimpleRateThrottle):
    """Counts per authenticated user in the shared Redis cache; rates from settings at
    call time (THROTTLE_RATES), so they can change without a code change.

    A fixed-window counter (INCR + EXPIRE in one round trip) instead of DRF's sliding log:
    DRF reads, unpickles, trims, pickles and writes back the list of every request time in
    the window on each request (two round trips, O(requests) work), which was a third of a
    cache-hit job request's time (bench/RESULTS.md). The price: a client may send up to
    twice the rate across a window boundary, acceptable for abuse protection.
    """

    scope: str = ""
    _wait: float | None = None

    def get_rate(self) -> str | None:
        return settings.THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if not request.user or not request.user.is_authenticated:
            return None  # authentication answers 401 first anyway
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}

    def allow_request(self, request: Any, view: Any) -> bool:
        if self.rate is None:
            return True
        ident = self.get_cache_key(request, view)
        if ident is None:
            return True
        get_client = getattr(getattr(cache, "_cache", None), "get_client", None)
        if get_client is None:
            # Not Django's RedisCache (a deployment's own cache backend): DRF's sliding log.
            return super().allow_request(request, view)
        key = cache.make_and_validate_key(ident)
        try:
            client = get_client(key, write=True)
            pipe = client.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, int(self.duration), nx=True)
            pipe.ttl(key)
            count, _, ttl = pipe.execute()
        except redis.RedisError:
            # Redis down: refusing every caregiver would be worse than not counting.
            logger.warning("throttle cache unavailable; allowing the request", exc_info=True)
            return True
        if count <= self.num_requests:
            return True
        self._wait = float(ttl if ttl and ttl > 0 else self.duration)
        return False

    def wait(self) -> float | None:
        if self._wait is None and hasattr(self, "history"):
            return super().wait()  # the sliding-log fallback filled DRF's own state
        return self._wait


class JobsThrottle(UserRateThrottle):
    scope = "jobs"


class UploadsThrottle(UserRateThrottle):
    scope = "uploads"
