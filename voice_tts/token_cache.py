"""The Redis entries of the token -> user cache (voice_tts/http/authentication.py reads them).

Kept apart from the DRF class so that services (bulk deactivation) can drop entries too.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS
from rest_framework.authtoken.models import Token

from voice_tts.models import AccessToken
from voice_tts.redis_client import REDIS_ERRORS as _CACHE_ERRORS
from voice_tts.redis_client import redis_client, redis_key

logger = logging.getLogger(__name__)


def token_digest(token_key: str) -> str:
    """What is stored of a key (AccessToken.digest) and what its cache entry is named after."""
    return hashlib.sha256(token_key.encode()).hexdigest()


def token_cache_key(digest: str) -> str:
    """Redis key of a token's entry: named after the digest, so keys never show in Redis."""
    return redis_key("authtoken", digest[:40])


def token_cache_forget(digest: str) -> None:
    """Drop the cached user of one token (every web process sees it: the cache is Redis)."""
    try:
        redis_client().delete(token_cache_key(digest))
    except _CACHE_ERRORS:
        # The entry expires after TOKEN_CACHE_SECONDS anyway; log loudly, a revoked token
        # stays usable until then.
        logger.error("could not drop the cached user of a deleted token", exc_info=True)


# The user fields kept in the cache, as JSON (never pickle: what Redis holds must not be able to
# run code in the web). Everything else (the password hash above all) stays out of Redis: it is a
# deferred field on the user rebuilt from the entry, loaded from the database if ever read.
_CACHED_USER_FIELDS = ("id", "username", "is_active", "is_staff", "is_superuser")


def token_cache_entry(user: Any, *, expires_at: float | None, device_id: int | None = None) -> bytes:
    entry = {name: getattr(user, name) for name in _CACHED_USER_FIELDS}
    entry["token_expires_at"] = expires_at  # checked on every cached use (None: until revoked)
    entry["token_device_id"] = device_id  # a device's token is limited (apis/permissions.py)
    return json.dumps(entry).encode()


def token_cache_read(entry: bytes) -> tuple[Any, float | None, int | None]:
    """(the user, the token's expiry, its device id) of a cache entry, parsed once. The user is a
    model instance with only the cached fields loaded."""
    values = json.loads(entry)
    expires_at = values.pop("token_expires_at", 0)
    device_id = values.pop("token_device_id", None)
    model = get_user_model()
    # from_db() wants the values in the model's field order; the rest become deferred fields.
    names = [f.attname for f in model._meta.concrete_fields if f.attname in values]
    return model.from_db(DEFAULT_DB_ALIAS, names, [values[name] for name in names]), expires_at, device_id


def token_cache_forget_users(*, user_ids: Iterable[int]) -> None:
    """Drop the cached user of every token of these users (legacy authtoken keys too)."""
    ids = list(user_ids)
    for digest in AccessToken.objects.filter(owner_id__in=ids).values_list("digest", flat=True):
        token_cache_forget(digest)
    for key in Token.objects.filter(user_id__in=ids).values_list("key", flat=True):
        token_cache_forget(token_digest(key))
