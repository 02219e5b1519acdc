"""Failed logins are limited per (username, client address) and per address, on the API and the
admin login alike (voice_tts/services/logins.py), over real HTTP from real loopback addresses
(127.0.0.1 and 127.0.0.2: one machine, two clients), with two users."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlparse

import pytest

from tests.conftest import redis_keys_delete


@pytest.fixture(autouse=True)
def low_limits(settings: Any) -> Iterator[None]:
    settings.LOGIN_FAILURES_PER_USER_IP = 3
    settings.LOGIN_FAILURES_PER_IP = 6
    settings.LOGIN_LOCKOUT_SECONDS = 600
    redis_keys_delete("login:*")  # failures other tests made (with the suite's high limits)
    yield
    redis_keys_delete("login:*")


class Client:
    """HTTP from one source address to the live server."""

    def __init__(self, base_url: str, source: str) -> None:
        url = urlparse(base_url)
        self.host, self.port, self.source = url.hostname, url.port, source
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Any:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30, source_address=(self.source, 0))
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.text = response.read().decode()
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        conn.close()
        return response

    def login(self, username: str, password: str) -> Any:
        body = json.dumps({"username": username, "password": password}).encode()
        return self.request("POST", "/api/auth/login/", body, {"Content-Type": "application/json"})


def test_wrong_passwords_are_refused_then_throttled_and_another_address_still_gets_in(live_server, alice, bob):
    attacker, alice_at_home = Client(live_server.url, "127.0.0.2"), Client(live_server.url, "127.0.0.1")
    for _ in range(3):
        response = attacker.login("alice", "guess")
        assert response.status == 400 and json.loads(response.text)["code"] == "invalid_credentials"
    refused = attacker.login("alice", "guess")
    assert refused.status == 429 and json.loads(refused.text)["code"] == "throttled"
    assert 0 < int(refused.getheader("Retry-After")) <= 600
    # Locked for that pair even with the right password: the password is not even checked.
    assert attacker.login("alice", "alice-pass-1234").status == 429
    # Alice, from her own address, is not locked out by the attacker.
    assert alice_at_home.login("alice", "alice-pass-1234").status == 200
    # Nor is Bob from the attacker's address (the address's own limit is higher).
    assert attacker.login("bob", "bob-pass-1234").status == 200


def test_one_address_trying_many_names_is_throttled(live_server, alice, bob):
    attacker = Client(live_server.url, "127.0.0.3")
    for name in ("carol", "dave", "erin", "frank", "grace", "heidi"):
        assert attacker.login(name, "guess").status == 400
    assert attacker.login("ivan", "guess").status == 429
    assert attacker.login("bob", "bob-pass-1234").status == 429  # the whole address waits
    assert Client(live_server.url, "127.0.0.1").login("bob", "bob-pass-1234").status == 200


def test_a_success_clears_the_pairs_failures(live_server, alice):
    client = Client(live_server.url, "127.0.0.4")
    for _ in range(2):
        assert client.login("alice", "typo").status == 400
    assert client.login("alice", "alice-pass-1234").status == 200
    for _ in range(3):
        assert client.login("alice", "typo").status == 400  # a fresh count: three more before the lock
    assert client.login("alice", "typo").status == 429


def _admin_login(client: Client, username: str, password: str) -> Any:
    page = client.request("GET", "/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    form = urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token, "next": "/admin/"})
    return client.request("POST", "/admin/login/", form.encode(),
                          {"Content-Type": "application/x-www-form-urlencoded", "Referer": client_url(client)})


def client_url(client: Client) -> str:
    return f"http://{client.host}:{client.port}/admin/login/"


def test_the_admin_login_is_throttled_too(live_server, django_user_model):
    django_user_model.objects.create_superuser("root", password="root-pass-1234")
    attacker, admin_at_work = Client(live_server.url, "127.0.0.5"), Client(live_server.url, "127.0.0.1")
    for _ in range(3):
        assert _admin_login(attacker, "root", "guess").status == 200  # the form again, with its error
    refused = _admin_login(attacker, "root", "guess")
    assert refused.status == 429 and int(refused.getheader("Retry-After")) > 0
    assert _admin_login(attacker, "root", "root-pass-1234").status == 429
    signed_in = _admin_login(admin_at_work, "root", "root-pass-1234")
    assert signed_in.status == 302 and signed_in.getheader("Location") == "/admin/"
