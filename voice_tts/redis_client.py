"""The service's own Redis: one client per process and the naming of every key we write.

Celery's broker keys share the Redis and the prefix (CAREPILL_REDIS_PREFIX), so several
deployments or test runs can use one Redis without seeing each other. Nothing here knows what
the keys mean; the modules that own them (token cache, throttles, result cache, worker status)
name them through `redis_key`.
"""

from __future__ import annotations

import threading

import redis
from django.conf import settings

# redis-py wraps connection problems in RedisError; a refused socket can surface as OSError.
REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError)

_client_lock = threading.Lock()
_client: redis.Redis | None = None
_client_url: str | None = None


def redis_client() -> redis.Redis:
    """One connection pool per process (and per broker URL, which tests may change)."""
    global _client, _client_url
    url = settings.CELERY_BROKER_URL
    with _client_lock:
        if _client is None or _client_url != url:
            _client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30)
            _client_url = url
        return _client


def redis_key(*parts: str) -> str:
    return settings.REDIS_KEY_PREFIX + ":".join(parts)
