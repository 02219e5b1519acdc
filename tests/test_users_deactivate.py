"""Bulk deactivation (voice_tts.services.users.users_deactivate): a QuerySet update sends no
signal, so without it the Redis token cache would keep a deactivated user working."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from tests.conftest import api_client
from voice_tts.services.users import users_deactivate


def _authenticated(user) -> bool:
    return api_client(user).get("/api/tts/phrases/").status_code == 200


def test_a_bare_queryset_update_leaves_the_cached_token_working(alice, transactional_db):
    # Why the helper exists: this is what it prevents.
    assert _authenticated(alice)  # the token's user is now cached in Redis
    User.objects.filter(pk=alice.pk).update(is_active=False)
    assert _authenticated(alice)


def test_users_deactivate_stops_cached_tokens_at_once(alice, bob, transactional_db):
    assert _authenticated(alice) and _authenticated(bob)
    assert users_deactivate(users=User.objects.filter(username="alice")) == 1
    assert not _authenticated(alice)
    assert _authenticated(bob)
    assert users_deactivate(users=User.objects.filter(username="alice")) == 0  # already inactive


def test_the_admin_action_uses_it(alice, bob, transactional_db, client):
    admin = User.objects.create_superuser("root", password="root-pass-1234")
    client.force_login(admin)
    assert _authenticated(alice)
    response = client.post("/admin/auth/user/", {"action": "deactivate_users", "_selected_action": [alice.pk]})
    assert response.status_code == 302
    assert not _authenticated(alice) and _authenticated(bob)


def test_the_management_command_uses_it(alice, bob, transactional_db):
    assert _authenticated(alice)
    call_command("deactivate_users", "alice")
    assert not _authenticated(alice) and _authenticated(bob)
    with pytest.raises(CommandError, match="nobody"):
        call_command("deactivate_users", "nobody")
