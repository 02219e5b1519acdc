"""Where the queue hop goes (issue 25 item 4): a job's row -> its release -> the commit (its message leaves) ->
the worker's claim, one job at a time, on a private stack (redis-server, database, one tone worker process).

This process calls the services itself (job_create, then jobs_release, in one transaction, as POST
/api/tts/jobs/ does) against the stack's database and Redis, so the web's HTTP is not in the figures; the
claim's time is the job row's `started_at`. The first 3 of 15 rounds are dropped (warm-up).

    .venv/bin/python bench/queue_hop.py [sqlite|postgres]
"""

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import BenchStack, machine_line  # noqa: E402

database = sys.argv[1] if len(sys.argv) > 1 else "sqlite"
print(f"# queue_hop  {machine_line()}  database {database}")
with BenchStack(database=database, engine="tone", worker_concurrency=1) as stack:
    client = stack.client("alice")
    for k, v in stack.env.items():
        if k in ("DATABASE_URL", "CELERY_BROKER_URL", "CAREPILL_REDIS_PREFIX", "CAREPILL_DATA_DIR", "MEDIA_ROOT",
                 "TTS_ENGINE", "DJANGO_SECRET_KEY", "USER_MAX_PENDING_JOBS", "THROTTLE_JOBS_RATE"):
            os.environ[k] = v
    os.environ["DJANGO_SETTINGS_MODULE"] = "medicine_project.settings"
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.db import transaction

    from voice_tts.models import Job
    from voice_tts.services import jobs as jobs_service
    from voice_tts.services.turns import jobs_release

    owner = User.objects.get(username="alice")
    rows = []
    for i in range(15):
        t0 = time.time()
        with transaction.atomic():
            job = jobs_service.job_create(owner_id=owner.id, text=f"약 {i} 번 {time.time()}", language="ko",
                                          use_cache=False, release=False)
            t_row = time.time()
            jobs_release(owner_id=owner.id)
            t_rel = time.time()
        t_commit = time.time()
        while True:
            j = Job.objects.get(id=job.id)
            if j.started_at:
                break
            time.sleep(0.001)
        created, started = j.created_at.timestamp(), j.started_at.timestamp()
        rows.append((t_row - created, t_rel - t_row, t_commit - t_rel, started - t_commit, started - created))
        time.sleep(0.3)
    names = ["row -> job_create done", "release pass", "commit + on_commit", "sent -> claimed", "row -> claimed"]
    for name, column in zip(names, zip(*rows[3:], strict=True), strict=True):
        print(f"{name:24s} p50 {statistics.median(column) * 1000:6.1f} ms  min {min(column) * 1000:6.1f}  "
              f"max {max(column) * 1000:6.1f}")
