"""Accounts, as far as this service is concerned: deactivating users in bulk."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet

from voice_tts.token_cache import token_cache_forget_users


def users_deactivate(*, users: QuerySet[Any]) -> int:
    """Deactivate these users and make their tokens stop working at once; returns how many.

    Use this instead of `users.update(is_active=False)`: a QuerySet update sends no signal,
    so the Redis token cache would keep authenticating them for up to TOKEN_CACHE_SECONDS.
    The admin's "deactivate" action and `manage.py deactivate_users` both come here.
    """
    ids = list(users.filter(is_active=True).values_list("pk", flat=True))
    if not ids:
        return 0
    with transaction.atomic():
        count = get_user_model().objects.filter(pk__in=ids).update(is_active=False)
        # Dropped now and again after the commit: an entry refilled between the two from the
        # still-active row would otherwise live on.
        token_cache_forget_users(user_ids=ids)
        transaction.on_commit(lambda: token_cache_forget_users(user_ids=ids))
    return count
