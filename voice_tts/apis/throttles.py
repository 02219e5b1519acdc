"""Per-user rate limits on the operations that cost GPU time or disk."""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)


class UserRateThrottle(SimpleRateThrottle):
    """Counts per authenticated user in the shared Redis cache; rates from settings at
    call time (THROTTLE_RATES), so they can change without a code change."""

    scope: str = ""

    def get_rate(self) -> str | None:
        return settings.THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if not request.user or not request.user.is_authenticated:
            return None  # authentication answers 401 first anyway
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}

    def allow_request(self, request: Any, view: Any) -> bool:
        try:
            return super().allow_request(request, view)
        except redis.RedisError:
            # Redis down: refusing every caregiver would be worse than not counting.
            logger.warning("throttle cache unavailable; allowing the request", exc_info=True)
            return True


class JobsThrottle(UserRateThrottle):
    scope = "jobs"


class UploadsThrottle(UserRateThrottle):
    scope = "uploads"
