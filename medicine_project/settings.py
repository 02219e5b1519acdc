"""All configuration comes from the environment, through carepill_config; every read fails loudly.

A typo in an env var should stop the process at start with a message naming the
variable, not surface hours later as a confusing runtime error.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from carepill_config import Env
from workers.engines.registry import engine_names

BASE_DIR = Path(__file__).resolve().parent.parent

# Every variable is read through carepill_config (typed, bounded, NAME_FILE for secrets, declared
# in carepill_config/variables.py), the reader the engines and gunicorn's config use too. Errors here
# are Django's ImproperlyConfigured, what manage.py and Django's tooling expect from settings.
env = Env(error=ImproperlyConfigured)


# --- Core ---------------------------------------------------------------------------

DEBUG = env.bool("DJANGO_DEBUG", False)
SECRET_KEY = env.secret("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) must be set when DJANGO_DEBUG is off "
            "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))')"
        )
    SECRET_KEY = "insecure-debug-only-key"  # noqa: S105 - only reachable with DEBUG on
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1"])
DATA_DIR = env.path("CAREPILL_DATA_DIR", BASE_DIR / "var", base=BASE_DIR)

INSTALLED_APPS = [
    # Django's admin with a site whose login is throttled like the API's (voice_tts/admin_site.py).
    "voice_tts.admin_config.CarePillAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "voice_tts",
    # The caregiver's pages at /voice/ (session login; the API stays token-only).
    "voice_tts.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (the pages' CSS and JS) from STATIC_ROOT, hashed names, compressed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Pages in the browser's language (Korean first); the API keeps English (voice_tts/web/locale.py).
    "voice_tts.web.locale.PageLocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "medicine_project.urls"
WSGI_APPLICATION = "medicine_project.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------

_default_db_url = f"sqlite:///{DATA_DIR / 'db.sqlite3'}"
_db_url = env.secret("DATABASE_URL", "") or _default_db_url
try:
    _db = dj_database_url.parse(_db_url)
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web read while a worker writes; IMMEDIATE transactions take the
    # write lock up front instead of failing half-way with "database is locked".
    _db["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # Persistent connections here too: opening and closing the file (and re-running the
    # PRAGMAs) on every request took a fifth of a cache-hit request's time under load
    # (bench/RESULTS.md).
    _db["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", 60, minimum=0)
    Path(_db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # Tests share their database with a real worker process, so it must be a file.
    _db["TEST"] = {"NAME": env.str("CAREPILL_TEST_SQLITE", str(DATA_DIR / "test-db.sqlite3"))}
elif _db["ENGINE"] == "django.db.backends.postgresql":
    # Persistent connections matter most here (measured: 4x throughput).
    _db["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", 60, minimum=0)
    _db["CONN_HEALTH_CHECKS"] = True
else:
    raise ImproperlyConfigured(f"DATABASE_URL must be sqlite:// or postgres://, got engine {_db['ENGINE']}")
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Static and media ---------------------------------------------------------------

STATIC_URL = "static/"
# `manage.py collectstatic` fills it (make run, make demo, the image); whitenoise serves it.
STATIC_ROOT = env.path("STATIC_ROOT", DATA_DIR / "static", base=BASE_DIR)
# Voices and clips are personal data: MEDIA_ROOT is never served as static files;
# every audio byte goes through an authenticated view.
MEDIA_ROOT = env.path("MEDIA_ROOT", BASE_DIR / "media", base=BASE_DIR)
STORAGES = {
    "default": {"BACKEND": "voice_tts.storage.AtomicFileSystemStorage"},
    # Static files are public (served to anyone): world-readable whoever runs collectstatic (the
    # image builds them as root for the app user), not FILE_UPLOAD_PERMISSIONS' private 0640.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage",
                    "OPTIONS": {"file_permissions_mode": 0o644, "directory_permissions_mode": 0o755}},
}
# Uploads (voices, clips: personal data) are private to the service's user and group.
FILE_UPLOAD_PERMISSIONS = 0o640

# The pages speak Korean unless the browser asks for English (Accept-Language); the API speaks
# English whatever it is sent (voice_tts/web/locale.py).
LANGUAGE_CODE = "ko"
LANGUAGES = [("ko", "한국어"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "voice_tts" / "locale"]
# The pages' session login (voice_tts/web): signed-out pages redirect here.
LOGIN_URL = "/voice/login/"
TIME_ZONE = env.str("TIME_ZONE", "Asia/Seoul")
USE_I18N = True
USE_TZ = True

# --- Security -----------------------------------------------------------------------

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
# One switch for a deployment served over HTTPS by a TLS-terminating reverse proxy (docs/operations.md,
# "HTTPS"): redirect plain HTTP, send HSTS, keep cookies off plain HTTP, and trust the proxy's
# X-Forwarded-Proto (the proxy must set it, and overwrite what clients send).
HTTPS = env.bool("DJANGO_HTTPS", False)
if HTTPS:
    SECURE_SSL_REDIRECT = True
    # Health checks from inside the deployment (compose, the load balancer) come over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^api/tts/health/$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", 365 * 24 * 3600, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", False)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    if not SECURE_HSTS_PRELOAD:
        # Asking browsers to preload the domain is its owner's one-way decision (hstspreload.org),
        # not a default: say no on purpose instead of being warned about it.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]

# --- REST framework -----------------------------------------------------------------

REST_FRAMEWORK = {
    # DRF's TokenAuthentication with the token -> user lookup cached in Redis (invalidated on
    # token/user change): one query less on every request (bench/RESULTS.md).
    "DEFAULT_AUTHENTICATION_CLASSES": ["voice_tts.http.authentication.CachedTokenAuthentication"],
    # A device's token (the Pi) is refused every view that does not allow devices (403).
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "voice_tts.apis.permissions.DeviceScope",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "EXCEPTION_HANDLER": "voice_tts.http.errors.api_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    # `?format=` belongs to the seed's /generate/ contract (format=base64), not to DRF.
    "URL_FORMAT_OVERRIDE": None,
    # The client address (login throttling) is REMOTE_ADDR unless this many reverse proxies in
    # front append to X-Forwarded-For (DRF's default, None, would trust a client-sent header).
    "NUM_PROXIES": env.int("DJANGO_NUM_PROXIES", 0, minimum=0),
}

# --- Voice service ------------------------------------------------------------------

TTS_ENGINE = env.choice("TTS_ENGINE", "neural_cpu", engine_names())
VOICE_MAX_UPLOAD_BYTES = env.int("VOICE_MAX_UPLOAD_BYTES", 10 * 1024 * 1024, minimum=1024)
# GPT-SoVITS refuses references outside 3-10 s; we check at upload, not at synthesis.
VOICE_MIN_SECONDS = env.float("VOICE_MIN_SECONDS", 3.0, minimum=0.5)
VOICE_MAX_SECONDS = env.float("VOICE_MAX_SECONDS", 10.0, minimum=1.0)
# Longest input we are willing to decode at all (before trimming silence).
VOICE_MAX_DECODE_SECONDS = env.float("VOICE_MAX_DECODE_SECONDS", 60.0, minimum=1.0)
VOICE_SAMPLE_RATE = env.int("VOICE_SAMPLE_RATE", 32000, minimum=8000, maximum=48000)
VOICE_TARGET_LUFS = env.float("VOICE_TARGET_LUFS", -23.0)
JOB_TEXT_MAX_CHARS = env.int("JOB_TEXT_MAX_CHARS", 500, minimum=1)
GENERATE_WAIT_MAX_SECONDS = env.int("GENERATE_WAIT_MAX_SECONDS", 30, minimum=0, maximum=120)
# POST /v1/audio/speech waits at most this long for each sentence's job (from when it is the next
# one to send); then the answer is a 504 (before any audio) or the stream ends with an error.
SPEECH_SENTENCE_WAIT_SECONDS = env.int("SPEECH_SENTENCE_WAIT_SECONDS", 120, minimum=1)
# A waiting stream is woken by the worker's push when a sentence's job finishes (result_cache);
# it also re-reads the job's state after this long without one, so a lost push costs at most this.
SPEECH_WAKE_FALLBACK_SECONDS = env.float("SPEECH_WAKE_FALLBACK_SECONDS", 1.0, minimum=0.01)
# POST /v1/audio/speech waits at most this long for the whole answer, so one request never holds a web thread for
# longer (a FLAC answer, which waits for the whole text, is then a 504 in OpenAI's envelope).
# Five minutes: about 30 segments of a long text on a busy CPU worker; a client that needs more
# sends the text in parts (or retries: the segments already made are cache hits).
SPEECH_DEADLINE_SECONDS = env.int("SPEECH_DEADLINE_SECONDS", 300, minimum=1)
# One request queues at most this many syntheses: a text of more sentences keeps its first one
# alone (first audio) and merges the rest into SPEECH_MAX_SEGMENTS - 1 segments (services/speech.py).
# 32 segments of up to JOB_TEXT_MAX_CHARS hold any 4096-character input.
SPEECH_MAX_SEGMENTS = env.int("SPEECH_MAX_SEGMENTS", 32, minimum=2)
# Absolute URLs in webhook payloads (the API uses the request's own host).
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", "http://127.0.0.1:8000")
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", 10.0, minimum=0.1)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", 6, minimum=1)
WEBHOOK_RETRY_BASE_SECONDS = env.float("WEBHOOK_RETRY_BASE_SECONDS", 5.0, minimum=0.0)
# Workers older than this are not counted by /health (they refresh every few seconds).
WORKER_HEARTBEAT_TTL_SECONDS = env.int("WORKER_HEARTBEAT_TTL_SECONDS", 15, minimum=3)

# --- Reliability and abuse limits -----------------------------------------------------

# Each synthesis gets base + per-character seconds (soft limit; hard = soft + 30 s), capped
# by CELERY_TASK_SOFT_TIME_LIMIT / CELERY_TASK_TIME_LIMIT.
JOB_TIME_LIMIT_BASE_SECONDS = env.int("JOB_TIME_LIMIT_BASE_SECONDS", 60, minimum=1)
JOB_TIME_LIMIT_PER_CHAR_SECONDS = env.float("JOB_TIME_LIMIT_PER_CHAR_SECONDS", 0.5, minimum=0.0)
# A job's worker may die on it (SIGKILL, OOM, segfault) at most this many times; a worker
# that dies on it every time (a poison input that crashes the engine) makes it fail with
# `worker_lost`, not loop. Counts worker deaths only, never the transient retries below.
JOB_MAX_ATTEMPTS = env.int("JOB_MAX_ATTEMPTS", 3, minimum=1)
# The sweeper (Celery beat) re-sends a queued job whose message may have been lost (a
# Redis restart without persistence) after this long, at most JOB_MAX_ENQUEUES times.
JOB_QUEUED_DEADLINE_SECONDS = env.int("JOB_QUEUED_DEADLINE_SECONDS", 600, minimum=1)
JOB_MAX_ENQUEUES = env.int("JOB_MAX_ENQUEUES", 5, minimum=1)
# A running job older than the hard time limit plus this grace lost its worker.
JOB_RUNNING_GRACE_SECONDS = env.int("JOB_RUNNING_GRACE_SECONDS", 60, minimum=0)
JOB_SWEEP_INTERVAL_SECONDS = env.float("JOB_SWEEP_INTERVAL_SECONDS", 60.0, minimum=0.5)
# The broker watch (voice_tts/services/broker.py): every BROKER_WATCH_SECONDS (beat, and each
# worker once as it starts) the queued jobs sent more than BROKER_RECONCILE_GRACE_SECONDS ago
# (a message on its way is not a lost one) are compared with the messages the broker holds, and
# the missing ones are sent again: a Redis that lost its data costs about a minute, not
# JOB_QUEUED_DEADLINE_SECONDS. The broker is not read when it holds more than
# BROKER_RECONCILE_SCAN_LIMIT messages (then the sweeper's deadline applies).
BROKER_WATCH_SECONDS = env.float("BROKER_WATCH_SECONDS", 15.0, minimum=0.5)
BROKER_RECONCILE_GRACE_SECONDS = env.float("BROKER_RECONCILE_GRACE_SECONDS", 10.0, minimum=0.0)
BROKER_RECONCILE_SCAN_LIMIT = env.int("BROKER_RECONCILE_SCAN_LIMIT", 20000, minimum=1)
# Transient synthesis errors (the engine's server down or restarting: `engine_unavailable`;
# the clip lock busy or Redis gone: `lock_timeout`, `lock_unavailable`) are retried up to
# JOB_TRANSIENT_RETRIES times, the n-th after a random wait in [0, min(JOB_RETRY_MAX_SECONDS,
# JOB_RETRY_BASE_SECONDS * 2**(n-1))] (full jitter); then the job fails with the error's code.
# Keep JOB_RETRY_MAX_SECONDS below JOB_QUEUED_DEADLINE_SECONDS, or the sweeper re-sends jobs
# that are only waiting out a retry's countdown (harmless, but it lengthens their schedule).
JOB_TRANSIENT_RETRIES = env.int("JOB_TRANSIENT_RETRIES", 5, minimum=0)
JOB_RETRY_BASE_SECONDS = env.float("JOB_RETRY_BASE_SECONDS", 2.0, minimum=0.0)
JOB_RETRY_MAX_SECONDS = env.float("JOB_RETRY_MAX_SECONDS", 60.0, minimum=0.0)
# Fair turns (voice_tts/services/turns.py, docs/operations.md#fair-turns-and-priority): the
# database is the queue of record. Each user has at most JOBS_IN_FLIGHT_PER_USER jobs handed to the
# broker at once (nightly batch jobs at most one fewer, so a user's own batch never takes the slot
# their next request needs); the rest wait as rows and are released round-robin across users,
# interactive before batch, as jobs finish. Beat releases every JOBS_RELEASE_SECONDS too: the
# safety net for a release that a crash or a broker outage cut short.
JOBS_IN_FLIGHT_PER_USER = env.int("JOBS_IN_FLIGHT_PER_USER", 2, minimum=1)
JOBS_RELEASE_SECONDS = env.float("JOBS_RELEASE_SECONDS", 5.0, minimum=0.5)
# Webhook targets that resolve to loopback/private/link-local/reserved addresses are
# refused (SSRF) unless they fall in one of these networks, e.g. "127.0.0.1/32".
WEBHOOK_ALLOWED_NETWORKS = env.networks("WEBHOOK_ALLOWED_NETWORKS")
WEBHOOK_SECRET_GRACE_SECONDS = env.int("WEBHOOK_SECRET_GRACE_SECONDS", 24 * 3600, minimum=0)
# A user's unfinished (queued or running) interactive jobs: beyond this a request that would queue
# more is a 429 `too_many_pending_jobs` with Retry-After. 100 lets three of the largest speech
# requests (SPEECH_MAX_SEGMENTS each) wait at once; a stopped worker never piles up thousands.
# Nightly pre-generation (the batch queue) is neither refused nor counted.
USER_MAX_PENDING_JOBS = env.int("USER_MAX_PENDING_JOBS", 100, minimum=1)
# DRF throttle rates per user ("N/second|minute|hour|day"). `jobs` counts syntheses: one per job
# request, one per synthesis a /v1/audio/speech request queues (its cache hits are free).
THROTTLE_RATES = {
    "jobs": env.rate("THROTTLE_JOBS_RATE", "120/min"),
    "uploads": env.rate("THROTTLE_UPLOADS_RATE", "30/hour"),
    # POST /v1/audio/speech (OpenAI-compatible): one request is up to 4096 characters, many jobs.
    "speech": env.rate("THROTTLE_SPEECH_RATE", "60/min"),
}
# API tokens (voice_tts/services/tokens.py): valid this many days from login (not refreshed by
# use); keys of DRF's plain authtoken table keep working until the deadline, their first use
# re-storing them as a digest.
ACCESS_TOKEN_DAYS = env.int("ACCESS_TOKEN_DAYS", 30, minimum=1)
LEGACY_TOKEN_DEADLINE = env.datetime("LEGACY_TOKEN_DEADLINE", "2027-03-01T00:00:00+00:00")
# Failed logins (API and admin; voice_tts/services/logins.py): this many per (username, client
# address), or per address for any username, lock that pair (or address) for LOGIN_LOCKOUT_SECONDS.
LOGIN_FAILURES_PER_USER_IP = env.int("LOGIN_FAILURES_PER_USER_IP", 5, minimum=1)
LOGIN_FAILURES_PER_IP = env.int("LOGIN_FAILURES_PER_IP", 50, minimum=1)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", 900, minimum=1)
# Who copies audio bytes to the client once the view has authorised them: "" (Django streams
# the file), "x-accel-redirect" (nginx; internal location AUDIO_ACCEL_REDIRECT_PREFIX aliased
# to MEDIA_ROOT) or "x-sendfile" (Apache mod_xsendfile, lighttpd). Frees the web worker at once.
AUDIO_SENDFILE = env.choice("AUDIO_SENDFILE", "", ["", "x-accel-redirect", "x-sendfile"])
AUDIO_ACCEL_REDIRECT_PREFIX = env.str("AUDIO_ACCEL_REDIRECT_PREFIX", "/protected-media/")
# Upper bound on how long a cached token -> user entry lives (it is dropped at once when the
# token or the user changes through the ORM; this bounds changes made behind its back).
TOKEN_CACHE_SECONDS = env.int("TOKEN_CACHE_SECONDS", 300, minimum=0)
# Clip uses (access_count, last_accessed_at) are counted in Redis on every hit and added to the
# rows by beat this often (voice_tts/services/clips.py: clip_uses_flush says what a crash costs).
CLIP_USE_FLUSH_SECONDS = env.float("CLIP_USE_FLUSH_SECONDS", 60.0, minimum=0.5)
# Workers return freed heap to the OS every N syntheses (glibc malloc_trim; workers/memory.py); 0: never.
WORKER_HEAP_TRIM_EVERY = env.int("WORKER_HEAP_TRIM_EVERY", 50, minimum=0)
# Clips kept per user; the least recently used unpinned ones are evicted beyond it.
CLIP_QUOTA_PER_USER = env.int("CLIP_QUOTA_PER_USER", 5000, minimum=1)

# --- Celery -------------------------------------------------------------------------

# Every Redis key this project writes (Celery's and ours) starts with this prefix, so
# several deployments (or test runs) can share one Redis without seeing each other.
REDIS_KEY_PREFIX = env.str("CAREPILL_REDIS_PREFIX", "carepill:")
CELERY_BROKER_URL = env.url("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0",
                            schemes=["redis", "rediss", "redis+socket", "unix"])
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "global_keyprefix": REDIS_KEY_PREFIX,
    # Must exceed the longest task's hard time limit, or Redis redelivers a task that
    # is still running (acks_late).
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=60),
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# No result backend: every task ignores its result; the Job row is the record of a synthesis
# and of its webhook, and a task's return value is read by nobody.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", 300, minimum=1)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", 360, minimum=2)
CELERY_WORKER_MAX_TASKS_PER_CHILD = env.int("CELERY_WORKER_MAX_TASKS_PER_CHILD", 1000, minimum=1)
CELERY_WORKER_MAX_MEMORY_PER_CHILD = env.int("CELERY_WORKER_MAX_MEMORY_PER_CHILD", 4_000_000, minimum=1)  # KiB
# Celery's Django fixup closes every database connection before and after each task, ignoring
# CONN_MAX_AGE: a new PostgreSQL connection per job, ~6 ms of the queue's overhead per job here
# (bench/RESULTS.md). Its own escape hatch keeps the connection for this many tasks instead (0:
# Celery's default, a new connection per task); voice_tts/worker/signals.py adds Django's per-request
# checks and drops the connection after any task that did not end cleanly.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", 500, minimum=0)
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    "jobs-sweep": {"task": "voice_tts.tasks.jobs_sweep_task", "schedule": JOB_SWEEP_INTERVAL_SECONDS},
    "clip-uses-flush": {"task": "voice_tts.tasks.clip_uses_flush_task", "schedule": CLIP_USE_FLUSH_SECONDS},
    # Expires after one interval (django-celery-beat's option name): while no worker runs,
    # checks do not pile up in the queue; the next one supersedes them.
    "broker-reconcile": {"task": "voice_tts.tasks.broker_reconcile_task", "schedule": BROKER_WATCH_SECONDS,
                         "options": {"expire_seconds": max(1, round(BROKER_WATCH_SECONDS))}},
    "jobs-release": {"task": "voice_tts.tasks.jobs_release_task", "schedule": JOBS_RELEASE_SECONDS,
                     "options": {"expire_seconds": max(1, round(JOBS_RELEASE_SECONDS))}},
}
# Queue names live here; `make run` starts a worker consuming all of them.
SYNTHESIS_QUEUE = env.str("SYNTHESIS_QUEUE", "synthesis")
WEBHOOK_QUEUE = env.str("WEBHOOK_QUEUE", "webhooks")
CELERY_TASK_DEFAULT_QUEUE = WEBHOOK_QUEUE
CELERY_TASK_ROUTES = {
    "voice_tts.tasks.job_synthesize_task": {"queue": SYNTHESIS_QUEUE},
    "voice_tts.tasks.webhook_deliver_task": {"queue": WEBHOOK_QUEUE},
    "voice_tts.tasks.jobs_sweep_task": {"queue": WEBHOOK_QUEUE},
    "voice_tts.tasks.clip_uses_flush_task": {"queue": WEBHOOK_QUEUE},
    "voice_tts.tasks.broker_reconcile_task": {"queue": WEBHOOK_QUEUE},
    "voice_tts.tasks.jobs_release_task": {"queue": WEBHOOK_QUEUE},
}
# With queue_order_strategy=priority (below) a worker that consumes several queues polls
# them in this order: webhook deliveries and the sweeper are short and must never starve
# behind a synthesis backlog in a single-worker setup (`make run`).
CELERY_QUEUES_ALL = [WEBHOOK_QUEUE, SYNTHESIS_QUEUE]
# A worker started without -Q consumes every queue declared here.
CELERY_TASK_QUEUES = [Queue(name, routing_key=name) for name in CELERY_QUEUES_ALL]

# --- Logging ------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "security": {"()": "voice_tts.security_log.EventFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "security": {"class": "logging.StreamHandler", "formatter": "security"},
    },
    # Security events as JSON lines (voice_tts/security_log.py), not mixed into the plain log.
    "loggers": {"voice_tts.security": {"handlers": ["security"], "level": "INFO", "propagate": False}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", "INFO")},
}

# --- Reminders, batch pre-generation, operations (issue 6) ---------------------------

INSTALLED_APPS += ["django_celery_beat"]
# Nightly pre-generation lives in the database (django-celery-beat) so admins see and
# edit it; migration voice_tts.0002 creates the entry once and never overwrites it.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Batch (nightly) synthesis goes to its own queue, consumed by the same synthesis
# workers AFTER the interactive one: with the "priority" order strategy kombu's Redis
# transport polls queues in the order the worker was given them (-Q), instead of
# round-robin, so a free worker always takes a caregiver's job before a batch job.
SYNTHESIS_BATCH_QUEUE = env.str("SYNTHESIS_BATCH_QUEUE", "synthesis_batch")
CELERY_BROKER_TRANSPORT_OPTIONS["queue_order_strategy"] = "priority"
CELERY_QUEUES_ALL = [*CELERY_QUEUES_ALL, SYNTHESIS_BATCH_QUEUE]
# Last in the list: a worker started without -Q consumes it after the others.
CELERY_TASK_QUEUES = [*CELERY_TASK_QUEUES, Queue(SYNTHESIS_BATCH_QUEUE, routing_key=SYNTHESIS_BATCH_QUEUE)]
# Users processed per database round trip by the pre-generation service.
REMINDERS_BATCH_SIZE = env.int("REMINDERS_BATCH_SIZE", 200, minimum=1)
# Bearer token for GET /metrics (Prometheus); empty disables the endpoint (404).
METRICS_TOKEN = env.secret("METRICS_TOKEN", "")

# --- The reminder loop (docs/reminder-loop.md) --------------------------------------------

# A dose not confirmed this long after its time becomes `unconfirmed` (played) or `missed` (never
# played), and the caregiver gets one alert for it. The Pi reads it from the bundle: it is also how
# long the senior has to confirm.
DOSE_ALERT_MINUTES = env.int("DOSE_ALERT_MINUTES", 30, minimum=1, maximum=24 * 60)
# A household whose Pi has not been heard from this long gets one "the Pi is silent" alert. A
# running `carepill-voice run` is heard from every minute, so keep this well above 1.
DEVICE_SILENT_MINUTES = env.int("DEVICE_SILENT_MINUTES", 90, minimum=2)
# Beat, this often: make doses ahead, close their windows, watch for silent Pis, send alerts.
CARE_TICK_SECONDS = env.float("CARE_TICK_SECONDS", 60.0, minimum=1.0)
# An alert whose channel refused the connection (nothing was sent) is tried again this many times.
ALERT_SEND_RETRIES = env.int("ALERT_SEND_RETRIES", 5, minimum=0)
# The pages' address in alerts ("see it here").
CARE_PAGES_URL = env.str("CARE_PAGES_URL", PUBLIC_BASE_URL.rstrip("/") + "/voice/")
CELERY_BEAT_SCHEDULE["care-tick"] = {
    "task": "voice_tts.tasks.care_tick_task", "schedule": CARE_TICK_SECONDS,
    "options": {"expire_seconds": max(1, round(CARE_TICK_SECONDS))},
}
CELERY_TASK_ROUTES["voice_tts.tasks.care_tick_task"] = {"queue": WEBHOOK_QUEUE}
CELERY_TASK_ROUTES["voice_tts.tasks.care_alert_send_task"] = {"queue": WEBHOOK_QUEUE}

# Mail (alerts) through Django's SMTP backend, from the standard names.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", "localhost")
EMAIL_PORT = env.int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env.secret("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL are exclusive: set one")
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", "CarePill Voice <carepill@localhost>")

# Media on S3-compatible storage (several hosts, no shared disk): STORAGE_BACKEND=s3 and
# `pip install -r requirements-s3.txt` (docs/operations.md, "Scaling out"). Objects are private and audio goes
# through the authenticated views (apis/audio.py streams it from the bucket): no URL into the
# bucket, presigned or not, is ever handed out.
STORAGE_BACKEND = env.choice("STORAGE_BACKEND", "local", ["local", "s3"])
# A worker copies each reference it synthesises with into <DATA_DIR>/reference-cache (engines read
# files); every synthesis worker process removes the copies of deleted voices this often, because
# only the host that holds a copy can remove it (services/voices.py: voice_reference_cache_prune).
VOICE_REFERENCE_CACHE_PRUNE_SECONDS = env.float("VOICE_REFERENCE_CACHE_PRUNE_SECONDS", 60.0, minimum=0.1)
# Objects up to this size are written with one PUT (never a multipart upload), which S3 makes
# visible all at once or not at all: no partial object and no temp name ever exists in the bucket.
# Our largest objects (clips of a 500-character text) are a few MB; a single PUT may be 5 GiB.
S3_SINGLE_PUT_MAX_BYTES = 1024**3


def s3_storage_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """STORAGES["default"] for STORAGE_BACKEND=s3, from the S3_* variables in `environ` (os.environ
    when None; tests pass their own server's, so the backend's options are defined once). The keys
    may come from files (S3_ACCESS_KEY_ID_FILE, S3_SECRET_ACCESS_KEY_FILE)."""
    s3_env = Env(environ, error=ImproperlyConfigured)
    bucket = s3_env.str("S3_BUCKET", "")
    if not bucket:
        raise ImproperlyConfigured("S3_BUCKET must be set when STORAGE_BACKEND=s3")
    addressing = s3_env.str("S3_ADDRESSING_STYLE", "")
    if addressing not in {"", "path", "virtual"}:
        raise ImproperlyConfigured(f"S3_ADDRESSING_STYLE must be path, virtual or empty, got {addressing!r}")
    if importlib.util.find_spec("storages") is None or importlib.util.find_spec("boto3") is None:
        raise ImproperlyConfigured("STORAGE_BACKEND=s3 needs `pip install -r requirements-s3.txt`")
    from boto3.s3.transfer import TransferConfig  # only installed for S3 (requirements-s3.txt)

    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": s3_env.str("S3_ENDPOINT_URL", "") or None,  # MinIO, Ceph, R2...
            "region_name": s3_env.str("S3_REGION", "") or None,
            "access_key": s3_env.secret("S3_ACCESS_KEY_ID", "") or None,
            "secret_key": s3_env.secret("S3_SECRET_ACCESS_KEY", "") or None,
            "location": s3_env.str("S3_PREFIX", "carepill"),
            # MinIO and most self-hosted servers want path-style URLs (no bucket.host DNS name).
            "addressing_style": addressing or None,
            # No ACL header: objects are private to the bucket owner by default, and buckets with
            # ACLs disabled (AWS's default since 2023) refuse any PUT that names an ACL but
            # bucket-owner-full-control.
            "default_acl": None,
            # A stray .url() is signed and expires; the service itself never calls it.
            "querystring_auth": True,
            "querystring_expire": 300,
            # Clip names are content-addressed and rewritten in place (a PUT replaces atomically).
            "file_overwrite": True,
            "transfer_config": TransferConfig(multipart_threshold=S3_SINGLE_PUT_MAX_BYTES),
            # A read (the audio views, the reference copy) is buffered in memory up to this size,
            # then in a local temp file: per-process, never a shared disk.
            "max_memory_size": 4 * 1024 * 1024,
        },
    }


if STORAGE_BACKEND == "s3":
    STORAGES["default"] = s3_storage_config()
    if AUDIO_SENDFILE:
        # Both hand a path on the web's disk to the proxy: there is none on S3.
        raise ImproperlyConfigured("AUDIO_SENDFILE must be empty when STORAGE_BACKEND=s3 (the view streams the audio)")

# --- OpenAPI schema (drf-spectacular), served at /api/schema/ --------------------------

INSTALLED_APPS += ["drf_spectacular"]
REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "drf_spectacular.openapi.AutoSchema"
SPECTACULAR_SETTINGS = {
    "TITLE": "CarePill Voice API",
    "DESCRIPTION": (
        "Voice-cloning speech for medication reminders. Every endpoint but login, health and this schema "
        "needs `Authorization: Token <key>`. Errors are `{code, message}`; other users' objects answer 404."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema is public (it describes the API, not anyone's data).
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"LanguageEnum": "voice_tts.services.job_text.SUPPORTED_LANGUAGES",
                            "AdaptationOutcomeEnum": "voice_tts.models.ADAPTATION_OUTCOMES",
                            "PlayOutcomeEnum": "voice_tts.services.plays.PLAY_OUTCOMES"},
}

# neural_cpu style adaptation per voice (issue 26, services/voice_adaptation.py): steps of the
# search in all, steps per slice (one task on the batch queue; interactive and reminder jobs wait
# at most one slice), and a slice's time limits. ~3.5-4 s per step on 2 idle cores, ~8 s at load 7:
# 60 steps keep one voice within the 10 minutes even on the loaded box (and the walk's
# own score stalled by ~30 steps in every run measured).
# Off by default: its benchmarks (bench/RESULTS.md, four references, two from real speakers) show Korean
# intelligibility kept (walk-3) but almost no similarity gain (+0.000 to +0.015) over matching by an encoder
# the search does not use.
VOICE_ADAPT_ENABLED = env.bool("VOICE_ADAPT_ENABLED", False)
VOICE_ADAPT_STEPS = env.int("VOICE_ADAPT_STEPS", 60, minimum=1)
VOICE_ADAPT_STEPS_PER_SLICE = env.int("VOICE_ADAPT_STEPS_PER_SLICE", 6, minimum=1)
VOICE_ADAPT_SLICE_SOFT_SECONDS = env.int("VOICE_ADAPT_SLICE_SOFT_SECONDS", 120, minimum=5)
VOICE_ADAPT_SLICE_HARD_SECONDS = VOICE_ADAPT_SLICE_SOFT_SECONDS + 30
# A search with no slice sent or stored for this long lost its message (a broker restart): the sweep resends it.
VOICE_ADAPT_RESEND_SECONDS = env.int("VOICE_ADAPT_RESEND_SECONDS", 900, minimum=60)
