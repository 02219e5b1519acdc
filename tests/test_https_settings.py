"""DJANGO_HTTPS=1: the one switch for a deployment behind a TLS-terminating reverse proxy.

`manage.py check --deploy` runs as a real process with the production environment (CI runs the
same command), and the switch's behaviour is checked through the real middleware stack."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _deploy_check(**env: str) -> subprocess.CompletedProcess:
    production = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "medicine_project.settings",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "voice.example.org",
        "DJANGO_DEBUG": "0",
        **env,
    }
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=ROOT, env=production, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_https_on():
    result = _deploy_check(DJANGO_HTTPS="1")
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_warns_without_it():
    result = _deploy_check(DJANGO_HTTPS="0")
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stdout + result.stderr


@pytest.fixture
def https_settings(settings):
    # What DJANGO_HTTPS=1 sets (medicine_project/settings.py), applied to this process.
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = [r"^api/tts/health/$"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    return settings


def test_plain_http_is_redirected_and_https_gets_hsts(client, https_settings, db):
    plain = client.get("/api/tts/phrases/")
    assert plain.status_code == 301 and plain["Location"].startswith("https://")
    proxied = client.get("/api/tts/phrases/", HTTP_X_FORWARDED_PROTO="https")
    assert proxied.status_code == 401  # reached the API (no token): not redirected
    assert proxied["Strict-Transport-Security"] == "max-age=3600; includeSubDomains"
    assert client.get("/api/tts/health/").status_code in (200, 503)  # the internal health check stays on HTTP
