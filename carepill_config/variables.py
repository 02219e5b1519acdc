"""Every environment variable CarePill Voice reads, declared once: its name, its group, what it does.

The type, default and bounds live where the value is read (medicine_project/settings.py next to the
setting it feeds, workers/engines/*, medicine_project/gunicorn_conf.py), beside the comment that
explains the choice; this catalogue is the list of names. `Env` refuses a name that is not here, and
tests/test_config.py checks it against `.env.example` (both ways) and against the names the code
reads. `secret=True` also accepts NAME_FILE (carepill_config/reader.py). `read_by="compose"`:
read by docker compose (interpolation in compose.yaml) or by another program in the deployment,
not by our Python code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Variable:
    name: str
    group: str
    help: str
    secret: bool = False
    read_by: Literal["code", "compose"] = "code"


_CORE = "Core"
_DATABASE = "Database, Redis and Celery"
_HTTP = "HTTPS and the web server"
_VOICE = "Voices, jobs and speech"
_LIMITS = "Reliability and abuse limits"
_CARE = "The reminder loop and alert mail"
_STORAGE = "Media storage (local or S3)"
_ENGINES = "Speech engines (read by the synthesis workers)"
_COMPOSE = "Docker compose"
_TESTS = "Tests and development"

_DECLARED = (
    # --- Core -------------------------------------------------------------------------------------
    Variable("DJANGO_SECRET_KEY", _CORE, "Django's secret key; required unless DJANGO_DEBUG is on", secret=True),
    Variable("DJANGO_DEBUG", _CORE, "Django's debug mode (never in production)"),
    Variable("DJANGO_ALLOWED_HOSTS", _CORE, "comma-separated host names the web answers to"),
    Variable("CAREPILL_DATA_DIR", _CORE, "the SQLite file, the model cache and other local state"),
    Variable("MEDIA_ROOT", _CORE, "voices and clips on the local disk (STORAGE_BACKEND=local)"),
    Variable("STATIC_ROOT", _CORE, "where collectstatic writes the pages' static files"),
    Variable("TIME_ZONE", _CORE, "the service's time zone (reminder times, beat)"),
    Variable("LOG_LEVEL", _CORE, "the root logger's level"),
    Variable("PUBLIC_BASE_URL", _CORE, "base of absolute URLs in webhook payloads"),
    Variable("METRICS_TOKEN", _CORE, "bearer token for GET /metrics (Prometheus); empty: the route is off",
             secret=True),
    # --- Database, Redis and Celery --------------------------------------------------------------
    Variable("DATABASE_URL", _DATABASE, "sqlite:///path or postgres://user:password@host:port/name", secret=True),
    Variable("DB_CONN_MAX_AGE", _DATABASE, "seconds a database connection is kept for reuse"),
    Variable("CELERY_BROKER_URL", _DATABASE, "the Redis that carries tasks, caches and heartbeats"),
    Variable("CAREPILL_REDIS_PREFIX", _DATABASE, "prefix of every Redis key, so deployments can share a Redis"),
    Variable("CELERY_VISIBILITY_TIMEOUT", _DATABASE, "seconds before Redis redelivers an unacknowledged task"),
    Variable("CELERY_TASK_SOFT_TIME_LIMIT", _DATABASE, "a task's soft time limit in seconds"),
    Variable("CELERY_TASK_TIME_LIMIT", _DATABASE, "a task's hard time limit in seconds"),
    Variable("CELERY_WORKER_MAX_TASKS_PER_CHILD", _DATABASE, "tasks before a worker process is replaced"),
    Variable("CELERY_WORKER_MAX_MEMORY_PER_CHILD", _DATABASE, "KiB of memory before a worker process is replaced"),
    Variable("CELERY_DB_REUSE_MAX", _DATABASE, "tasks a worker process keeps its database connection for"),
    Variable("SYNTHESIS_QUEUE", _DATABASE, "the interactive synthesis queue's name"),
    Variable("SYNTHESIS_BATCH_QUEUE", _DATABASE, "the nightly pre-generation queue's name"),
    Variable("WEBHOOK_QUEUE", _DATABASE, "the queue of webhooks, the sweeper and the care tick"),
    Variable("WORKER_HEARTBEAT_TTL_SECONDS", _DATABASE, "a worker silent this long drops out of /health"),
    Variable("WORKER_HEAP_TRIM_EVERY", _DATABASE, "syntheses between returns of freed heap to the OS; 0: never"),
    # --- HTTPS and the web server ----------------------------------------------------------------
    Variable("DJANGO_HTTPS", _HTTP, "served over HTTPS by a TLS-terminating proxy: redirect, HSTS, secure cookies"),
    Variable("DJANGO_HSTS_SECONDS", _HTTP, "HSTS max-age with DJANGO_HTTPS on"),
    Variable("DJANGO_HSTS_INCLUDE_SUBDOMAINS", _HTTP, "HSTS for subdomains too"),
    Variable("DJANGO_HSTS_PRELOAD", _HTTP, "ask browsers to preload HSTS (the domain owner's one-way choice)"),
    Variable("DJANGO_NUM_PROXIES", _HTTP, "reverse proxies in front that append to X-Forwarded-For"),
    Variable("AUDIO_SENDFILE", _HTTP, "who sends audio bytes: empty (Django), x-accel-redirect or x-sendfile"),
    Variable("AUDIO_ACCEL_REDIRECT_PREFIX", _HTTP, "nginx's internal location aliased to MEDIA_ROOT"),
    Variable("WEB_WORKERS", _HTTP, "gunicorn worker processes (default: one per core)"),
    Variable("WEB_WORKER_CLASS", _HTTP, "the web's gunicorn worker class: sync, or gthread to hold streams too"),
    Variable("WEB_THREADS", _HTTP, "threads per web process with WEB_WORKER_CLASS=gthread"),
    Variable("STREAM_WORKERS", _HTTP, "the /v1 stream server's gunicorn processes (default: one per core)"),
    Variable("STREAM_THREADS", _HTTP, "threads per stream server process: open /v1 streams + short /v1 requests"),
    # --- Voices, jobs and speech -----------------------------------------------------------------
    Variable("TTS_ENGINE", _VOICE, "the engine workers load: neural_cpu, espeak, gpt_sovits, gpt_sovits_http, tone"),
    Variable("VOICE_MAX_UPLOAD_BYTES", _VOICE, "largest voice upload (413 beyond it)"),
    Variable("VOICE_MIN_SECONDS", _VOICE, "shortest speech in a voice sample, after trimming silence"),
    Variable("VOICE_MAX_SECONDS", _VOICE, "longest speech in a voice sample, after trimming silence"),
    Variable("VOICE_MAX_DECODE_SECONDS", _VOICE, "longest upload decoded at all"),
    Variable("VOICE_SAMPLE_RATE", _VOICE, "sample rate of stored references"),
    Variable("VOICE_TARGET_LUFS", _VOICE, "loudness of stored references"),
    Variable("VOICE_REFERENCE_CACHE_PRUNE_SECONDS", _VOICE, "how often workers drop local copies of deleted voices"),
    Variable("JOB_TEXT_MAX_CHARS", _VOICE, "longest text of one job"),
    Variable("GENERATE_WAIT_MAX_SECONDS", _VOICE, "cap of /generate/?wait="),
    Variable("SPEECH_SENTENCE_WAIT_SECONDS", _VOICE, "/v1/audio/speech's wait for each sentence"),
    Variable("SPEECH_WAKE_FALLBACK_SECONDS", _VOICE, "a /v1 stream re-reads its job's state this often without a push"),
    Variable("SPEECH_DEADLINE_SECONDS", _VOICE, "/v1/audio/speech's wait for the whole answer"),
    Variable("SPEECH_MAX_SEGMENTS", _VOICE, "syntheses one /v1/audio/speech request may queue"),
    Variable("VOICE_ADAPT_ENABLED", _VOICE, "adapt neural_cpu's style to each new voice (off: no honest gain yet)"),
    Variable("VOICE_ADAPT_STEPS", _VOICE, "steps of a voice's style search in all"),
    Variable("VOICE_ADAPT_STEPS_PER_SLICE", _VOICE, "steps of the style search per batch-queue task"),
    Variable("VOICE_ADAPT_SLICE_SOFT_SECONDS", _VOICE, "soft time limit of one style-search slice"),
    Variable("VOICE_ADAPT_RESEND_SECONDS", _VOICE, "a style search idle this long is resent by the sweep"),
    Variable("CLIP_QUOTA_PER_USER", _VOICE, "clips kept per user (least recently used evicted)"),
    Variable("CLIP_USE_FLUSH_SECONDS", _VOICE, "how often clip uses counted in Redis reach the database"),
    Variable("REMINDERS_BATCH_SIZE", _VOICE, "users per database round trip of nightly pre-generation"),
    Variable("WEBHOOK_TIMEOUT_SECONDS", _VOICE, "a webhook delivery's timeout"),
    Variable("WEBHOOK_MAX_ATTEMPTS", _VOICE, "webhook delivery attempts"),
    Variable("WEBHOOK_RETRY_BASE_SECONDS", _VOICE, "first wait between webhook attempts (doubles)"),
    Variable("WEBHOOK_ALLOWED_NETWORKS", _VOICE, "CIDRs allowed as webhook targets although private or loopback"),
    Variable("WEBHOOK_SECRET_GRACE_SECONDS", _VOICE, "an old webhook secret's validity after a rotation"),
    # --- Reliability and abuse limits ------------------------------------------------------------
    Variable("JOB_TIME_LIMIT_BASE_SECONDS", _LIMITS, "a synthesis' soft time limit: this base"),
    Variable("JOB_TIME_LIMIT_PER_CHAR_SECONDS", _LIMITS, "a synthesis' soft time limit: plus this per character"),
    Variable("JOB_MAX_ATTEMPTS", _LIMITS, "worker deaths on one job before it fails worker_lost"),
    Variable("JOB_QUEUED_DEADLINE_SECONDS", _LIMITS, "the sweeper re-sends a queued job after this long"),
    Variable("JOB_MAX_ENQUEUES", _LIMITS, "how many times the sweeper re-sends one job"),
    Variable("JOB_RUNNING_GRACE_SECONDS", _LIMITS, "a running job past the hard limit plus this lost its worker"),
    Variable("JOB_SWEEP_INTERVAL_SECONDS", _LIMITS, "how often beat runs the sweeper"),
    Variable("JOB_TRANSIENT_RETRIES", _LIMITS, "retries of transient synthesis errors"),
    Variable("JOB_RETRY_BASE_SECONDS", _LIMITS, "first retry's longest wait (doubles, full jitter)"),
    Variable("JOB_RETRY_MAX_SECONDS", _LIMITS, "longest wait of any retry"),
    Variable("JOBS_IN_FLIGHT_PER_USER", _LIMITS, "jobs of one user handed to the broker at once (fair turns)"),
    Variable("JOBS_RELEASE_SECONDS", _LIMITS, "how often beat releases held jobs (fair turns' safety net)"),
    Variable("BROKER_WATCH_SECONDS", _LIMITS, "how often queued jobs are compared with the broker's messages"),
    Variable("BROKER_RECONCILE_GRACE_SECONDS", _LIMITS, "how old a send must be before it is looked for"),
    Variable("BROKER_RECONCILE_SCAN_LIMIT", _LIMITS, "most broker messages one check reads"),
    Variable("THROTTLE_JOBS_RATE", _LIMITS, "syntheses per user (N/min, N/hour...): job requests and speech segments"),
    Variable("USER_MAX_PENDING_JOBS", _LIMITS, "a user's unfinished (queued or running) interactive jobs"),
    Variable("THROTTLE_UPLOADS_RATE", _LIMITS, "voice uploads per user"),
    Variable("THROTTLE_SPEECH_RATE", _LIMITS, "/v1/audio/speech requests per user"),
    Variable("ACCESS_TOKEN_DAYS", _LIMITS, "API tokens expire this long after their login"),
    Variable("LEGACY_TOKEN_DEADLINE", _LIMITS, "old plain authtoken keys work until then (ISO 8601, with zone)"),
    Variable("LOGIN_FAILURES_PER_USER_IP", _LIMITS, "failed logins per (username, address) before a lockout"),
    Variable("LOGIN_FAILURES_PER_IP", _LIMITS, "failed logins per address before a lockout"),
    Variable("LOGIN_LOCKOUT_SECONDS", _LIMITS, "a lockout's length"),
    Variable("TOKEN_CACHE_SECONDS", _LIMITS, "longest life of a cached token -> user entry"),
    # --- The reminder loop and alert mail --------------------------------------------------------
    Variable("DOSE_ALERT_MINUTES", _CARE, "a dose not confirmed this long after its time alerts the caregiver"),
    Variable("DEVICE_SILENT_MINUTES", _CARE, "a Pi not heard from this long alerts the caregiver"),
    Variable("CARE_TICK_SECONDS", _CARE, "how often beat makes doses, closes windows and sends alerts"),
    Variable("ALERT_SEND_RETRIES", _CARE, "retries of an alert whose channel refused the connection"),
    Variable("CARE_PAGES_URL", _CARE, "the pages' address in alerts (default PUBLIC_BASE_URL + /voice/)"),
    Variable("EMAIL_BACKEND", _CARE, "Django's mail backend"),
    Variable("EMAIL_HOST", _CARE, "SMTP server"),
    Variable("EMAIL_PORT", _CARE, "SMTP port"),
    Variable("EMAIL_HOST_USER", _CARE, "SMTP user"),
    Variable("EMAIL_HOST_PASSWORD", _CARE, "SMTP password", secret=True),
    Variable("EMAIL_USE_TLS", _CARE, "STARTTLS (port 587); exclusive with EMAIL_USE_SSL"),
    Variable("EMAIL_USE_SSL", _CARE, "TLS from the start (port 465); exclusive with EMAIL_USE_TLS"),
    Variable("EMAIL_TIMEOUT", _CARE, "SMTP timeout in seconds"),
    Variable("DEFAULT_FROM_EMAIL", _CARE, "sender of alert mail"),
    # --- Media storage ---------------------------------------------------------------------------
    Variable("STORAGE_BACKEND", _STORAGE, "local (MEDIA_ROOT) or s3 (a bucket every host shares)"),
    Variable("S3_BUCKET", _STORAGE, "the bucket (required with STORAGE_BACKEND=s3)"),
    Variable("S3_ENDPOINT_URL", _STORAGE, "the S3 server for MinIO, Ceph, R2...; empty: AWS"),
    Variable("S3_REGION", _STORAGE, "the bucket's region"),
    Variable("S3_ACCESS_KEY_ID", _STORAGE, "access key; empty: boto3's own chain (instance role...)", secret=True),
    Variable("S3_SECRET_ACCESS_KEY", _STORAGE, "secret key; empty: boto3's own chain", secret=True),
    Variable("S3_PREFIX", _STORAGE, "prefix of every object name"),
    Variable("S3_ADDRESSING_STYLE", _STORAGE, "path (MinIO, most self-hosted servers), virtual; empty: boto3 decides"),
    # --- Speech engines --------------------------------------------------------------------------
    Variable("NEURAL_CPU_THREADS", _ENGINES, "neural_cpu: onnxruntime threads (default: min(2, cores))"),
    Variable("NEURAL_CPU_VOICE_FEMALE", _ENGINES, "neural_cpu: stock voice for higher-pitched references"),
    Variable("NEURAL_CPU_VOICE_MALE", _ENGINES, "neural_cpu: stock voice for lower-pitched references"),
    Variable("NEURAL_CPU_VOICES", _ENGINES, "neural_cpu: stock voices blended into matching candidates"),
    Variable("NEURAL_CPU_MATCH", _ENGINES, "neural_cpu: pick the closest voice blend to each reference"),
    Variable("NEURAL_CPU_QUALITY_WEIGHT", _ENGINES, "neural_cpu: closeness traded per point of estimated MOS"),
    Variable("NEURAL_CPU_ENVELOPE_STRENGTH", _ENGINES, "neural_cpu: share (0-1) of the envelope correction"),
    Variable("NEURAL_CPU_CACHE_DIR", _ENGINES, "neural_cpu: where the joined model lives"),
    Variable("GPTSOVITS_MODEL_PATH", _ENGINES, "gpt_sovits: the weights' directory (models/README.md)"),
    Variable("GPTSOVITS_GPT_WEIGHTS", _ENGINES, "gpt_sovits: a fine-tuned GPT checkpoint, not the release's"),
    Variable("GPTSOVITS_SOVITS_WEIGHTS", _ENGINES, "gpt_sovits: a fine-tuned SoVITS checkpoint, not the release's"),
    Variable("GPTSOVITS_DEVICE", _ENGINES, "gpt_sovits: cuda, cuda:N or cpu; empty: CUDA when there is one"),
    Variable("GPTSOVITS_TORCH_THREADS", _ENGINES, "gpt_sovits: torch threads per process (CPU default 1)"),
    Variable("GPTSOVITS_PROMPT_CACHE", _ENGINES, "gpt_sovits: references whose prompt features a worker keeps (16)"),
    Variable("GPTSOVITS_HOME", _ENGINES, "gpt_sovits: an upstream GPT-SoVITS checkout instead of the package"),
    Variable("GPT_SOVITS_DATA_DIR", _ENGINES, "gpt_sovits: parent of each process' private data directory"),
    Variable("GPTSOVITS_API_URL", _ENGINES, "gpt_sovits_http: the GPT-SoVITS api_v2 server"),
    Variable("GPTSOVITS_API_TIMEOUT", _ENGINES, "gpt_sovits_http: seconds one request may take"),
    Variable("GPTSOVITS_API_MODEL_VERSION", _ENGINES, "gpt_sovits_http: the model's name in cache keys"),
    # --- Docker compose --------------------------------------------------------------------------
    Variable("COMPOSE_PROFILES", _COMPOSE, "which synthesis worker runs: cpu or gpu", read_by="compose"),
    Variable("CAREPILL_HOSTNAME", _COMPOSE, "the name the proxy serves over HTTPS (and the web healthcheck asks)",
             read_by="compose"),
    Variable("POSTGRES_PASSWORD", _COMPOSE, "the compose PostgreSQL's password (put into DATABASE_URL)",
             read_by="compose"),
    Variable("WEB_PORT", _COMPOSE, "the web's port on 127.0.0.1 of the host", read_by="compose"),
    Variable("FLOWER_BASIC_AUTH", _COMPOSE, "Flower's user:password", read_by="compose"),
    Variable("FLOWER_PORT", _COMPOSE, "Flower's port on 127.0.0.1 of the host", read_by="compose"),
    # --- Tests and development -------------------------------------------------------------------
    Variable("CAREPILL_TEST_SQLITE", _TESTS, "the SQLite test database's file (shared with test workers)"),
    Variable("TONE_DELAY_SECONDS", _TESTS, "tone (a stand-in engine): seconds each synthesis sleeps"),
    Variable("TONE_CRASH_MARKER", _TESTS, "tone: a text containing it kills the worker process"),
    Variable("TONE_SAMPLE_RATE", _TESTS, "tone: the clips' sample rate"),
)

VARIABLES: dict[str, Variable] = {variable.name: variable for variable in _DECLARED}
if len(VARIABLES) != len(_DECLARED):
    raise RuntimeError("carepill_config/variables.py declares a name twice")


def variable_names() -> set[str]:
    """Every name a deployment may set: the declared ones, and NAME_FILE for each secret."""
    names = set(VARIABLES)
    names |= {f"{v.name}_FILE" for v in VARIABLES.values() if v.secret}
    return names
