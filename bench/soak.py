"""Load without loss: N clients x M jobs against gunicorn + a Celery worker + beat + a
private redis-server, while the worker is SIGKILLed and restarted once and Redis is
restarted once (without persistence: every queued message is gone).

    .venv/bin/python bench/soak.py                   # 50 clients x 20 jobs
    .venv/bin/python bench/soak.py -n 5 -m 4 --json  # what tests/test_soak_short.py runs

Each client is one user with an enrolled voice. Its requests mix repeated texts (cache
hits once the first finished), new texts, and bad inputs that must be refused (400):
"failed by design". Every accepted job is polled until it finishes; after the load, the
script waits up to --drain seconds for the rest (the sweeper re-sends jobs whose message
Redis lost). It prints submitted, succeeded, failed by design, failed (jobs that ended
`failed`, or 5xx answers), lost (accepted jobs never finished: must be 0), duplicate files
(clip files without their one row, or temp files left: must be 0) and latency
percentiles, and exits non-zero when lost, duplicates or failures are not 0.

It also prints the recovery time: from Redis being back (empty) to the last job that was
waiting at that moment being finished. With the default --queued-deadline (600 s, as in
production) only the broker watch (voice_tts/services/broker.py) can re-send those jobs in time.

Scale-out (`--workers 2`): two worker processes run as two hosts, each with its own data dir and
media root, the media on an S3 server of its own (moto on 127.0.0.1, tests/s3_server.py), the
`tone` engine with a fixed delay (--tone-delay) and one synthesis process each (one per GPU).
It measures jobs per minute with 1 worker, then with both, then SIGKILLs one worker mid-run and
checks that nothing was lost and that the bucket holds exactly one object per clip row:

    .venv/bin/python bench/soak.py --workers 2       # 40 jobs per phase, 0.5 s per synthesis

Nothing here touches the shared Redis on 6379: the stack uses its own redis-server on a
free port, its own SQLite database (or --database-url) and its own media root.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import requests
import soundfile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medicine_project.devstack import beat_args, free_port, redis_binary, web_args, worker_args  # noqa: E402

REPEATED = ["약 드실 시간입니다", "저녁 약 드세요", "물 한 잔 드세요", "Time for your pills"]
BAD = [{"text": ""}, {"text": "약\u202e드세요"}, {"text": "x" * 600}, {"text": "💊💊"},
       {"text": "약", "params": {"speed": 9}}, {"text": "약", "language": "fr"}]


def speech_wav(seconds: float = 4.0, rate: int = 16000, seed: int = 0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(150 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))) / rate
    signal_ = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.55 + 0.45 * np.sin(2 * np.pi * 3.5 * t) ** 2)
    noise = np.random.default_rng(seed).standard_normal(len(t))
    buffer = io.BytesIO()
    soundfile.write(buffer, (0.2 * signal_ + 0.003 * noise).astype(np.float32), rate, format="WAV")
    return buffer.getvalue()


@dataclass
class Stack:
    """The processes under test; the worker and Redis can be killed and restarted."""

    tmp: Path
    env: dict[str, str]
    redis_port: int
    web_port: int
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def _start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = (self.tmp / f"{name}.log").open("ab")
        # Own process group: a SIGKILL takes the worker's pool children down with it.
        proc = subprocess.Popen(args, cwd=ROOT, env={**self.env, **(env or {})}, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def start_redis(self) -> None:
        self._start("redis", [redis_binary(), "--port", str(self.redis_port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", str(self.tmp)])
        import redis

        client = redis.Redis(port=self.redis_port)
        for _ in range(100):
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        raise SystemExit("redis-server did not start")

    def start_worker(self, concurrency: int, name: str = "worker") -> None:
        # A host of its own: its own data dir (reference copies, model cache) and media root.
        host = {"CAREPILL_DATA_DIR": str(self.tmp / name / "var"), "MEDIA_ROOT": str(self.tmp / name / "media")}
        self._start(name, [*worker_args(concurrency=concurrency), "--without-mingle", "--without-gossip",
                           "-n", f"soak-{name}@%h"], env=host if name != "worker" else None)

    def start_all(self, *, web_workers: int, concurrency: int) -> None:
        self.start_redis()
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=self.env,
                       check=True)
        self.start_worker(concurrency)
        self._start("beat", [*beat_args(), "-s", str(self.tmp / "beat-schedule")])
        self._start("web", web_args(bind=f"127.0.0.1:{self.web_port}", workers=web_workers))

    def shell_json(self, code: str) -> Any:
        """Run `code` in `manage.py shell` against the stack's database; its last line, as JSON."""
        done = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=self.env,
                              check=True, capture_output=True, text=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)

    def stop(self) -> None:
        for name in ["web", "beat", *sorted(n for n in self.procs if n.startswith("worker")), "redis"]:
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                self.kill(name, signal.SIGTERM)


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    submitted: int = 0
    refused_by_design: int = 0
    unexpected: list[str] = field(default_factory=list)
    jobs: dict[str, float] = field(default_factory=dict)  # job id -> submit time
    finished: dict[str, tuple[str, float, bool]] = field(default_factory=dict)  # id -> (status, latency, hit)


class Soak:
    PRINTED = ("submitted", "accepted", "succeeded", "cache_hits", "failed_by_design", "failed", "lost",
               "duplicate_files", "rows_without_file", "db_unfinished", "latency_s", "elapsed_s", "recovery")

    @staticmethod
    def passed(summary: dict[str, Any]) -> bool:
        return summary["lost"] == 0 and summary["duplicate_files"] == 0 and summary["failed"] == 0

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="carepill-soak-"))
        redis_port, web_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{web_port}"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "medicine_project.settings",
            "DJANGO_SECRET_KEY": uuid.uuid4().hex * 2,
            "DATABASE_URL": args.database_url or f"sqlite:///{self.tmp / 'soak.sqlite3'}",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
            "CAREPILL_REDIS_PREFIX": f"soak-{uuid.uuid4().hex[:8]}:",
            "CAREPILL_DATA_DIR": str(self.tmp / "var"),
            "MEDIA_ROOT": str(self.tmp / "media"),
            "TTS_ENGINE": args.engine,
            "PYTHONUNBUFFERED": "1",
            # The load is the point here, not the per-user abuse limits.
            "THROTTLE_JOBS_RATE": "100000/min",
            "THROTTLE_UPLOADS_RATE": "100000/hour",
            "USER_MAX_PENDING_JOBS": "1000000",
            # Sweep often, so that jobs Redis forgot are re-sent within the drain window.
            "JOB_SWEEP_INTERVAL_SECONDS": str(args.sweep_interval),
            "JOB_QUEUED_DEADLINE_SECONDS": str(args.queued_deadline),
            "BROKER_WATCH_SECONDS": str(args.broker_watch),
            "TONE_DELAY_SECONDS": str(args.tone_delay),
            "JOB_RUNNING_GRACE_SECONDS": "5",
            "CELERY_TASK_SOFT_TIME_LIMIT": "20",
            "CELERY_TASK_TIME_LIMIT": "25",
            "WORKER_HEARTBEAT_TTL_SECONDS": "5",
        }
        self.stack = Stack(self.tmp, env, redis_port, web_port)
        self.tally = Tally()
        self.events: list[str] = []
        self.t0 = time.monotonic()
        self.redis_back_at: float | None = None
        self.waiting_at_restart: set[str] = set()

    # --- setup -------------------------------------------------------------------------

    def users(self) -> list[str]:
        """Create N users with tokens in the stack's database; return their tokens."""
        code = (
            "import sys, json\n"
            "from django.contrib.auth.models import User\n"
            "from voice_tts.services.tokens import token_issue\n"
            "out = []\n"
            f"for i in range({self.args.clients}):\n"
            "    u = User.objects.create_user(f'soak{i}', password='soak-pass-1234')\n"
            "    out.append(token_issue(owner_id=u.id))\n"
            "print(json.dumps(out))\n"
        )
        return self.stack.shell_json(code)

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(self.base + "/api/tts/health/", timeout=5).json().get("status") == "ok":
                    return
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.5)
        raise SystemExit(f"stack not ready; logs in {self.tmp}")

    # --- clients -----------------------------------------------------------------------

    def client(self, index: int, token: str) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        enrol = session.post(self.base + "/api/tts/voices/", files={"voice_file": ("s.wav", speech_wav(seed=index))},
                             timeout=60)
        if enrol.status_code != 201:
            with self.tally.lock:
                self.tally.unexpected.append(f"client {index}: enrol {enrol.status_code} {enrol.text[:200]}")
            return
        rng = random.Random(index)
        pending: list[str] = []
        for n in range(self.args.jobs):
            roll = rng.random()
            if roll < 0.15:
                body, bad = dict(rng.choice(BAD)), True
            elif roll < 0.55:
                body, bad = {"text": rng.choice(REPEATED)}, False
            else:
                body, bad = {"text": f"{n}번째 알림: 오후 {rng.randint(1, 12)}시 약 {uuid.uuid4().hex[:6]}"}, False
            submitted = time.monotonic()
            try:
                response = session.post(self.base + "/api/tts/jobs/", json=body, timeout=60)
            except requests.RequestException as exc:
                with self.tally.lock:
                    self.tally.submitted += 1
                    self.tally.unexpected.append(f"POST failed: {exc}")
                continue
            with self.tally.lock:
                self.tally.submitted += 1
                if bad:
                    if response.status_code == 400:
                        self.tally.refused_by_design += 1
                    else:
                        self.tally.unexpected.append(f"bad input answered {response.status_code}: {body}")
                    continue
                if response.status_code not in (200, 202):
                    self.tally.unexpected.append(f"{response.status_code} {response.text[:200]}")
                    continue
                job = response.json()
                if job["id"] is None:
                    # A cache hit: answered with the clip, no job to poll.
                    hit = f"hit-{uuid.uuid4().hex}"
                    self.tally.jobs[hit] = submitted
                    self.tally.finished[hit] = (job["status"], time.monotonic() - submitted, True)
                    continue
                self.tally.jobs[job["id"]] = submitted
            pending.append(job["id"])
            pending = [j for j in pending if not self.poll(session, j)]
        deadline = time.monotonic() + self.args.drain
        while pending and time.monotonic() < deadline:
            pending = [j for j in pending if not self.poll(session, j)]
            time.sleep(0.5)

    def poll(self, session: requests.Session, job_id: str) -> bool:
        try:
            job = session.get(f"{self.base}/api/tts/jobs/{job_id}/", timeout=30).json()
        except (requests.RequestException, ValueError):
            return False
        if job.get("status") not in ("succeeded", "failed"):
            return False
        with self.tally.lock:
            latency = time.monotonic() - self.tally.jobs[job_id]
            self.tally.finished[job_id] = (job["status"], latency, bool(job.get("cache_hit")))
            if job["status"] == "failed":
                self.tally.unexpected.append(f"job {job_id} failed: {job.get('error')}")
        return True

    # --- faults ------------------------------------------------------------------------

    def faults(self, total: int) -> None:
        def wait_for(fraction: float) -> None:
            while self.tally.submitted < total * fraction and not self.done.is_set():
                time.sleep(0.1)

        if self.args.no_faults:
            return
        wait_for(0.25)
        self.event("SIGKILL worker")
        self.stack.kill("worker")
        time.sleep(1.0)
        self.stack.start_worker(self.args.concurrency)
        self.event("worker restarted")
        wait_for(0.55)
        self.event("restart redis (no persistence: queued messages lost)")
        self.stack.kill("redis", signal.SIGKILL)
        time.sleep(1.0)
        self.stack.start_redis()
        self.event("redis restarted")
        with self.tally.lock:
            self.redis_back_at = time.monotonic()
            self.waiting_at_restart = set(self.tally.jobs) - set(self.tally.finished)

    def event(self, text: str) -> None:
        self.events.append(f"{time.monotonic() - self.t0:7.1f}s {text} (submitted {self.tally.submitted})")
        print(self.events[-1], flush=True)

    # --- verdict -----------------------------------------------------------------------

    def disk_check(self) -> dict[str, int]:
        code = (
            "import json, os\n"
            "from pathlib import Path\n"
            "from django.conf import settings\n"
            "from django.db.models import Count\n"
            "from voice_tts.models import Clip, Job\n"
            "media = Path(settings.MEDIA_ROOT) / 'clips'\n"
            "files = {str(p.relative_to(settings.MEDIA_ROOT)) for p in media.rglob('*') if p.is_file()}\n"
            "rows = set(Clip.objects.values_list('audio', flat=True))\n"
            "dup_keys = Clip.objects.values('owner', 'cache_key').annotate(n=Count('id')).filter(n__gt=1).count()\n"
            "partial = Path(settings.MEDIA_ROOT) / '.partial'\n"
            "partials = len([p for p in partial.iterdir() if p.is_file()]) if partial.exists() else 0\n"
            "print(json.dumps({'clip_rows': len(rows), 'clip_files': len(files),\n"
            "  'files_without_row': len(files - rows), 'rows_without_file': len(rows - files),\n"
            "  'duplicate_keys': dup_keys, 'partial_files': partials,\n"
            "  'db_unfinished': Job.objects.filter(status__in=['queued', 'running']).count()}))\n"
        )
        return self.stack.shell_json(code)

    def recovery(self) -> dict[str, Any]:
        """Redis back (empty) -> the last job that was waiting then finished. Finish times are
        seen by the clients' polls (every 0.5 s at most while draining), so this errs long."""
        if self.redis_back_at is None:
            return {"jobs_waiting": 0, "seconds": None}
        t = self.tally
        ends = [t.jobs[j] + t.finished[j][1] for j in self.waiting_at_restart if j in t.finished]
        unfinished = len(self.waiting_at_restart) - len(ends)
        seconds = round(max(0.0, max(ends) - self.redis_back_at), 1) if ends and not unfinished else None
        return {"jobs_waiting": len(self.waiting_at_restart), "unfinished": unfinished, "seconds": seconds}

    def run(self) -> dict[str, Any]:
        self.done = threading.Event()
        try:
            self.stack.start_all(web_workers=self.args.web_workers, concurrency=self.args.concurrency)
            tokens = self.users()
            self.wait_ready()
            self.event(f"stack ready: {self.args.clients} clients x {self.args.jobs} jobs")
            fault_thread = threading.Thread(target=self.faults, args=(self.args.clients * self.args.jobs,))
            fault_thread.start()
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=self.args.clients) as pool:
                list(pool.map(lambda it: self.client(*it), enumerate(tokens)))
            elapsed = time.monotonic() - started
            self.done.set()
            fault_thread.join()
            disk = self.disk_check()
        finally:
            self.stack.stop()
        t = self.tally
        finished = t.finished.values()
        latencies = sorted(lat for status, lat, _ in finished if status == "succeeded")

        def pct(p: float) -> float | None:
            return round(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))], 3) if latencies else None

        summary = {
            "clients": self.args.clients,
            "jobs_per_client": self.args.jobs,
            "submitted": t.submitted,
            "accepted": len(t.jobs),
            "succeeded": sum(1 for s, _, _ in finished if s == "succeeded"),
            "cache_hits": sum(1 for s, _, hit in finished if s == "succeeded" and hit),
            "failed_by_design": t.refused_by_design,
            "failed": len(t.unexpected),
            "lost": len(set(t.jobs) - set(t.finished)),
            "duplicate_files": disk["files_without_row"] + disk["duplicate_keys"],
            "rows_without_file": disk["rows_without_file"],
            # Temp files of writes cut by the SIGKILL: in MEDIA_ROOT/.partial, never beside
            # the clips, removed by the sweeper once older than the hard time limit.
            "partial_files": disk["partial_files"],
            "db_unfinished": disk["db_unfinished"],
            "latency_s": {"p50": pct(50), "p90": pct(90), "p99": pct(99), "max": latencies[-1] if latencies else None},
            "elapsed_s": round(elapsed, 1),
            "recovery": self.recovery(),
            "events": self.events,
            "failures": t.unexpected[:20],
            "logs": str(self.tmp),
        }
        return summary


class ScaleOut:
    """`--workers N`: N worker hosts sharing only the database, Redis and an S3 bucket."""

    PRINTED = ("workers", "tone_delay_s", "jobs_per_minute", "speedup", "lost", "failed", "duplicate_files", "bucket")

    @staticmethod
    def passed(summary: dict[str, Any]) -> bool:
        bucket = summary["bucket"]
        return Soak.passed(summary) and bucket["rows_without_object"] == 0 and bucket["unfinished_uploads"] == 0

    def __init__(self, args: argparse.Namespace) -> None:
        from tests.s3_server import S3Server  # bench/ may use tests' helpers; it imports no Django

        self.args = args
        self.soak = Soak(args)
        self.s3 = S3Server(log_dir=self.soak.tmp)
        self.stack = self.soak.stack
        self.events = self.soak.events
        self.tmp = self.soak.tmp

    def event(self, text: str) -> None:
        self.events.append(f"{time.monotonic() - self.soak.t0:7.1f}s {text}")
        print(self.events[-1], flush=True)

    def workers(self) -> list[str]:
        return [f"worker-{i + 1}" for i in range(self.args.workers)]

    def phase(self, session: requests.Session, label: str, count: int, *, kill: str | None = None) -> dict[str, Any]:
        """Submit `count` new texts (no cache hits) and wait for all; jobs per minute from the
        first submit to the last finish. With `kill`, that worker is SIGKILLed once a third of
        them finished (its running job is given back by the sweeper)."""
        started = time.monotonic()
        ids = []
        for n in range(count):
            response = session.post(self.soak.base + "/api/tts/jobs/", timeout=60,
                                    json={"text": f"{label} {n}번째 알림 {uuid.uuid4().hex[:8]}"})
            response.raise_for_status()
            ids.append(response.json()["id"])
        pending, finished, failed = set(ids), 0, []
        deadline = time.monotonic() + self.args.drain
        killed = False
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                job = session.get(f"{self.soak.base}/api/tts/jobs/{job_id}/", timeout=30).json()
                if job["status"] in ("succeeded", "failed"):
                    pending.discard(job_id)
                    finished += 1
                    if job["status"] == "failed":
                        failed.append(f"{job_id}: {job.get('error')}")
            if kill and not killed and finished >= count // 3:
                self.event(f"SIGKILL {kill} ({finished}/{count} finished)")
                self.stack.kill(kill)
                killed = True
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        return {"jobs": count, "finished": finished, "lost": len(pending), "failed": failed,
                "seconds": round(elapsed, 1), "jobs_per_minute": round(60 * finished / elapsed, 1)}

    def bucket_check(self) -> dict[str, int]:
        code = (
            "import json\n"
            "from django.db.models import Count\n"
            "from voice_tts.models import Clip, Job\n"
            "rows = list(Clip.objects.values_list('audio', flat=True))\n"
            "dup = Clip.objects.values('owner', 'cache_key').annotate(n=Count('id')).filter(n__gt=1).count()\n"
            "print(json.dumps({'rows': rows, 'duplicate_keys': dup,\n"
            "  'db_unfinished': Job.objects.filter(status__in=['queued', 'running']).count()}))\n"
        )
        db = self.stack.shell_json(code)
        rows, objects = set(db["rows"]), self.s3.keys("clips/")
        return {"clip_rows": len(rows), "clip_objects": len(objects), "objects_without_row": len(objects - rows),
                "rows_without_object": len(rows - objects), "duplicate_keys": db["duplicate_keys"],
                "unfinished_uploads": len(self.s3.multipart_uploads()), "db_unfinished": db["db_unfinished"]}

    def run(self) -> dict[str, Any]:
        count = self.args.scale_jobs
        try:
            self.s3.start()
            self.stack.env.update(self.s3.env())
            # The web is a host of its own too: nothing on its disk is shared with the workers.
            self.stack.env.update(CAREPILL_DATA_DIR=str(self.soak.tmp / "web" / "var"),
                                  MEDIA_ROOT=str(self.soak.tmp / "web" / "media"))
            self.stack.start_redis()
            subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT,
                           env=self.stack.env, check=True)
            first, *others = self.workers()
            self.stack.start_worker(1, name=first)
            self.stack._start("beat", [*beat_args(), "-s", str(self.soak.tmp / "beat-schedule")])
            self.stack._start("web", web_args(bind=f"127.0.0.1:{self.stack.web_port}",
                                              workers=self.args.web_workers))
            self.args.clients = 1
            token = self.soak.users()[0]
            self.soak.wait_ready()
            session = requests.Session()
            session.headers["Authorization"] = f"Token {token}"
            session.post(self.soak.base + "/api/tts/voices/", files={"voice_file": ("s.wav", speech_wav())},
                         timeout=60).raise_for_status()
            self.phase(session, "warm-up", 2)  # the first synthesis also loads the engine
            self.event(f"phase 1: {count} jobs, 1 worker")
            one = self.phase(session, "one", count)
            for name in others:
                self.stack.start_worker(1, name=name)
            time.sleep(3)  # the new worker registers and takes its first message
            self.event(f"phase 2: {count} jobs, {self.args.workers} workers")
            many = self.phase(session, "many", count)
            self.event(f"phase 3: {count} jobs, {others[-1]} SIGKILLed mid-run")
            kill = self.phase(session, "kill", count, kill=others[-1])
            bucket = self.bucket_check()
        finally:
            self.stack.stop()
            self.s3.stop()
        return {
            "workers": self.args.workers,
            "tone_delay_s": self.args.tone_delay,
            "jobs_per_minute": {"1": one["jobs_per_minute"], str(self.args.workers): many["jobs_per_minute"]},
            "speedup": round(many["jobs_per_minute"] / one["jobs_per_minute"], 2) if one["jobs_per_minute"] else None,
            "phases": {"one": one, "many": many, "kill": kill},
            "lost": one["lost"] + many["lost"] + kill["lost"],
            "failed": len(one["failed"] + many["failed"] + kill["failed"]),
            "bucket": bucket,
            "duplicate_files": bucket["objects_without_row"] + bucket["duplicate_keys"],
            "events": self.events,
            "logs": str(self.soak.tmp),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--clients", type=int, default=50, help="concurrent clients (one user each)")
    parser.add_argument("-m", "--jobs", type=int, default=20, help="requests per client")
    parser.add_argument("--engine", default="espeak", help="TTS_ENGINE for the worker (default espeak)")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file in the temp dir")
    parser.add_argument("--drain", type=float, default=120.0, help="seconds to wait for unfinished jobs")
    parser.add_argument("--sweep-interval", type=float, default=2.0)
    parser.add_argument("--queued-deadline", type=int, default=600,
                        help="JOB_QUEUED_DEADLINE_SECONDS (the sweeper's safety net; 600 as in production)")
    parser.add_argument("--broker-watch", type=float, default=15, help="BROKER_WATCH_SECONDS")
    parser.add_argument("--no-faults", action="store_true", help="do not kill the worker or restart Redis")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker hosts; 2 or more runs the scale-out measurement on S3 instead of the soak")
    parser.add_argument("--scale-jobs", type=int, default=40, help="jobs per scale-out phase")
    parser.add_argument("--tone-delay", type=float, default=0.0,
                        help="TONE_DELAY_SECONDS (scale-out default 0.5: a slow GPU)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, database, media)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    args = parser.parse_args()
    bench: Soak | ScaleOut
    if args.workers > 1:
        if args.engine == "espeak":
            args.engine = "tone"
        args.tone_delay = args.tone_delay or 0.5
        bench = ScaleOut(args)
    else:
        bench = Soak(args)
    summary = bench.run()
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        width = max(map(len, bench.PRINTED))
        for key in bench.PRINTED:
            print(f"{key:>{width}}: {summary[key]}")
        for line in summary.get("failures", []):
            print("  failure:", line)
    ok = bench.passed(summary)
    if ok and not args.keep:
        shutil.rmtree(bench.tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
