"""Failed logins, counted in Redis, so a password cannot be guessed without limit.

Two counters per failure, each for LOGIN_LOCKOUT_SECONDS from the first failure of its window:
- per (username, client address): LOGIN_FAILURES_PER_USER_IP failures lock that pair. Keyed on
  the pair, so nobody can lock a caregiver out from another address;
- per client address: LOGIN_FAILURES_PER_IP failures lock the address for every username (one
  address trying many names).
A locked login is refused before the password is checked (no oracle, no hashing cost), with the
seconds to wait. A successful login clears its pair's counter. Usernames are kept as digests
(no names in Redis key names). Redis down: logins are not limited (logged), rather than refused.
The API login (a DRF throttle) and the admin login (voice_tts/admin_site.py) both use this.
"""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings

from voice_tts.redis_client import REDIS_ERRORS, redis_client, redis_key
from voice_tts.security_log import security_event

logger = logging.getLogger(__name__)


def _keys(*, username: str, address: str) -> tuple[str, str]:
    who = hashlib.sha256(username.casefold().encode()).hexdigest()[:32]
    return redis_key("login", "fail", who, address), redis_key("login", "fail", "ip", address)


def login_wait(*, username: str, address: str) -> int | None:
    """Seconds until a login for `username` from `address` may be tried again, or None (allowed)."""
    pair, ip = _keys(username=username, address=address)
    try:
        pipe = redis_client().pipeline(transaction=False)
        pipe.get(pair).ttl(pair).get(ip).ttl(ip)
        pair_count, pair_ttl, ip_count, ip_ttl = pipe.execute()
    except REDIS_ERRORS:
        logger.warning("login failure counters unavailable; not limiting logins", exc_info=True)
        return None
    waits = []
    if int(pair_count or 0) >= settings.LOGIN_FAILURES_PER_USER_IP:
        waits.append(pair_ttl)
    if int(ip_count or 0) >= settings.LOGIN_FAILURES_PER_IP:
        waits.append(ip_ttl)
    if not waits:
        return None
    return max(1, *(ttl if ttl and ttl > 0 else settings.LOGIN_LOCKOUT_SECONDS for ttl in waits))


def login_failed(*, username: str, address: str) -> None:
    pair, ip = _keys(username=username, address=address)
    window = settings.LOGIN_LOCKOUT_SECONDS
    try:
        pipe = redis_client().pipeline(transaction=False)
        pipe.incr(pair).expire(pair, window, nx=True).incr(ip).expire(ip, window, nx=True)
        pair_count, _, ip_count, _ = pipe.execute()
    except REDIS_ERRORS:
        logger.warning("login failure counters unavailable; failure not counted", exc_info=True)
        return
    if pair_count == settings.LOGIN_FAILURES_PER_USER_IP or ip_count == settings.LOGIN_FAILURES_PER_IP:
        # The moment a lockout starts (docs/security.md, "Security events").
        security_event("login_locked", username=username, address=address, failures_pair=pair_count,
                       failures_address=ip_count, seconds=window)


def login_succeeded(*, username: str, address: str) -> None:
    pair, _ = _keys(username=username, address=address)
    try:
        redis_client().delete(pair)
    except REDIS_ERRORS:
        logger.warning("login failure counters unavailable", exc_info=True)
