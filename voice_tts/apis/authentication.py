"""Token authentication with the token -> user lookup cached in Redis.

DRF's TokenAuthentication joins authtoken_token and auth_user on every request. On the hot
paths (a cache-hit POST /api/tts/jobs/, polling GET /api/tts/jobs/<id>/) that query was a
third of the database work; one Redis GET replaces it (bench/RESULTS.md has the numbers).

What is cached is the user row as authentication needs it, as JSON in our own Redis keys (one
client per process, no Django cache layer, no pickle). Entries are keyed by a hash of the
token (the token itself never appears in Redis key names) and are dropped:
- when the token is deleted (logout, rotation, the user deleted through the cascade),
- when the user row is saved or deleted (deactivation, password change), and
- after TOKEN_CACHE_SECONDS in any case, a bound for changes made outside the ORM.
If Redis is unavailable, authentication falls back to the database, never to refusing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from workers import status

logger = logging.getLogger(__name__)

# redis-py wraps connection problems in RedisError; a refused socket can surface as OSError.
_CACHE_ERRORS = (redis.RedisError, OSError)


def token_cache_key(token_key: str) -> str:
    """Redis key of a token's entry: a digest, so token values never show in Redis."""
    return status.redis_key("authtoken", hashlib.sha256(token_key.encode()).hexdigest()[:40])


def token_cache_forget(token_key: str) -> None:
    """Drop the cached user of one token (every web process sees it: the cache is Redis)."""
    try:
        status.redis_client().delete(token_cache_key(token_key))
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


class CachedTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, same answers as DRF's class, one Redis GET on a hit."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        cache_key = token_cache_key(key)
        try:
            entry = status.redis_client().get(cache_key)
        except _CACHE_ERRORS:
            logger.warning("token cache unavailable; reading the database", exc_info=True)
            return super().authenticate_credentials(key)
        if entry is None:
            user, token = super().authenticate_credentials(key)
            if settings.TOKEN_CACHE_SECONDS <= 0:
                return user, token  # caching turned off
            try:
                status.redis_client().set(cache_key, token_cache_entry(user), ex=settings.TOKEN_CACHE_SECONDS)
            except _CACHE_ERRORS:
                logger.warning("token cache unavailable; not caching", exc_info=True)
            return user, token
        user = token_cache_user(entry)
        if not user.is_active:  # not cached as such today; kept in case a row is cached stale
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        # request.auth carries the key only: nothing on our paths reads other Token fields.
        return user, Token(key=key, user_id=user.pk)


@receiver(post_delete, sender=Token, dispatch_uid="authtoken_cache_forget_token")
def _token_deleted(sender: Any, instance: Token, **kwargs: Any) -> None:
    token_cache_forget(instance.key)


@receiver(post_save, sender=get_user_model(), dispatch_uid="authtoken_cache_forget_user_saved")
@receiver(post_delete, sender=get_user_model(), dispatch_uid="authtoken_cache_forget_user_deleted")
def _user_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    # A deactivated user or a changed password must stop working at once, not after the TTL.
    for key in Token.objects.filter(user_id=instance.pk).values_list("key", flat=True):
        token_cache_forget(key)
