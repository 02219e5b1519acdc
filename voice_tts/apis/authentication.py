"""Token authentication with the token -> user lookup cached in Redis.

DRF's TokenAuthentication joins authtoken_token and auth_user on every request. On the hot
paths (a cache-hit POST /api/tts/jobs/, polling GET /api/tts/jobs/<id>/) that query was a
third of the database work; one Redis GET replaces it (bench/RESULTS.md has the numbers).

What is cached is the user row as authentication needs it. Entries are keyed by a hash of the
token (the token itself never appears in Redis key names) and are dropped:
- when the token is deleted (logout, rotation, the user deleted through the cascade),
- when the user row is saved or deleted (deactivation, password change), and
- after TOKEN_CACHE_SECONDS in any case, a bound for changes made outside the ORM.
If Redis is unavailable, authentication falls back to the database, never to refusing.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

logger = logging.getLogger(__name__)

# Redis and the Django cache wrap connection problems in these.
_CACHE_ERRORS = (redis.RedisError, OSError)


def token_cache_key(token_key: str) -> str:
    """Cache key of a token's entry: a digest, so token values never show in Redis."""
    return "authtoken:" + hashlib.sha256(token_key.encode()).hexdigest()[:40]


def token_cache_forget(token_key: str) -> None:
    """Drop the cached user of one token (every web process sees it: the cache is Redis)."""
    try:
        cache.delete(token_cache_key(token_key))
    except _CACHE_ERRORS:
        # The entry expires after TOKEN_CACHE_SECONDS anyway; log loudly, a revoked token
        # stays usable until then.
        logger.error("could not drop the cached user of a deleted token", exc_info=True)


# The user fields kept in the cache. Everything else (the password hash above all) stays out of
# Redis: it is a deferred field on the cached instance, loaded from the database if ever read.
_CACHED_USER_FIELDS = ("id", "username", "is_active", "is_staff", "is_superuser")


def _user_for_cache(user: Any) -> Any:
    # from_db() wants the values in the model's field order; the rest become deferred fields.
    names = [f.attname for f in type(user)._meta.concrete_fields if f.attname in _CACHED_USER_FIELDS]
    return type(user).from_db(user._state.db, names, [getattr(user, name) for name in names])


class CachedTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, same answers as DRF's class, one Redis GET on a hit."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        cache_key = token_cache_key(key)
        try:
            user = cache.get(cache_key)
        except _CACHE_ERRORS:
            logger.warning("token cache unavailable; reading the database", exc_info=True)
            return super().authenticate_credentials(key)
        if user is None:
            user, token = super().authenticate_credentials(key)
            try:
                cache.set(cache_key, _user_for_cache(user), timeout=settings.TOKEN_CACHE_SECONDS)
            except _CACHE_ERRORS:
                logger.warning("token cache unavailable; not caching", exc_info=True)
            return user, token
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
