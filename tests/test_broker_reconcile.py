"""The broker watch (voice_tts/services/broker.py), for real: a private redis-server restarted
without its data under a running stack (gunicorn, Celery worker, Celery beat from tests/stack.py)
on the test database.

Every stack here sets JOB_QUEUED_DEADLINE_SECONDS to a day, so the sweeper never re-sends a
queued job during a test: a job that ran after its message was lost can only have been re-sent
by the broker watch. Assertions are about the order of events and counts (enqueue_count, the
worker's synthesis counter, clip rows and files, the watch's log lines), never about speed.

Duplicate messages and the delayed message of test 4 are sent from this process with a Celery
app pointed at the stack's broker: the messages a second sender (or a retry's countdown) makes.
"""

from __future__ import annotations

import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.conf import settings
from django.utils import timezone

from tests.stack import ServiceStack, StackClient
from voice_tts.dispatch import JOB_SYNTHESIZE_TASK
from voice_tts.models import Clip, Job

pytestmark = pytest.mark.worker

# Check every second, and count a message as overdue one second after it was sent.
FAST = {
    "BROKER_WATCH_SECONDS": "1",
    "BROKER_RECONCILE_GRACE_SECONDS": "1",
    "JOB_QUEUED_DEADLINE_SECONDS": "86400",
}

RECONCILE = re.compile(
    r"broker reconcile: broker_lost=(?P<lost>yes|no) checked=(?P<checked>\d+) "
    r"broker_messages=\((?:not read|(?P<listed>\d+) queued \+ (?P<reserved>\d+) reserved)\)"
    r"(?P<over> over_limit=yes)? resent=(?P<resent>\d+) send_failed=(?P<failed>\d+)"
)


def full_log(stack: ServiceStack, name: str = "worker") -> str:
    path = stack.tmp / f"{name}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def reconciles(stack: ServiceStack, name: str = "worker", *, since: int = 0, upto: int | None = None
               ) -> list[dict[str, Any]]:
    """The watch's runs logged by a worker (between two offsets of its log), in order."""
    runs = []
    for match in RECONCILE.finditer(full_log(stack, name)[since:upto]):
        run = {key: (int(value) if value and value.isdigit() else value) for key, value in match.groupdict().items()}
        runs.append(run)
    return runs


def wait_for(what: str, condition: Any, *, stack: ServiceStack, name: str = "worker", timeout: float = 90.0) -> Any:
    """Poll `condition()` until it is truthy; a generous deadline, not a speed claim."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}\n{name} log:\n{full_log(stack, name)[-6000:]}")
        time.sleep(0.2)


def syntheses(stack: ServiceStack) -> int:
    # Each worker process counts its engine calls and publishes the count at once.
    return sum(w.get("syntheses", 0) for w in stack.workers())


def clip_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / "clips"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def send_to_stack(stack: ServiceStack, job_id: str, **options: Any) -> None:
    """A synthesis message for `job_id` on the stack's broker, as dispatch would send it."""
    app = Celery("second-sender", broker=stack.redis.url, set_as_current=False, fixups=[])
    app.conf.broker_transport_options = {"global_keyprefix": stack.env["CAREPILL_REDIS_PREFIX"]}
    try:
        app.send_task(JOB_SYNTHESIZE_TASK, args=[job_id], queue=settings.SYNTHESIS_QUEUE, **options)
    finally:
        app.close()


def test_redis_restarted_empty_under_a_running_worker_resends_every_released_job_once(stack_factory, alice):
    stack = stack_factory(env={**FAST, "TONE_DELAY_SECONDS": "2", "METRICS_TOKEN": "tok",
                               "JOBS_IN_FLIGHT_PER_USER": "2"}).start(beat=True)
    api = StackClient(stack, alice.token)
    assert api.upload_voice().status_code == 201
    jobs = [api.job(f"evening reminder {n}") for n in range(5)]
    running = api.wait(jobs[0]["id"], until=("running",))["id"]
    queued = [j["id"] for j in jobs if j["id"] != running]
    assert Job.objects.filter(id__in=queued, status="queued").count() == 4
    # Fair turns: alice's two slots are the running job and one message waiting in Redis; the
    # other three wait as rows (held), with no message that Redis could lose.
    sent = [str(i) for i in Job.objects.filter(id__in=queued, held=False).values_list("id", flat=True)]
    held = [job_id for job_id in queued if job_id not in sent]
    assert len(sent) == 1 and len(held) == 3

    before = len(full_log(stack))
    stack.redis.proc.kill()  # SIGKILL
    stack.redis.proc.wait()
    stack.redis.start()  # no persistence: the waiting message and the sentinel are gone
    back = time.monotonic()

    for job in jobs:
        assert api.wait(job["id"], timeout=120)["status"] == "succeeded"
    recovered = time.monotonic() - back
    # The lost message was sent again exactly once, by the watch (the sweeper's deadline is a day
    # away); the job that was running when Redis went kept its one message, and the held jobs
    # were sent once each, when their turn came (never by the watch: they had nothing to lose).
    assert {str(j.id): j.enqueue_count for j in Job.objects.filter(id__in=queued)} == {
        **dict.fromkeys(sent, 2), **dict.fromkeys(held, 1)}
    assert Job.objects.get(id=running).enqueue_count == 1
    earlier, runs = reconciles(stack, upto=before), reconciles(stack, since=before)
    assert earlier and sum(run["resent"] for run in earlier) == 0, earlier
    assert runs[0]["lost"] == "yes", runs  # the first check on the new Redis saw the loss
    assert sum(run["resent"] for run in runs) == 1, runs
    # Synthesised once each: five engine calls, five clips, five files.
    wait_for("the last synthesis counted", lambda: syntheses(stack) >= 5, stack=stack)
    assert syntheses(stack) == 5
    assert Clip.objects.count() == 5 and len(clip_files()) == 5
    metrics = api.session.get(stack.base_url + "/metrics", headers={"Authorization": "Bearer tok"}, timeout=30).text
    assert "carepill_broker_jobs_resent_total 1.0" in metrics, metrics
    assert re.search(r"^carepill_broker_data_losses_total [1-9]", metrics, re.M), metrics
    print(f"\nbroker back -> last queued job finished: {recovered:.1f} s (watch 1 s, grace 1 s)")


def test_jobs_queued_with_no_worker_are_resent_by_the_first_worker_to_start(stack_factory, alice):
    # No beat: only the worker's check at start can re-send. Two slots: two of the three jobs are
    # sent (and lost), the third waits as a row for its turn.
    stack = stack_factory(env={**FAST, "JOBS_IN_FLIGHT_PER_USER": "2"})
    stack.redis.start()
    stack.start_web()
    api = StackClient(stack, alice.token)
    assert api.upload_voice().status_code == 201
    jobs = [api.job(f"morning reminder {n}")["id"] for n in range(3)]
    assert Job.objects.filter(id__in=jobs, held=True).count() == 1

    stack.redis.stop()
    stack.redis.start()  # the messages are gone before any worker saw them
    stack.start_worker()

    for job_id in jobs:
        assert api.wait(job_id, timeout=120)["status"] == "succeeded"
    # The two lost messages sent again once each; the held job sent once, when its turn came.
    assert sorted(Job.objects.filter(id__in=jobs).values_list("enqueue_count", flat=True)) == [1, 2, 2]
    runs = reconciles(stack)
    assert [(run["lost"], run["resent"]) for run in runs] == [("yes", 2)], runs
    wait_for("the last synthesis counted", lambda: syntheses(stack) >= 3, stack=stack)
    assert syntheses(stack) == 3 and Clip.objects.count() == 3


def test_a_duplicate_message_for_a_job_synthesises_once(stack_factory, alice):
    stack = stack_factory(env={**FAST, "TONE_DELAY_SECONDS": "1"}).start()
    api = StackClient(stack, alice.token)
    assert api.upload_voice().status_code == 201
    job_id = api.job("take two tablets")["id"]
    send_to_stack(stack, job_id)  # two more messages for the same job, with task ids of their own
    send_to_stack(stack, job_id)

    assert api.wait(job_id)["status"] == "succeeded"
    # Each extra message finds the job taken or finished (the claim is a conditional UPDATE).
    wait_for("both extra messages refused",
             lambda: full_log(stack).count(f"job {job_id} not claimable") == 2, stack=stack)
    row = Job.objects.get(id=job_id)
    assert (row.attempts, row.enqueue_count) == (1, 1)
    assert syntheses(stack) == 1
    assert Clip.objects.count() == 1 and len(clip_files()) == 1


def test_with_the_broker_intact_nothing_is_resent(stack_factory, alice):
    """Messages waiting in a queue, and a message a worker holds (a countdown, as a retry sends),
    are found: the watch checks them again and again and sends nothing."""
    # Three slots: the three jobs below are all sent at once (none held).
    stack = stack_factory(env={**FAST, "JOBS_IN_FLIGHT_PER_USER": "3"})
    stack.redis.start()
    stack.start_web()
    # A worker for the webhooks queue only: it runs the checks, and synthesis messages stay queued.
    stack._spawn("checker", [sys.executable, "-m", "celery", "-A", "medicine_project", "worker", "-c", "1",
                             "--without-mingle", "--without-gossip", "-l", "info", "-Q", settings.WEBHOOK_QUEUE,
                             "-n", f"checker-{uuid.uuid4().hex[:6]}@%h"])
    stack.start_beat()
    api = StackClient(stack, alice.token)
    voice_id = api.upload_voice().json()["id"]
    listed = [api.job(f"noon reminder {n}")["id"] for n in range(3)]

    def runs() -> list[dict[str, Any]]:
        return reconciles(stack, "checker") + reconciles(stack, "worker")

    def checks(count: int, **at_least: int) -> list[dict[str, Any]]:
        seen = [run for run in runs() if all((run[key] or 0) >= value for key, value in at_least.items())]
        return seen if len(seen) >= count else []

    wait_for("three checks that saw the queued messages", lambda: checks(3, checked=3, listed=3),
             stack=stack, name="checker")

    stack.start_worker()  # takes the three queued jobs
    for job_id in listed:
        assert api.wait(job_id)["status"] == "succeeded"
    # A job whose only message waits out a countdown in the worker (reserved: kombu's `unacked`).
    waiting = Job.objects.create(owner=alice, voice_id=voice_id, text="dinner reminder", language="en",
                                 enqueued_at=timezone.now(), enqueue_count=1)
    send_to_stack(stack, str(waiting.id), countdown=8)
    wait_for("three checks that saw the reserved message", lambda: checks(3, checked=1, reserved=1),
             stack=stack, name="checker")
    assert api.wait(str(waiting.id))["status"] == "succeeded"

    assert [run["resent"] for run in runs()] == [0] * len(runs()), runs()
    # Only the first check of this new Redis found no sentinel, and sent nothing either.
    assert [run["lost"] for run in runs()].count("yes") == 1, runs()
    assert list(Job.objects.values_list("enqueue_count", flat=True)) == [1, 1, 1, 1]
    wait_for("the last synthesis counted", lambda: syntheses(stack) >= 4, stack=stack)
    assert syntheses(stack) == 4
