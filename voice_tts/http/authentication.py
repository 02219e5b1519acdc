"""Token authentication with the token -> user lookup cached in Redis.

DRF's TokenAuthentication joins authtoken_token and auth_user on every request. On the
busiest routes (a cache-hit POST /api/tts/jobs/, polling GET /api/tts/jobs/<id>/) that was
the only SQL left; one Redis GET replaces it (bench/RESULTS.md has the numbers).

What is cached is the user row as authentication needs it, as JSON in our own Redis keys (one
client per process, no Django cache layer, no pickle). Entries are keyed by a hash of the
token (the token itself never appears in Redis key names) and are dropped:
- when the token is deleted (logout, rotation, the user deleted through the cascade),
- when the user row is saved or deleted (deactivation, password change),
- by `users_deactivate()`, the one way to deactivate users in bulk (a `QuerySet.update()`
  sends no signal: the admin action and `manage.py deactivate_users` use it), and
- after TOKEN_CACHE_SECONDS in any case, a bound for changes made outside the ORM.
If Redis is unavailable, authentication falls back to the database, never to refusing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from voice_tts.models import AccessToken
from voice_tts.redis_client import REDIS_ERRORS as _CACHE_ERRORS
from voice_tts.redis_client import redis_client
from voice_tts.services.tokens import device_seen, token_user
from voice_tts.token_cache import (
    token_cache_entry,
    token_cache_forget,
    token_cache_forget_users,
    token_cache_key,
    token_cache_read,
    token_digest,
)

logger = logging.getLogger(__name__)


class CachedTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`: hashed, expiring tokens (services/tokens.py), with the
    digest -> user lookup cached in Redis (one GET on a hit). `request.auth` is a `TokenAuth`."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        cache_key = token_cache_key(token_digest(key))
        try:
            entry = redis_client().get(cache_key)
        except _CACHE_ERRORS:
            logger.warning("token cache unavailable; reading the database", exc_info=True)
            entry = None
            cache_up = False
        else:
            cache_up = True
        if entry is not None:
            user, expires_at, device_id = token_cache_read(entry)
            if expires_at is not None and expires_at <= time.time():
                raise exceptions.AuthenticationFailed("Token expired.")
            if not user.is_active:  # not cached as such today; kept in case a row is cached stale
                raise exceptions.AuthenticationFailed("User inactive or deleted.")
            return user, self._used(key=key, device_id=device_id)
        found = token_user(key=key)
        if found is None:
            raise exceptions.AuthenticationFailed("Invalid or expired token.")
        user, token = found
        if not user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        expires_at = token.expires_at.timestamp() if token.expires_at is not None else None
        device_id = token.id if token.is_device else None
        ttl = settings.TOKEN_CACHE_SECONDS
        if expires_at is not None:
            ttl = min(ttl, int(expires_at - time.time()))
        if cache_up and ttl > 0:
            try:
                entry = token_cache_entry(user, expires_at=expires_at, device_id=device_id)
                redis_client().set(cache_key, entry, ex=ttl)
            except _CACHE_ERRORS:
                logger.warning("token cache unavailable; not caching", exc_info=True)
        return user, self._used(key=key, device_id=device_id)

    @staticmethod
    def _used(*, key: str, device_id: int | None) -> TokenAuth:
        if device_id is not None:
            device_seen(token_id=device_id)
        return TokenAuth(key=key, device_id=device_id)


@dataclass(frozen=True)
class TokenAuth:
    """`request.auth`: the key (for logout; it lives only in the request) and, for a device's
    token, the device (DeviceScope limits what it may do)."""

    key: str
    device_id: int | None


@receiver(post_delete, sender=Token, dispatch_uid="authtoken_cache_forget_token")
def _token_deleted(sender: Any, instance: Token, **kwargs: Any) -> None:
    token_cache_forget(token_digest(instance.key))


@receiver(post_delete, sender=AccessToken, dispatch_uid="access_token_cache_forget")
def _access_token_deleted(sender: Any, instance: AccessToken, **kwargs: Any) -> None:
    token_cache_forget(instance.digest)


@receiver(post_save, sender=get_user_model(), dispatch_uid="authtoken_cache_forget_user_saved")
@receiver(post_delete, sender=get_user_model(), dispatch_uid="authtoken_cache_forget_user_deleted")
def _user_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    # A deactivated user or a changed password must stop working at once, not after the TTL.
    token_cache_forget_users(user_ids=[instance.pk])
