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
The lookup is `services/tokens.py`'s `token_authenticate`; the entries' invalidation on delete and
save is in `voice_tts/receivers.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from voice_tts.errors import ServiceError
from voice_tts.services.tokens import token_authenticate


class CachedTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`: hashed, expiring tokens (services/tokens.py), with the
    digest -> user lookup cached in Redis (one GET on a hit). `request.auth` is a `TokenAuth`."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        try:
            found = token_authenticate(key=key)
        except ServiceError as exc:
            # DRF's 401 with its WWW-Authenticate header and code `authentication_failed`.
            raise exceptions.AuthenticationFailed(exc.message) from None
        return found.user, TokenAuth(key=key, device_id=found.device_id)


@dataclass(frozen=True)
class TokenAuth:
    """`request.auth`: the key (for logout; it lives only in the request) and, for a device's
    token, the device (DeviceScope limits what it may do)."""

    key: str
    device_id: int | None
