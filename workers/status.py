"""What live workers report, kept in Redis with short TTLs.

Workers write; the web reads. The web process never imports an engine to answer
`/health` or to learn the loaded model version: it asks Redis what workers said.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import redis
from django.conf import settings

_client_lock = threading.Lock()
_client: redis.Redis | None = None
_client_url: str | None = None

# engine name -> (model_version, fetched at monotonic seconds)
_version_cache: dict[str, tuple[str | None, float]] = {}
_VERSION_CACHE_SECONDS = 5.0


def redis_client() -> redis.Redis:
    """One connection pool per process for our own (non-Celery) keys."""
    global _client, _client_url
    url = settings.CELERY_BROKER_URL
    with _client_lock:
        if _client is None or _client_url != url:
            _client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30)
            _client_url = url
        return _client


def redis_key(*parts: str) -> str:
    return settings.REDIS_KEY_PREFIX + ":".join(parts)


def worker_heartbeat_write(state: dict[str, Any]) -> None:
    key = redis_key("worker", f"{state['hostname']}:{state['pid']}")
    redis_client().set(key, json.dumps(state), ex=settings.WORKER_HEARTBEAT_TTL_SECONDS)


def worker_heartbeat_clear(*, hostname: str, pid: int) -> None:
    redis_client().delete(redis_key("worker", f"{hostname}:{pid}"))


def workers_live() -> list[dict[str, Any]]:
    client = redis_client()
    keys = sorted(client.scan_iter(match=redis_key("worker", "*"), count=200))
    if not keys:
        return []
    states = []
    for raw in client.mget(keys):
        if raw:
            states.append(json.loads(raw))
    return states


def engine_version_publish(*, engine: str, model_version: str) -> None:
    redis_client().hset(redis_key("engine_versions"), engine, model_version)


def engine_version_current(*, engine: str) -> str | None:
    """The model version workers last loaded for `engine`, or None if none has yet.

    Cached for a few seconds per process: it is read on every job request.
    """
    now = time.monotonic()
    cached = _version_cache.get(engine)
    if cached is not None and now - cached[1] < _VERSION_CACHE_SECONDS:
        return cached[0]
    try:
        raw = redis_client().hget(redis_key("engine_versions"), engine)
    except redis.RedisError:
        # Redis down: no cache lookup at the API; the worker still checks the cache.
        return None
    value = raw.decode() if raw else None
    if value is not None:
        # Only positive answers are cached: a worker that just came up counts at once.
        _version_cache[engine] = (value, now)
    return value
