"""The Redis entries of the token -> user cache (voice_tts/apis/authentication.py reads them).

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

from voice_tts.redis_client import REDIS_ERRORS as _CACHE_ERRORS
from voice_tts.redis_client import redis_client, redis_key

logger = logging.getLogger(__name__)


def token_cache_key(token_key: str) -> str:
    """Redis key of a token's entry: a digest, so token values never show in Redis."""
    return redis_key("authtoken", hashlib.sha256(token_key.encode()).hexdigest()[:40])


def token_cache_forget(token_key: str) -> None:
    """Drop the cached user of one token (every web process sees it: the cache is Redis)."""
    try:
        redis_client().delete(token_cache_key(token_key))
    except _CACHE_ERRORS:
        # The entry expires after TOKEN_CACHE_SECONDS anyway; log loudly, a revoked token
        # stays usable until then.
        logger.error("could not drop the cached user of a deleted token", exc_info=True)


# The user fields kept in the cache, as JSON (never pickle: what Redis holds must not be able to
# run code in the web). Everything else (the password hash above all) stays out of Redis: it is a
# deferred field on the user rebuilt from the entry, loaded from the database if ever read.
_CACHED_USER_FIELDS = ("id", "username", "is_active", "is_staff", "is_superuser")


def token_cache_entry(user: Any) -> bytes:
    return json.dumps({name: getattr(user, name) for name in _CACHED_USER_FIELDS}).encode()


def token_cache_user(entry: bytes) -> Any:
    """The user of a cache entry: a model instance with only the cached fields loaded."""
    values = json.loads(entry)
    model = get_user_model()
    # from_db() wants the values in the model's field order; the rest become deferred fields.
    names = [f.attname for f in model._meta.concrete_fields if f.attname in values]
    return model.from_db(DEFAULT_DB_ALIAS, names, [values[name] for name in names])


def token_cache_forget_users(*, user_ids: Iterable[int]) -> None:
    """Drop the cached user of every token of these users."""
    for key in Token.objects.filter(user_id__in=list(user_ids)).values_list("key", flat=True):
        token_cache_forget(key)
