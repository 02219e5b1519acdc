"""What live workers report: heartbeats in Redis with short TTLs, and the model version each
engine last loaded.

Workers write; the web reads. The web process never imports an engine to answer `/health` or
to learn the loaded model version. The model version is part of every cache key, so it is also
kept in the database (`EngineVersion`): when Redis is down or was emptied, the web still knows
which clips are current instead of serving none, or old ones.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from voice_tts.models import EngineVersion
from voice_tts.redis_client import REDIS_ERRORS, redis_client, redis_key

logger = logging.getLogger(__name__)


def worker_heartbeat_write(state: dict[str, Any], *, ttl_seconds: int) -> None:
    key = redis_key("worker", f"{state['hostname']}:{state['pid']}")
    redis_client().set(key, json.dumps(state), ex=ttl_seconds)


def worker_heartbeat_clear(*, hostname: str, pid: int) -> None:
    redis_client().delete(redis_key("worker", f"{hostname}:{pid}"))


def workers_live() -> list[dict[str, Any]]:
    client = redis_client()
    keys = sorted(client.scan_iter(match=redis_key("worker", "*"), count=200))
    if not keys:
        return []
    return [json.loads(raw) for raw in client.mget(keys) if raw]


def engine_version_key(engine: str) -> str:
    return redis_key("engine_version", engine)


def engine_version_publish(*, engine: str, model_version: str) -> None:
    """Record the weights a worker just loaded: the row first (the truth), then Redis."""
    EngineVersion.objects.update_or_create(engine=engine, defaults={"model_version": model_version})
    redis_client().set(engine_version_key(engine), model_version)


def engine_version_from_db(*, engine: str) -> str | None:
    return EngineVersion.objects.filter(engine=engine).values_list("model_version", flat=True).first()


def engine_version_current(*, engine: str) -> str | None:
    """The model version workers last loaded for `engine`, or None if none has yet.

    Redis first (no process-local copy, so a new version counts at once in every web
    process); the database when Redis has no entry (restarted) or is down."""
    try:
        raw = redis_client().get(engine_version_key(engine))
    except REDIS_ERRORS:
        logger.warning("Redis unavailable; reading the model version from the database", exc_info=True)
        return engine_version_from_db(engine=engine)
    if raw is not None:
        return raw.decode()
    return engine_version_restored(engine=engine)


def engine_version_restored(*, engine: str) -> str | None:
    """The database's model version, for a caller that found none in Redis (emptied by a restart);
    put back into Redis (NX: a worker's newer publish wins)."""
    value = engine_version_from_db(engine=engine)
    if value is not None:
        try:
            redis_client().set(engine_version_key(engine), value, nx=True)
        except REDIS_ERRORS:
            logger.warning("could not cache the model version", exc_info=True)
    return value
