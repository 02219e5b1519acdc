"""Test settings: the real settings module, fed a private environment.

Every test run gets its own Redis key prefix, media root and SQLite file, and the
worker processes the tests start inherit the same environment, so parallel runs
(and other developers' runs on this machine) never see each other's jobs.
"""

import os
import tempfile
import uuid

_run = uuid.uuid4().hex[:10]
_tmp = tempfile.mkdtemp(prefix=f"carepill-test-{_run}-")
os.environ.setdefault("DJANGO_SECRET_KEY", f"test-only-{uuid.uuid4().hex}")
os.environ.setdefault("CAREPILL_REDIS_PREFIX", f"carepill-test-{_run}:")
os.environ.setdefault("MEDIA_ROOT", os.path.join(_tmp, "media"))
os.environ.setdefault("CAREPILL_DATA_DIR", os.path.join(_tmp, "var"))
os.environ.setdefault("CAREPILL_TEST_SQLITE", os.path.join(_tmp, "test-db.sqlite3"))
os.environ.setdefault("TTS_ENGINE", "espeak")
os.environ.setdefault("WEBHOOK_RETRY_BASE_SECONDS", "0.2")
os.environ.setdefault("WEBHOOK_TIMEOUT_SECONDS", "1")
os.environ.setdefault("WEBHOOK_MAX_ATTEMPTS", "4")
# Webhook receivers in tests listen on loopback, which the SSRF guard refuses by default.
os.environ.setdefault("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
# Rate limits are tested on their own (with low rates); elsewhere they stay out of the way.
os.environ.setdefault("THROTTLE_JOBS_RATE", "100000/min")
os.environ.setdefault("THROTTLE_UPLOADS_RATE", "100000/min")
os.environ.setdefault("USER_MAX_PENDING_JOBS", "100000")  # tests/test_speech_bounds.py sets its own
os.environ.setdefault("LOGIN_FAILURES_PER_USER_IP", "100000")
os.environ.setdefault("LOGIN_FAILURES_PER_IP", "100000")
os.environ["CAREPILL_TEST_TMP"] = _tmp
# Alert mail goes to the run's own SMTP server on 127.0.0.1 (tests/smtp_server.py, the `smtp` fixture);
# the worker processes inherit the port.
if "EMAIL_PORT" not in os.environ:
    import socket

    with socket.socket() as _sock:
        _sock.bind(("127.0.0.1", 0))
        os.environ["EMAIL_PORT"] = str(_sock.getsockname()[1])
os.environ.setdefault("EMAIL_HOST", "127.0.0.1")
os.environ.setdefault("CARE_PAGES_URL", "https://voice.example.test/voice/")

from medicine_project.settings import *  # noqa: E402,F403

# Hashing passwords at full strength only slows tests down.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Concurrent runs (developers, CI) must not share PostgreSQL's test database: a run that
# drops it at its end would pull it from under another run's feet.
if DATABASES["default"]["ENGINE"].endswith("postgresql"):  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{_run}"}  # noqa: F405
