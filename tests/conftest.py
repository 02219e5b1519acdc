"""Shared fixtures: users (Alice and Bob, on separate accounts), API clients, and a
real Celery worker process on the real local Redis, sharing the test database."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from tests.audio_samples import wav_bytes
from tests.smtp_server import SmtpServer
from tests.webhook_receiver import WebhookReceiver
from voice_tts.services.tokens import token_issue

ROOT = Path(__file__).resolve().parent.parent
# Messages compiled and static files collected once per run (the pages need both).
pytest_plugins = ["tests.browser_assets"]


@pytest.fixture
def make_user(db: Any) -> Callable[[str], Any]:
    from django.contrib.auth.models import User

    def make(username: str) -> Any:
        user = User.objects.create_user(username=username, password=f"{username}-pass-1234")
        user.token = token_issue(owner_id=user.id)
        return user

    return make


@pytest.fixture
def alice(make_user: Callable[[str], Any]) -> Any:
    return make_user("alice")


@pytest.fixture
def bob(make_user: Callable[[str], Any]) -> Any:
    return make_user("bob")


def api_client(user: Any | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {user.token}")
    return client


@pytest.fixture
def alice_api(alice: Any) -> APIClient:
    return api_client(alice)


@pytest.fixture
def bob_api(bob: Any) -> APIClient:
    return api_client(bob)


class HttpApi:
    """A requests session against the live server, authenticated as one user."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Token {token}"

    def url(self, path: str) -> str:
        return path if path.startswith("http") else self.base_url + path

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.url(path), timeout=30, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(self.url(path), timeout=60, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.delete(self.url(path), timeout=30, **kwargs)

    def upload_voice(self, seconds: float = 4.0, **fields: Any) -> requests.Response:
        return self.post("/api/tts/voices/", files={"voice_file": ("sample.wav", wav_bytes(seconds))}, data=fields)

    def wait_job(self, job_id: str, *, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            body = self.get(f"/api/tts/jobs/{job_id}/").json()
            if body["status"] in ("succeeded", "failed"):
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {body['status']} after {timeout}s: {body}")
            time.sleep(0.1)


@pytest.fixture
def alice_http(live_server: Any, alice: Any) -> HttpApi:
    return HttpApi(live_server.url, alice.token)


@pytest.fixture
def bob_http(live_server: Any, bob: Any) -> HttpApi:
    return HttpApi(live_server.url, bob.token)


def database_url_for_subprocess() -> str:
    """The URL of the database the tests run on, for the worker subprocess."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


class WorkerProcess:
    def __init__(self, proc: subprocess.Popen, log_path: Path, engine: str) -> None:
        self.proc = proc
        self.log_path = log_path
        self.engine = engine

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def states(self) -> list[dict[str, Any]]:
        from voice_tts.worker import status

        return [w for w in status.workers_live() if w.get("engine") == self.engine]

    def syntheses(self) -> int:
        return sum(w.get("syntheses", 0) for w in self.states())


def worker_start(*, engine: str, extra_env: dict[str, str] | None = None, concurrency: int = 2,
                 timeout: float = 120.0, queues: list[str] | None = None) -> WorkerProcess:
    env = os.environ.copy()
    env.update(
        DATABASE_URL=database_url_for_subprocess(),
        DJANGO_SETTINGS_MODULE="medicine_project.settings",
        TTS_ENGINE=engine,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra_env or {})
    log_path = Path(os.environ["CAREPILL_TEST_TMP"]) / f"worker-{uuid.uuid4().hex[:6]}.log"
    log = log_path.open("wb")
    # `queues`: a worker of its own queues (named in extra_env too), which the session's worker never takes.
    consumed = ",".join(queues or settings.CELERY_QUEUES_ALL)
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "medicine_project", "worker", "-Q", consumed, "-c", str(concurrency),
         "-P", "prefork", "--without-mingle", "--without-gossip", "-l", "info",
         "-n", f"test-{uuid.uuid4().hex[:6]}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    worker = WorkerProcess(proc, log_path, engine)
    deadline = time.monotonic() + timeout
    while len([w for w in worker.states() if w.get("pid")]) < concurrency:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"worker did not start:\n{worker.log()[-4000:]}")
        time.sleep(0.2)
    return worker


def worker_stop(worker: WorkerProcess) -> None:
    worker.proc.terminate()
    try:
        worker.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.proc.kill()
        worker.proc.wait()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A webhook receiver: a real HTTP server on 127.0.0.1 recording deliveries."""
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(autouse=True)
def _media_emptied_after_test() -> Iterator[None]:
    # The database is flushed after each test; the files that its rows named go too.
    yield
    media = Path(settings.MEDIA_ROOT)
    # ignore_errors: a live stack's worker may still be writing a clip a test let go of at its end (a job the test
    # failed while the worker waited on its lock); a file left behind names no row and no later test reads it.
    shutil.rmtree(media, ignore_errors=True)


def redis_keys_delete(pattern: str) -> None:
    """Delete this run's Redis keys matching `pattern` (after the run's key prefix)."""
    from voice_tts.redis_client import redis_client

    client = redis_client()
    keys = list(client.scan_iter(match=settings.REDIS_KEY_PREFIX + pattern, count=500))
    if keys:
        client.delete(*keys)


@pytest.fixture(autouse=True)
def _clip_use_counters_emptied() -> Iterator[None]:
    # Clip use counters are one hash for everyone: a test's counts must not reach the next test's
    # flush. The result cache goes too: a rolled-back test gives its user ids back (SQLite reuses
    # them), and the next test's user 1 must not inherit the last one's cached active voice.
    yield
    redis_keys_delete("clip_use:*")
    redis_keys_delete("hit:*")


@pytest.fixture
def stack_factory(transactional_db: Any) -> Iterator[Callable[..., Any]]:
    """Makes private stacks (tests/stack.py: own Redis, web, worker), each shut down after the test."""
    from tests.stack import ServiceStack  # tests/stack.py imports this module: no import at the top

    stacks: list[ServiceStack] = []

    def make(**kwargs: Any) -> ServiceStack:
        stack = ServiceStack(**kwargs)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.shutdown()


@pytest.fixture
def fake_server() -> Iterator[Callable[..., Any]]:
    """Makes the Pi tests' fake service (tests/test_pi_repeat.py's FakeServer) on a given clock and Pi,
    each stopped after the test."""
    from tests.test_pi_repeat import FakeServer  # a test module: imported only by the Pi tests that use it

    made: list[FakeServer] = []

    def make(clock: Any, pi: Any) -> FakeServer:
        made.append(FakeServer(clock, pi))
        return made[-1]

    yield make
    for server in made:
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def _redis_keys_removed_after_run() -> Iterator[None]:
    yield
    redis_keys_delete("*")


@pytest.fixture(scope="session")
def celery_worker(django_db_setup: Any, django_db_blocker: Any) -> Iterator[WorkerProcess]:
    """A real `celery worker` process (prefork, 2 children) with the espeak engine."""
    with django_db_blocker.unblock():
        worker = worker_start(engine="espeak")
    yield worker
    worker_stop(worker)


@pytest.fixture
def worker(celery_worker: WorkerProcess, transactional_db: Any) -> WorkerProcess:
    # Jobs are read by another process: the data must be committed, hence transactional_db.
    return celery_worker


@pytest.fixture(scope="session")
def _smtp_server_session() -> Iterator[SmtpServer]:
    server = SmtpServer(port=settings.EMAIL_PORT).start()
    yield server
    server.stop()


@pytest.fixture
def smtp_server(_smtp_server_session: SmtpServer, settings: Any) -> SmtpServer:
    """The run's SMTP server on 127.0.0.1:EMAIL_PORT (tests/settings.py): alert mail from this
    process and from the worker processes arrives here. Tests tell theirs apart by recipient.
    Django's test set-up swaps in the locmem backend; this puts the real SMTP one back."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    return _smtp_server_session
