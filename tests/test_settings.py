"""The settings module fails loudly, naming the variable, on bad configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_settings(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TTS_", "DATABASE_", "CELERY_"))}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import medicine_project.settings as s; print(s.DEBUG, s.TTS_ENGINE, s.ALLOWED_HOSTS)"],
        cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60,
    )


def test_secret_key_is_required_without_debug():
    result = load_settings()
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "DJANGO_SECRET_KEY" in result.stderr


def test_debug_is_off_by_default_and_hosts_are_local():
    result = load_settings(DJANGO_SECRET_KEY="x" * 50)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(None, 2)[0] == "False"
    assert "['localhost', '127.0.0.1']" in result.stdout


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG"),
        ({"TTS_ENGINE": "festival"}, "TTS_ENGINE"),
        ({"DATABASE_URL": "mysql://x@y/z"}, "DATABASE_URL"),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
        ({"CELERY_BROKER_URL": "amqp://guest@localhost//"}, "CELERY_BROKER_URL"),
        ({"VOICE_MAX_UPLOAD_BYTES": "ten"}, "VOICE_MAX_UPLOAD_BYTES"),
        ({"GENERATE_WAIT_MAX_SECONDS": "-1"}, "GENERATE_WAIT_MAX_SECONDS"),
    ],
)
def test_bad_values_raise_improperly_configured(env, named):
    result = load_settings(DJANGO_SECRET_KEY="x" * 50, **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and named in result.stderr


def test_allowed_hosts_are_comma_separated():
    result = load_settings(DJANGO_SECRET_KEY="x" * 50, DJANGO_ALLOWED_HOSTS="voice.example, pi.local ,")
    assert "['voice.example', 'pi.local']" in result.stdout


def test_postgres_url_is_accepted():
    code = "import medicine_project.settings as s; print(s.DATABASES['default']['ENGINE'])"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    env.update(DJANGO_SECRET_KEY="x" * 50, DATABASE_URL="postgres://u:p@127.0.0.1:5432/carepill")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.strip() == "django.db.backends.postgresql"
