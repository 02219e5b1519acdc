"""Transient synthesis errors (issue 13): retried on the JOB_RETRY_* backoff without counting
toward JOB_MAX_ATTEMPTS, which counts worker deaths only; when the retries run out the job fails
with the transient error's own code and says how many tries it made.

The end-to-end tests run a real Celery worker process with the `gpt_sovits_http` engine (no torch:
requests, numpy, soundfile) against a stand-in api_v2 server in this process
(tests/api_v2_standin.py), with JOB_MAX_ATTEMPTS=3 and a retry base of milliseconds. They assert on
the order of requests the server saw and on the final row, never on timings.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from celery.exceptions import Retry
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from tests.api_v2_standin import ApiV2Standin
from tests.audio_samples import wav_bytes
from tests.conftest import WorkerProcess, worker_start, worker_stop
from voice_tts.models import Clip, Job, Voice
from voice_tts.services import jobs
from voice_tts.services.jobs import job_claim, job_create, job_release, job_run
from voice_tts.tasks import job_synthesize_task
from workers.engines.base import EngineTransientError

RETRIES = 5  # JOB_TRANSIENT_RETRIES in the worker: 6 tries in all
MAX_ATTEMPTS = 3  # JOB_MAX_ATTEMPTS in the worker: fewer than the tries


def voice_for(user: Any) -> Voice:
    # A voice row without voice_create's background reminder trigger: only the test enqueues.
    name = default_storage.save(f"voices/{user.id}/{uuid.uuid4()}.wav", ContentFile(wav_bytes(4.0)))
    return Voice.objects.create(owner=user, audio=name, duration_seconds=4.0, sample_rate=44100)


def job_wait_finished(job_id: Any, *, timeout: float = 90.0) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job = Job.objects.get(id=job_id)
        if job.status in Job.FINISHED:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job.status} after {timeout}s")
        time.sleep(0.1)


@pytest.fixture
def standin() -> Iterator[ApiV2Standin]:
    server = ApiV2Standin().start()
    yield server
    server.stop()


@pytest.fixture
def http_worker(transactional_db: Any, settings: Any) -> Iterator[Callable[[ApiV2Standin], WorkerProcess]]:
    """Starts a one-process worker with the `gpt_sovits_http` engine pointed at a stand-in, on
    private queues (a worker already running in this session must not take these jobs)."""
    run = uuid.uuid4().hex[:6]
    queues = {"SYNTHESIS_QUEUE": f"synthesis-{run}", "SYNTHESIS_BATCH_QUEUE": f"batch-{run}"}
    for name, value in queues.items():
        setattr(settings, name, value)
    settings.CELERY_QUEUES_ALL = list(queues.values())
    started: list[WorkerProcess] = []

    def start(server: ApiV2Standin) -> WorkerProcess:
        worker = worker_start(engine="gpt_sovits_http", concurrency=1, extra_env={
            **queues,
            "GPTSOVITS_API_URL": server.url,
            "GPTSOVITS_API_TIMEOUT": "30",
            "JOB_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
            "JOB_TRANSIENT_RETRIES": str(RETRIES),
            "JOB_RETRY_BASE_SECONDS": "0.02",
            "JOB_RETRY_MAX_SECONDS": "0.2",
        })
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker_stop(worker)


@pytest.mark.worker
def test_engine_server_503_four_times_then_audio_the_job_succeeds(http_worker, standin, alice):
    standin.tts_statuses = [503, 503, 503, 503, 200]
    worker = http_worker(standin)
    voice_for(alice)

    job = job_wait_finished(job_create(owner_id=alice.id, text="Take the blue pill", language="en",
                                       use_cache=False).id)

    assert (job.status, job.error_code, job.error_message) == ("succeeded", "", ""), worker.log()[-3000:]
    # The engine's load probe, then five tries of the same synthesis, the last one answered.
    assert standin.requests == [("GET", "/openapi.json", 200)] + [("POST", "/tts", 503)] * 4 + [("POST", "/tts", 200)]
    assert {payload["text"] for payload in standin.tts_payloads} == {"Take the blue pill"}
    # Five claims, four given back: no worker died.
    assert job.attempts == 1
    clip = Clip.objects.get()
    assert job.clip_id == clip.id and clip.engine == "gpt_sovits_http" and clip.sample_rate == 32000


@pytest.mark.worker
def test_engine_server_always_503_fails_engine_unavailable_never_worker_lost(http_worker, standin, alice):
    standin.tts_statuses = [503]
    worker = http_worker(standin)
    voice_for(alice)

    job = job_wait_finished(job_create(owner_id=alice.id, text="Call your daughter", language="en",
                                       use_cache=False).id)

    assert (job.status, job.error_code) == ("failed", "engine_unavailable"), worker.log()[-3000:]
    # Every try reached the server: RETRIES + 1 of them, more than JOB_MAX_ATTEMPTS.
    assert standin.tts_answers() == [503] * (RETRIES + 1)
    assert RETRIES + 1 > MAX_ATTEMPTS
    assert job.attempts == 1
    assert job.error_message.startswith(f"The speech engine was still unavailable after {RETRIES + 1} tries over ")
    assert "answered 503" in job.error_message and "the model server is restarting" in job.error_message
    assert "worker" not in job.error_message
    assert Clip.objects.count() == 0


# --- The same rules in this process (services and an eager task), on the rows alone ---------


@pytest.fixture
def queued_job(alice: Any) -> Job:
    return Job.objects.create(owner=alice, voice=voice_for(alice), text="take your pills", language="en")


def test_release_gives_the_claim_back_so_only_worker_deaths_count(queued_job, settings):
    settings.JOB_MAX_ATTEMPTS = 3
    for _ in range(settings.JOB_MAX_ATTEMPTS + 2):  # more transient tries than attempts allowed
        assert job_claim(job_id=queued_job.id, task_id="task-a")
        assert job_release(job_id=queued_job.id, task_id="task-a", owner_id=queued_job.owner_id)
    job = Job.objects.get(id=queued_job.id)
    assert (job.status, job.attempts) == ("queued", 0)
    assert job.enqueued_at is not None  # the retry's message counts as sent: the sweeper waits

    assert job_claim(job_id=queued_job.id, task_id="task-a")
    # Only the claim's own task gives it back (the sweeper may have handed the job to another).
    assert not job_release(job_id=queued_job.id, task_id="task-b", owner_id=queued_job.owner_id)
    assert Job.objects.get(id=queued_job.id).status == "running"

    # Then the worker dies on it every time: each redelivery (same task id) claims it again.
    for _ in range(settings.JOB_MAX_ATTEMPTS - 1):
        assert job_claim(job_id=queued_job.id, task_id="task-a")
    job_run(job_id=queued_job.id, task_id="task-a")
    job = Job.objects.get(id=queued_job.id)
    assert (job.status, job.error_code) == ("failed", "worker_lost")
    assert job.error_message == f"The worker stopped {settings.JOB_MAX_ATTEMPTS} times while running this job."


def task_run_with_retries(job_id: str) -> int:
    """Run job_synthesize_task the way a worker does, in this process and without a broker (nor
    the worker's signal hooks): each retry runs at once as the same task id with `retries + 1`
    and the retry's arguments. Returns how many retries the task asked for."""
    retries, kwargs = 0, {}
    while True:
        job_synthesize_task.push_request(id="task-a", retries=retries, is_eager=True, called_directly=False,
                                         args=[job_id], kwargs=kwargs)
        try:
            job_synthesize_task.run(job_id, **kwargs)
        except Retry as retry:
            assert isinstance(retry.__context__, EngineTransientError)  # only named transient errors
            assert retry.sig.args == (job_id,) or list(retry.sig.args) == [job_id]
            if kwargs:
                assert retry.sig.kwargs == kwargs  # the first try's time rides along unchanged
            kwargs = dict(retry.sig.kwargs)
            retries += 1
            continue
        finally:
            job_synthesize_task.pop_request()
        return retries


@pytest.fixture
def tone_engine_after() -> Iterator[None]:
    # Leave this process with the engine the other in-process tests start (tests/test_job_run_service.py).
    yield
    from voice_tts.worker import runtime

    runtime.engine_start(name="tone", queues=["synthesis"])


def test_redis_gone_under_the_clip_lock_is_retried_then_fails_lock_unavailable(
    queued_job, monkeypatch, tone_engine_after
):
    from voice_tts.worker import runtime

    runtime.engine_start(name="tone", queues=["synthesis"])
    tries: list[str] = []

    def redis_gone(**kwargs: Any) -> Any:
        tries.append(str(kwargs["job_id"]))
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(jobs, "_clip_lock", redis_gone)  # fault injection at the Redis boundary

    retries = task_run_with_retries(str(queued_job.id))

    assert retries == job_synthesize_task.max_retries == 5
    assert tries == [str(queued_job.id)] * (job_synthesize_task.max_retries + 1)
    job = Job.objects.get(id=queued_job.id)
    assert (job.status, job.error_code, job.attempts) == ("failed", "lock_unavailable", 1)
    assert job.error_message.startswith(
        f"Redis (the clip lock) was still unavailable after {job_synthesize_task.max_retries + 1} tries over "
    )
    assert job.error_message.endswith("Redis lock unavailable: Connection refused")


def test_engine_server_down_when_the_worker_loaded_is_transient_too(queued_job, monkeypatch, tone_engine_after):
    from voice_tts.worker import runtime

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("GPTSOVITS_API_URL", f"http://127.0.0.1:{port}")
    runtime.engine_start(name="gpt_sovits_http", queues=["synthesis"])

    with pytest.raises(EngineTransientError) as raised:
        job_run(job_id=queued_job.id, task_id="task-a")
    assert raised.value.code == "engine_unavailable"
    job = Job.objects.get(id=queued_job.id)
    assert (job.status, job.attempts) == ("queued", 0)

    job_run(job_id=queued_job.id, task_id="task-a", final_attempt=True, tries=6, first_tried_at=time.time() - 63)
    job = Job.objects.get(id=queued_job.id)
    assert (job.status, job.error_code, job.attempts) == ("failed", "engine_unavailable", 1)
    # Six tries, counted since the first one (a minute ago here), and the engine's own reason.
    assert job.error_message.startswith("The speech engine was still unavailable after 6 tries over 1 min ")
    assert "s: The speech engine is not ready: GPT-SoVITS api_v2 server at" in job.error_message
    assert "is not reachable" in job.error_message


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"JOB_TRANSIENT_RETRIES": "-1"}, "JOB_TRANSIENT_RETRIES"),
        ({"JOB_RETRY_BASE_SECONDS": "soon"}, "JOB_RETRY_BASE_SECONDS"),
        ({"JOB_RETRY_MAX_SECONDS": "-5"}, "JOB_RETRY_MAX_SECONDS"),
    ],
)
def test_bad_retry_settings_fail_loudly(env, named):
    from tests.test_settings import load_settings

    result = load_settings(DJANGO_SECRET_KEY="x" * 50, **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and named in result.stderr
