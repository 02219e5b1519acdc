"""A whole service in subprocesses, on its own Redis, for tests that break things.

Fault tests kill workers and restart Redis; they must never touch the shared Redis on
6379 (other test runs use it), so they get a private redis-server on a free port, a
gunicorn web, a Celery worker and Celery beat, all sharing the test database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import redis
import requests

from medicine_project.devstack import free_port, redis_binary, stream_args, web_args
from tests.audio_samples import wav_bytes
from tests.conftest import ROOT, database_url_for_subprocess


class PrivateRedis:
    """redis-server without persistence: a restart loses every queued message."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.log_dir / f"redis-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--maxmemory-policy", "noeviction"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 20
        while True:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


def web_wait_answering(base_url: str, proc: subprocess.Popen, failure: Callable[[], str],
                       timeout: float = 60.0) -> None:
    """Return once `base_url` answers /api/tts/health/ (any status); raise with `failure()` if `proc` exits
    first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(base_url + "/api/tts/health/", timeout=5)
            return
        except requests.RequestException:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(failure()) from None
            time.sleep(0.1)


class ServiceStack:
    def __init__(self, *, engine: str = "tone", env: dict[str, str] | None = None, concurrency: int = 1) -> None:
        self.tmp = Path(os.environ["CAREPILL_TEST_TMP"]) / f"stack-{uuid.uuid4().hex[:6]}"
        self.tmp.mkdir(parents=True)
        self.redis = PrivateRedis(self.tmp)
        # Both ports are picked before either is bound: the kernel may hand out the same free one twice.
        self.port = free_port()
        while self.port == self.redis.port:
            self.port = free_port()
        self.concurrency = concurrency
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "medicine_project.settings",
            "DATABASE_URL": database_url_for_subprocess(),
            "CELERY_BROKER_URL": self.redis.url,
            "CAREPILL_REDIS_PREFIX": f"stack-{uuid.uuid4().hex[:6]}:",
            "CAREPILL_DATA_DIR": str(self.tmp / "var"),
            "TTS_ENGINE": engine,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = (self.tmp / f"{name}.log").open("ab")
        proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def start_web(self) -> None:
        self._spawn("web", [sys.executable, "-m", "gunicorn", "medicine_project.wsgi:application", "--bind",
                            f"127.0.0.1:{self.port}", "--workers", "2", "--timeout", "60"])
        self._wait_answering("web", self.base_url)

    def start_split(self) -> str:
        """The shipped split web, as `make run` starts it (medicine_project/devstack.py): the web (sync
        workers, gunicorn_conf.py) on base_url, the /v1 stream server (gthread, gunicorn_stream_conf.py)
        on the URL returned."""
        stream_port = free_port()
        while stream_port in (self.port, self.redis.port):
            stream_port = free_port()
        self._spawn("web", web_args(bind=f"127.0.0.1:{self.port}", workers=2))
        self._spawn("stream", stream_args(bind=f"127.0.0.1:{stream_port}", workers=2))
        stream_url = f"http://127.0.0.1:{stream_port}"
        self._wait_answering("web", self.base_url)
        self._wait_answering("stream", stream_url)
        return stream_url

    def _wait_answering(self, name: str, base_url: str) -> None:
        web_wait_answering(base_url, self.procs[name], lambda: f"{name} did not start:\n" + self.log(name))

    def start_worker(self) -> None:
        self._spawn("worker", [sys.executable, "-m", "celery", "-A", "medicine_project", "worker", "-c",
                               str(self.concurrency), "-P", "prefork", "--without-mingle", "--without-gossip",
                               "-l", "info", "-n", f"stack-{uuid.uuid4().hex[:6]}@%h"])
        self.wait_ready()

    def start_beat(self) -> None:
        self._spawn("beat", [sys.executable, "-m", "celery", "-A", "medicine_project", "beat", "-l", "info",
                             "-s", str(self.tmp / "beat-schedule")])

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc and proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def start(self, *, beat: bool = False) -> ServiceStack:
        self.redis.start()
        self.start_web()
        self.start_worker()
        if beat:
            self.start_beat()
        return self

    def shutdown(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        self.redis.stop()

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def workers(self) -> list[dict[str, Any]]:
        import json

        client = redis.Redis.from_url(self.redis.url)
        prefix = self.env["CAREPILL_REDIS_PREFIX"]
        keys = list(client.scan_iter(match=prefix + "worker:*"))
        return [json.loads(raw) for raw in client.mget(keys) if raw] if keys else []

    def wait_ready(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            ready = [w for w in self.workers() if w.get("ready")]
            if len(ready) >= self.concurrency:
                return ready
            if time.monotonic() > deadline or self.procs["worker"].poll() is not None:
                raise RuntimeError("worker not ready:\n" + self.log("worker"))
            time.sleep(0.1)


class StackClient:
    def __init__(self, stack: ServiceStack, token: str) -> None:
        self.stack = stack
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(self.stack.base_url + path, timeout=60, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.stack.base_url + path, timeout=60, **kwargs)

    def upload_voice(self) -> requests.Response:
        return self.post("/api/tts/voices/", files={"voice_file": ("v.wav", wav_bytes(4.0))})

    def job(self, text: str, **extra: Any) -> dict[str, Any]:
        response = self.post("/api/tts/jobs/", json={"text": text, "language": "en", **extra})
        assert response.status_code in (200, 202), response.text
        return response.json()

    def wait(self, job_id: str, *, until: tuple[str, ...] = ("succeeded", "failed"), timeout: float = 90.0
             ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            body = self.get(f"/api/tts/jobs/{job_id}/").json()
            if body["status"] in until:
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} is {body['status']}, wanted {until}\n"
                                     f"worker log:\n{self.stack.log('worker')}")
            time.sleep(0.1)


def speech_user_enrol(stack: ServiceStack, make_user: Any, prefix: str) -> Any:
    """A new user with one voice enrolled through the stack's API: `.client` (StackClient), `.voice_id`,
    and `.sdk`, the OpenAI SDK pointed at the stack's /v1 with the user's key (no retries: a test sees
    every answer)."""
    user = make_user(f"{prefix}{uuid.uuid4().hex[:8]}")
    user.client = StackClient(stack, user.token)
    voice = user.client.upload_voice()
    assert voice.status_code == 201, voice.text
    user.voice_id = voice.json()["id"]
    user.sdk = openai.OpenAI(api_key=user.token, base_url=stack.base_url + "/v1", max_retries=0, timeout=60)
    return user
