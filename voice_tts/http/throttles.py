"""Per-user rate limits on the operations that cost GPU time or disk."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from voice_tts.services.logins import login_wait
from voice_tts.services.throttles import throttle_count, throttle_key, throttle_take


class UserRateThrottle(SimpleRateThrottle):
    """Counts per authenticated user in Redis (our own keys, one client per process); rates
    from settings at call time (THROTTLE_RATES), so they can change without a code change.

    A fixed-window counter (services/throttles.py says why not DRF's sliding log).
    """

    scope: str = ""
    _wait: float | None = None

    def get_rate(self) -> str | None:
        return settings.THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if not request.user or not request.user.is_authenticated:
            return None  # authentication answers 401 first anyway
        return throttle_key(self.scope, request.user.pk)

    def allow_request(self, request: Any, view: Any) -> bool:
        if self.rate is None:
            return True
        if self.get_cache_key(request, view) is None:
            return True
        window = throttle_count(scope=self.scope, user_id=request.user.pk, window_seconds=int(self.duration))
        if window is None:
            return True  # Redis down: not counted
        return self.verdict(count=window.count, ttl=window.ttl)

    def consume(self, request: Any, view: Any, count: int) -> bool:
        """Take `count` units of this window at once (a request that queues several syntheses), all or none
        (services/throttles.py `throttle_take`: a refused request gives its units back). The same counter as
        `allow_request`."""
        if self.rate is None or count <= 0:
            return True
        if self.get_cache_key(request, view) is None:
            return True
        window = throttle_take(scope=self.scope, user_id=request.user.pk, window_seconds=int(self.duration),
                               count=count, limit=self.num_requests)
        if window is None:
            return True  # Redis down: not counted
        return self.verdict(count=window.count, ttl=window.ttl)

    def verdict(self, *, count: int, ttl: int) -> bool:
        """Allowed for the `count`-th request of a window with `ttl` seconds left?"""
        if count <= self.num_requests:
            return True
        self._wait = float(ttl if ttl and ttl > 0 else self.duration)
        return False

    def wait(self) -> float | None:
        return self._wait


class JobsThrottle(UserRateThrottle):
    """Syntheses per user: one per job request (allow_request), one per synthesis a speech request
    queues (`consume`, called by the view once it knows how many)."""

    scope = "jobs"


class UploadsThrottle(UserRateThrottle):
    scope = "uploads"


class SpeechThrottle(UserRateThrottle):
    """POST /v1/audio/speech, per request; the syntheses a request queues (up to SPEECH_MAX_SEGMENTS)
    are counted by JobsThrottle as well (the view's `syntheses_admit`)."""

    scope = "speech"


def client_address(request: Any) -> str:
    """The client's address as DRF's throttles see it (REMOTE_ADDR, or X-Forwarded-For behind
    DJANGO_NUM_PROXIES proxies); works on Django's requests too (the admin login)."""
    return BaseThrottle().get_ident(request)


class LoginThrottle(BaseThrottle):
    """Refuses a login whose (username, address) or address failed too often lately (429 with
    Retry-After, before the password is checked). Failures are counted by the view."""

    _wait: int | None = None

    def allow_request(self, request: Any, view: Any) -> bool:
        data = request.data
        username = str(data.get("username", "")) if hasattr(data, "get") else ""
        self._wait = login_wait(username=username, address=client_address(request))
        return self._wait is None

    def wait(self) -> float | None:
        return None if self._wait is None else float(self._wait)
