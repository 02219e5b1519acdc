"""API tokens (voice_tts/services/tokens.py): stored as digests, expiring, revocable, with old
authtoken keys migrated on first use. Real HTTP (live_server), two users, the real databases
(the raw SQLite file, or pg_dump of the PostgreSQL test database) and the real Redis."""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from pathlib import Path
from typing import Any

import requests
from django.conf import settings
from django.db import connection
from django.utils import timezone
from rest_framework.authtoken.models import Token

from tests.conftest import api_client
from voice_tts.models import AccessToken
from voice_tts.redis_client import redis_client, redis_key
from voice_tts.token_cache import token_cache_entry, token_cache_key, token_digest


def _login(base: str, username: str) -> str:
    credentials = {"username": username, "password": f"{username}-pass-1234"}
    response = requests.post(f"{base}/api/auth/login/", json=credentials, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["token"]


def _works(base: str, token: str) -> int:
    return requests.get(f"{base}/api/tts/phrases/", headers={"Authorization": f"Token {token}"}, timeout=30).status_code


def _database_bytes() -> bytes:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        # The file itself, and its write-ahead log: what a copy of the disk would hold. Read by
        # another process: closing any descriptor of a database file drops every POSIX lock this
        # process holds on it (sqlite.org/howtocorrupt.html, 2.2), and a worker that then thinks
        # it is the last connection removes the WAL from under this process ("disk I/O error").
        names = [name for name in (db["NAME"], db["NAME"] + "-wal") if Path(name).exists()]
        return subprocess.run(["cat", *names], capture_output=True, check=True).stdout
    dump = subprocess.run(["pg_dump", "-h", db.get("HOST") or "127.0.0.1", "-p", str(db.get("PORT") or 5432),
                           "-U", db.get("USER") or "postgres", db["NAME"]], capture_output=True, check=True)
    return dump.stdout


def _redis_bytes() -> bytes:
    client = redis_client()
    found = []
    for key in client.scan_iter(match=settings.REDIS_KEY_PREFIX + "*", count=500):
        found.append(key)
        if client.type(key) == b"string":
            found.append(client.get(key) or b"")
    return b"\n".join(found)


def test_no_issued_token_is_in_a_database_dump_or_in_redis(live_server, alice, bob):
    logins = [_login(live_server.url, name) for name in ("alice", "alice", "alice", "bob")]
    issued = [alice.token, bob.token, *logins]
    assert all(_works(live_server.url, token) == 200 for token in issued)  # used: cached in Redis too
    dump, cache = _database_bytes(), _redis_bytes()
    for token in issued:
        assert token.encode() not in dump
        assert token.encode() not in cache
        assert token_digest(token).encode() in dump  # what is kept instead


def test_logout_revokes_only_the_token_in_use(live_server, alice, bob):
    phone, pi = _login(live_server.url, "alice"), _login(live_server.url, "alice")
    assert _works(live_server.url, phone) == 200
    response = requests.post(f"{live_server.url}/api/auth/logout/", headers={"Authorization": f"Token {phone}"},
                             timeout=30)
    assert response.status_code == 204
    assert _works(live_server.url, phone) == 401  # at once, although it was cached
    assert _works(live_server.url, pi) == 200 and _works(live_server.url, bob.token) == 200
    assert requests.post(f"{live_server.url}/api/auth/logout/", timeout=30).status_code == 401


def test_an_expired_token_is_refused(alice, transactional_db):
    AccessToken.objects.filter(digest=token_digest(alice.token)).update(expires_at=timezone.now() - dt.timedelta(1))
    response = api_client(alice).get("/api/tts/phrases/")
    assert response.status_code == 401 and response.json()["code"] == "authentication_failed"


def test_a_cached_token_past_its_expiry_is_refused(alice, transactional_db):
    assert api_client(alice).get("/api/tts/phrases/").status_code == 200
    # The cached entry carries the expiry: once it passes, the cache refuses too.
    redis_client().set(token_cache_key(token_digest(alice.token)), token_cache_entry(alice, expires_at=time.time() - 1))
    assert api_client(alice).get("/api/tts/phrases/").status_code == 401


def test_tokens_live_access_token_days(live_server, alice, settings: Any):
    token = _login(live_server.url, "alice")
    row = AccessToken.objects.get(digest=token_digest(token))
    assert abs((row.expires_at - row.created_at) - dt.timedelta(days=settings.ACCESS_TOKEN_DAYS)) < dt.timedelta(1)


def test_an_old_authtoken_key_keeps_working_and_is_restored_as_a_digest(alice, transactional_db):
    legacy = Token.objects.create(user=alice).key
    client = api_client(alice)
    client.credentials(HTTP_AUTHORIZATION=f"Token {legacy}")
    assert client.get("/api/tts/phrases/").status_code == 200
    assert not Token.objects.filter(key=legacy).exists()  # no plain key left
    assert AccessToken.objects.filter(owner=alice, digest=token_digest(legacy)).exists()
    redis_client().delete(token_cache_key(token_digest(legacy)))
    assert client.get("/api/tts/phrases/").status_code == 200  # the same key, now from its digest


def test_old_keys_stop_at_the_deadline(alice, bob, transactional_db, settings: Any):
    settings.LEGACY_TOKEN_DEADLINE = timezone.now() - dt.timedelta(seconds=1)
    legacy = Token.objects.create(user=bob).key
    client = api_client(bob)
    client.credentials(HTTP_AUTHORIZATION=f"Token {legacy}")
    assert client.get("/api/tts/phrases/").status_code == 401
    assert api_client(alice).get("/api/tts/phrases/").status_code == 200  # hashed tokens are not affected


def test_redis_keys_never_name_a_token(alice, transactional_db):
    assert api_client(alice).get("/api/tts/phrases/").status_code == 200
    assert redis_client().exists(redis_key("authtoken", token_digest(alice.token)[:40]))
