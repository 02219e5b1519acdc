"""API tokens: issued at login, stored as digests, expiring, revocable; old authtoken keys migrate.

- `token_issue` makes a new key (256 random bits) and stores only its SHA-256 digest, with an
  expiry ACCESS_TOKEN_DAYS later. The expiry is fixed, not refreshed by use: a use then never
  writes to the database (the cache-hit path stays free of SQL), and a stolen key stops working
  by a known date. Clients log in again (the Pi's installer, the caregiver's app).
- `token_user` resolves a key. A key from before hashed tokens (DRF `authtoken`, stored in plain)
  keeps working until LEGACY_TOKEN_DEADLINE; its first use re-stores it as a digest (same key, so
  the client does not notice) and deletes the plain row.
- `token_authenticate`: a key as authentication sees it, the user read from the Redis token cache
  (one GET, no SQL) or, on a miss, from the database and cached (voice_tts/http/authentication.py).
- `token_revoke`: logout; the Redis entry goes at once.
Each issue and revocation is a structured event on the `voice_tts.security` logger.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from voice_tts.errors import ServiceError
from voice_tts.models import AccessToken
from voice_tts.redis_client import REDIS_ERRORS, redis_client, redis_key
from voice_tts.security_log import security_event
from voice_tts.token_cache import (
    token_cache_entry,
    token_cache_forget,
    token_cache_key,
    token_cache_read,
    token_digest,
)

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "cpv_"  # noqa: S105 - a marker that tells our keys apart, not a secret


def _expiry() -> dt.datetime:
    return timezone.now() + dt.timedelta(days=settings.ACCESS_TOKEN_DAYS)


def _token_stored(*, key: str, **fields: Any) -> AccessToken:
    """The row of a key: its digest and its first characters, never the key."""
    return AccessToken.objects.create(digest=token_digest(key), prefix=key[:12], **fields)


def _key_new() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_issue(*, owner_id: int) -> str:
    """A new key for this user, returned once; only its digest is kept."""
    key = _key_new()
    token = _token_stored(key=key, owner_id=owner_id, expires_at=_expiry())
    security_event("token_created", user_id=owner_id, token=token.prefix, expires_at=token.expires_at.isoformat())
    return key


def token_user(*, key: str) -> tuple[Any, AccessToken] | None:
    """The user and token of a key that is valid now, or None."""
    token = AccessToken.objects.select_related("owner").filter(digest=token_digest(key)).first()
    if token is None:
        return _legacy_token_migrated(key=key)
    if token.expires_at is not None and token.expires_at <= timezone.now():
        return None
    return token.owner, token


@dataclass(frozen=True)
class TokenUser:
    """Who a key authenticates: the user (from the cache, only the cached fields loaded) and, for a
    device's token, the device."""

    user: Any
    device_id: int | None


def token_authenticate(*, key: str) -> TokenUser:
    """The user of a key valid now: `token_invalid`, `token_expired` or `user_inactive` otherwise.

    The digest -> user entry in Redis answers a hit with one GET (the hot paths' only lookup);
    a miss reads the database (`token_user`) and caches the user until the token expires or
    TOKEN_CACHE_SECONDS pass. Redis down: the database answers, never a refusal. A device's use
    is recorded (`device_seen`).
    """
    cache_key = token_cache_key(token_digest(key))
    try:
        entry = redis_client().get(cache_key)
    except REDIS_ERRORS:
        logger.warning("token cache unavailable; reading the database", exc_info=True)
        entry = None
        cache_up = False
    else:
        cache_up = True
    if entry is not None:
        user, expires_at, device_id = token_cache_read(entry)
        if expires_at is not None and expires_at <= time.time():
            raise ServiceError("token_expired", "Token expired.")
        if not user.is_active:  # not cached as such today; kept in case a row is cached stale
            raise ServiceError("user_inactive", "User inactive or deleted.")
        return _token_used(user=user, device_id=device_id)
    found = token_user(key=key)
    if found is None:
        raise ServiceError("token_invalid", "Invalid or expired token.")
    user, token = found
    if not user.is_active:
        raise ServiceError("user_inactive", "User inactive or deleted.")
    expires_at = token.expires_at.timestamp() if token.expires_at is not None else None
    device_id = token.id if token.is_device else None
    ttl = settings.TOKEN_CACHE_SECONDS
    if expires_at is not None:
        ttl = min(ttl, int(expires_at - time.time()))
    if cache_up and ttl > 0:
        try:
            redis_client().set(cache_key, token_cache_entry(user, expires_at=expires_at, device_id=device_id), ex=ttl)
        except REDIS_ERRORS:
            logger.warning("token cache unavailable; not caching", exc_info=True)
    return _token_used(user=user, device_id=device_id)


def _token_used(*, user: Any, device_id: int | None) -> TokenUser:
    if device_id is not None:
        device_seen(token_id=device_id)
    return TokenUser(user=user, device_id=device_id)


def _legacy_token_migrated(*, key: str) -> tuple[Any, AccessToken] | None:
    if timezone.now() >= settings.LEGACY_TOKEN_DEADLINE:
        return None
    with transaction.atomic():
        legacy = Token.objects.select_for_update().select_related("user").filter(key=key).first()
        if legacy is None:
            return None
        token = _token_stored(key=key, owner=legacy.user, expires_at=_expiry())
        legacy.delete()
    security_event("token_migrated", user_id=token.owner_id, token=token.prefix)
    return token.owner, token


def device_create(*, owner_id: int, name: str) -> tuple[AccessToken, str]:
    """A device (the Pi) and its token, returned once: valid until revoked, limited to what a
    player needs (apis/permissions.py)."""
    name = " ".join(name.split())
    if not name:
        raise ServiceError("device_name_empty", "Give the device a name (e.g. \"living room Pi\").")
    key = _key_new()
    device = _token_stored(key=key, owner_id=owner_id, device_name=name[:100], expires_at=None)
    security_event("device_created", user_id=owner_id, device_id=device.id, token=device.prefix)
    return device, key


def devices_of(*, owner_id: int) -> list[AccessToken]:
    return list(AccessToken.objects.filter(owner_id=owner_id).exclude(device_name="").order_by("created_at", "id"))


def device_revoke(*, owner_id: int, device_id: int) -> None:
    """Revoke one of the owner's devices, at once (its cache entry goes with the row)."""
    deleted = AccessToken.objects.filter(id=device_id, owner_id=owner_id).exclude(device_name="").delete()[0]
    if not deleted:
        raise ServiceError("not_found", "Not found.")
    security_event("device_revoked", user_id=owner_id, device_id=device_id)


def device_seen(*, token_id: int) -> None:
    """Record that a device used its token: at most once a minute per device (a Redis NX marker
    decides), so a player's requests stay free of writes but for that one."""
    try:
        first = redis_client().set(redis_key("device", "seen", str(token_id)), "1", nx=True, ex=60)
    except REDIS_ERRORS:
        return
    if first:
        AccessToken.objects.filter(id=token_id).update(last_seen_at=timezone.now())


def token_revoke(*, key: str) -> bool:
    """Revoke the token of this key (logout); True if there was one."""
    digest = token_digest(key)
    deleted = AccessToken.objects.filter(digest=digest).delete()[0]
    # After the commit (at once in autocommit): a request that read the row before the delete
    # committed may have cached it meanwhile.
    transaction.on_commit(lambda: token_cache_forget(digest))
    if deleted:
        security_event("token_revoked", token=key[:12])
    return bool(deleted)
