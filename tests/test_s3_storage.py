"""STORAGE_BACKEND=s3 end to end, with nothing shared between hosts but the database, Redis and S3.

Real parts only: moto's S3 server in its own process on 127.0.0.1 (tests/s3_server.py), reached
over HTTP through django-storages and boto3; a gunicorn web and a Celery worker (the neural_cpu
engine, which reads the reference and writes its analysis sidecar) as subprocesses, each with its
OWN MEDIA_ROOT and CAREPILL_DATA_DIR, so anything that still assumed one shared disk fails here.
The bucket is checked with boto3 directly, around the service; audio is decoded with soundfile.

The web and the worker share the run's Redis prefix with the test process (worker heartbeats, the
sweeper's messages) but use queues of their own, so the session's espeak worker (local storage)
never takes one of these jobs.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import soundfile
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from medicine_project.devstack import free_port
from medicine_project.settings import s3_storage_config
from tests.audio_samples import wav_bytes
from tests.conftest import ROOT, HttpApi, WorkerProcess, database_url_for_subprocess, worker_start, worker_stop
from tests.s3_server import S3Server
from voice_tts.models import Clip, Job, Voice
from voice_tts.services.sweeper import jobs_sweep
from voice_tts.services.voices import voice_create, voice_reference_cache_prune, voice_reference_path
from workers.engines.neural_cpu import SAMPLE_RATE
from workers.engines.registry import engine_build
from workers.voice_match import reference_analysis
from workers.voice_style import search
from workers.voice_style.encoder import SpeakerEncoder

pytestmark = pytest.mark.worker

_RUN = uuid.uuid4().hex[:6]
# Queues of this module's web and worker only (in the settings' order: webhooks, synthesis, batch).
QUEUES = {
    "WEBHOOK_QUEUE": f"s3-{_RUN}-webhooks",
    "SYNTHESIS_QUEUE": f"s3-{_RUN}-synthesis",
    "SYNTHESIS_BATCH_QUEUE": f"s3-{_RUN}-batch",
}
QUOTA = 2  # the worker's CLIP_QUOTA_PER_USER


@dataclass
class Host:
    """One machine's private folders."""

    root: Path

    @property
    def media(self) -> Path:
        return self.root / "media"

    @property
    def data(self) -> Path:
        return self.root / "var"

    @property
    def reference_cache(self) -> Path:
        return self.data / "reference-cache"

    def env(self) -> dict[str, str]:
        return {"MEDIA_ROOT": str(self.media), "CAREPILL_DATA_DIR": str(self.data)}

    def media_files(self) -> list[Path]:
        return [p for p in self.media.rglob("*") if p.is_file()] if self.media.exists() else []


@dataclass
class Stack:
    s3: S3Server
    web_url: str
    web_host: Host
    worker_host: Host
    worker: WorkerProcess

    def api(self, user: Any) -> HttpApi:
        return HttpApi(self.web_url, user.token)


def _web_start(*, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "medicine_project.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--timeout", "60"],
        cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(url + "/api/tts/health/", timeout=5)
            return proc, url
        except requests.RequestException:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("web did not start:\n" + log.read_text(errors="replace")[-4000:]) from None
            time.sleep(0.1)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with S3Server(log_dir=Path(os.environ["CAREPILL_TEST_TMP"])) as server:
        yield server


@pytest.fixture(scope="module")
def s3_stack(s3: S3Server, django_db_setup: Any, django_db_blocker: Any) -> Iterator[Stack]:
    tmp = Path(os.environ["CAREPILL_TEST_TMP"]) / f"s3-{_RUN}"
    web_host, worker_host = Host(tmp / "web"), Host(tmp / "worker")
    # No style search at enrolment (the tests assert the bucket's exact contents); the adaptation
    # test starts one itself, and the worker runs it on a tiny budget.
    common = {**s3.env(), **QUEUES, "TTS_ENGINE": "neural_cpu", "VOICE_ADAPT_ENABLED": "0",
              "VOICE_ADAPT_STEPS": "2", "VOICE_ADAPT_STEPS_PER_SLICE": "1"}
    with django_db_blocker.unblock():
        web_env = {**os.environ, **common, **web_host.env(), "DJANGO_SETTINGS_MODULE": "medicine_project.settings",
                   "DATABASE_URL": database_url_for_subprocess(), "PYTHONUNBUFFERED": "1"}
        web, url = _web_start(env=web_env, log=tmp.parent / f"s3-{_RUN}-web.log")
        try:
            worker = worker_start(engine="neural_cpu", concurrency=1, queues=list(QUEUES.values()), timeout=180,
                                  extra_env={
                                      **common, **worker_host.env(),
                                      # The joined model and the stock voices' analysis: a cache of derived
                                      # files, not media (~20 s to build once, then reused by every run).
                                      "NEURAL_CPU_CACHE_DIR": str(ROOT / "var" / "models" / "kokoro"),
                                      "CLIP_QUOTA_PER_USER": str(QUOTA),
                                      "VOICE_REFERENCE_CACHE_PRUNE_SECONDS": "0.2",
                                  })
        except BaseException:
            web.kill()
            raise
    yield Stack(s3=s3, web_url=url, web_host=web_host, worker_host=worker_host, worker=worker)
    worker_stop(worker)
    web.terminate()
    web.wait(timeout=20)


@pytest.fixture
def stack(s3_stack: Stack, transactional_db: Any) -> Iterator[Stack]:
    # The web and the worker read the test's rows from their own connections: committed data only.
    # The database is flushed after each test; what its rows named goes too (and before: what a
    # failed in-process test may have left).
    s3_stack.s3.empty()
    yield s3_stack
    s3_stack.s3.empty()


@pytest.fixture
def s3_here(settings: Any, s3: S3Server) -> S3Server:
    """This (test) process on the same bucket and queues, for what it does itself: deleting a user
    (the admin's delete), running the sweeper (beat's task)."""
    settings.STORAGES = {**settings.STORAGES, "default": s3_storage_config(s3.env())}
    for name, queue in QUEUES.items():
        setattr(settings, name, queue)
    return s3


def eventually(check: Callable[[], bool], *, what: str, timeout: float = 60.0) -> None:
    """Wait for something another process does (a worker's prune, an eviction after a job ends)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout}s: {what}")
        time.sleep(0.1)


def enrol(api: HttpApi) -> str:
    response = api.upload_voice(4.0)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def speak(api: HttpApi, text: str) -> dict[str, Any]:
    response = api.post("/api/tts/jobs/", json={"text": text, "language": "en"})
    assert response.status_code == 202, response.text
    # The first job may wait for the worker's first model build (a cold NEURAL_CPU_CACHE_DIR).
    body = api.wait_job(response.json()["id"], timeout=180)
    assert body["status"] == "succeeded", body
    return body


def decoded(data: bytes) -> tuple[np.ndarray, int]:
    samples, rate = soundfile.read(io.BytesIO(data), dtype="float32")
    return samples, rate


def test_upload_synthesis_and_download_through_s3_with_no_shared_disk(stack: Stack, alice: Any, bob: Any) -> None:
    alice_http, bob_http = stack.api(alice), stack.api(bob)
    voice_id = enrol(alice_http)

    # The upload is in the bucket, normalised (32 kHz mono), and on no host's disk.
    voice_name = f"voices/{alice.id}/{voice_id}.wav"
    assert stack.s3.keys() == {voice_name}
    reference, rate = decoded(stack.s3.read(voice_name))
    assert rate == 32000 and reference.ndim == 1 and 3.0 <= len(reference) / rate <= 10.0
    assert stack.web_host.media_files() == []

    job = speak(alice_http, "Time to take two pills with water.")

    # The worker fetched the reference into its own cache and analysed it there (the sidecar).
    copy = stack.worker_host.reference_cache / f"{voice_id}.wav"
    assert copy.read_bytes() == stack.s3.read(voice_name)
    assert (stack.worker_host.reference_cache / f"{voice_id}.wav.analysis.json").is_file()
    assert not stack.web_host.reference_cache.exists()
    assert stack.worker_host.media_files() == [] and stack.web_host.media_files() == []

    # The clip is one object under its final name: no temp name, no unfinished multipart upload.
    clip_name = f"clips/{alice.id}/{job['cache_key']}.wav"
    assert stack.s3.keys() == {voice_name, clip_name}
    assert stack.s3.multipart_uploads() == []
    assert Clip.objects.get(owner=alice).audio.name == clip_name
    acl = stack.s3.client().get_object_acl(Bucket=stack.s3.bucket, Key=stack.s3.key(clip_name))
    assert [grant["Permission"] for grant in acl["Grants"]] == ["FULL_CONTROL"]  # the owner's, nobody else's

    # The owner gets the audio through the authenticated view, streamed from the bucket.
    for url in (job["audio_url"], f"/api/tts/cache/{job['cache_key']}/audio/"):
        response = alice_http.get(url)
        assert response.status_code == 200 and response.headers["Content-Type"] == "audio/wav"
        assert response.content == stack.s3.read(clip_name)
        samples, clip_rate = decoded(response.content)
        assert abs(len(samples) / clip_rate - job["duration_seconds"]) < 0.01
        assert np.abs(samples).max() > 0.05  # speech, not silence

    # Anyone else gets what a random id gets: the same 404, nothing from the bucket.
    not_found_job = bob_http.get(f"/api/tts/jobs/{uuid.uuid4()}/audio/")
    not_found_clip = bob_http.get(f"/api/tts/cache/{'0' * 64}/audio/")
    assert not_found_job.status_code == 404 and not_found_clip.status_code == 404
    for url, random_answer in ((job["audio_url"], not_found_job), (f"/api/tts/jobs/{job['id']}/", not_found_job),
                               (f"/api/tts/cache/{job['cache_key']}/audio/", not_found_clip)):
        response = bob_http.get(url)
        assert (response.status_code, response.content) == (404, random_answer.content), url


def test_deleting_a_voice_or_a_user_removes_their_objects_and_the_workers_copies(
    stack: Stack, s3_here: S3Server, alice: Any, bob: Any
) -> None:
    alice_http, bob_http = stack.api(alice), stack.api(bob)
    alice_voice, bob_voice = enrol(alice_http), enrol(bob_http)
    speak(alice_http, "Morning pills.")
    speak(bob_http, "Evening pills.")
    cache = stack.worker_host.reference_cache
    assert {p.name for p in cache.iterdir()} >= {f"{v}.wav{suffix}" for v in (alice_voice, bob_voice)
                                                  for suffix in ("", ".analysis.json")}
    assert len(stack.s3.keys(f"clips/{alice.id}/")) == 1 and len(stack.s3.keys(f"clips/{bob.id}/")) == 1

    # Bob cannot delete Alice's voice (the random-id 404), and nothing leaves the bucket.
    assert bob_http.delete(f"/api/tts/voices/{alice_voice}/").status_code == 404
    assert len(stack.s3.keys(f"voices/{alice.id}/")) == 1 and len(stack.s3.keys(f"clips/{alice.id}/")) == 1

    # Alice deletes her voice on the web: its object and her clips leave the bucket...
    assert alice_http.delete(f"/api/tts/voices/{alice_voice}/").status_code == 204
    assert stack.s3.keys(f"voices/{alice.id}/") == set() and stack.s3.keys(f"clips/{alice.id}/") == set()
    assert len(stack.s3.keys(f"voices/{bob.id}/")) == 1 and len(stack.s3.keys(f"clips/{bob.id}/")) == 1
    # ...and the worker, which the web cannot reach, removes its copy and sidecar by itself.
    eventually(lambda: not list(cache.glob(f"{alice_voice}*")), what="the worker removed Alice's copy")
    assert (cache / f"{bob_voice}.wav").is_file() and (cache / f"{bob_voice}.wav.analysis.json").is_file()

    # Deleting Bob's account (the admin's delete: the rows cascade) empties the bucket of him too.
    bob.delete()
    assert stack.s3.keys() == set()
    eventually(lambda: not list(cache.glob(f"{bob_voice}*")), what="the worker removed Bob's copy")


def test_a_voices_own_style_table_lives_in_the_bucket_is_used_by_the_worker_and_leaves_with_the_voice(
    stack: Stack, s3_here: S3Server, alice: Any
) -> None:
    from voice_tts.dispatch import voice_adapt_slice_send
    from voice_tts.models import AdaptationState

    api = stack.api(alice)
    voice_id = enrol(api)
    before = speak(api, "Morning pills.")
    # The search's first state, made here by the real search start and stored in the bucket, where the
    # worker resumes from it. walk-3 keeps a candidate only when its judges agree, which a 2-step walk
    # rarely sees (tests/test_voice_style_agreement.py tests the judges); this test is about where the
    # table lives, so the verdict is fixed: the bars are set so the first clear candidate is kept.
    voice = Voice.objects.get(id=voice_id)
    engine = engine_build("neural_cpu")
    engine.load()
    reference = voice_reference_path(voice=voice)
    samples, rate = soundfile.read(str(reference), dtype="float32", always_2d=False)
    analysis = reference_analysis(reference)
    state = search.style_search_start(
        engine=engine, encoder=SpeakerEncoder(threads=1), start_voice=engine.voice_for_reference(analysis),
        stock_voices=engine.candidate_voices, reference=samples, reference_rate=int(rate), steps_total=2, seed=1,
        sample_rate=SAMPLE_RATE, post=search.matching_post(engine=engine, reference=analysis, sample_rate=SAMPLE_RATE))
    state["best_score"], state["best_timbre"], state["baseline_errors"] = np.float64(-1), np.float64(np.inf), -1
    first = default_storage.save(f"{voice.audio.name}.adapt-00000.npz",
                                 ContentFile(search.style_search_dumps(state)))
    Voice.objects.filter(id=voice_id).update(adaptation_state=AdaptationState.RUNNING, adaptation_state_file=first)
    assert voice_adapt_slice_send(voice_id=voice_id)
    eventually(lambda: Voice.objects.get(id=voice_id).adaptation_state == AdaptationState.DONE,
               what="the style search finished", timeout=300)
    voice = Voice.objects.get(id=voice_id)
    # The table is one object beside the reference, with the before/after preview (two WAVs); the search
    # state between slices is gone.
    assert voice.adaptation_preview_before and voice.adaptation_preview_after
    assert stack.s3.keys(f"voices/{alice.id}/") == {voice.audio.name, voice.adaptation_style,
                                                    voice.adaptation_preview_before, voice.adaptation_preview_after}
    # The web serves the preview from the bucket.
    preview = api.get(f"/api/tts/voices/{voice_id}/adaptation/preview/after/")
    assert preview.status_code == 200 and preview.headers["Content-Type"] == "audio/wav"
    samples, _rate = decoded(preview.content)
    assert samples.size > 0 and float(np.abs(samples).max()) > 0.01
    # The next synthesis speaks with it: a new cache key, and the worker's own copy of the table.
    after = speak(api, "Morning pills.")
    assert after["cache_key"] != before["cache_key"]
    cache = stack.worker_host.reference_cache
    assert len(list(cache.glob(f"{voice_id}.wav.style-*.npz"))) == 1

    assert api.delete(f"/api/tts/voices/{voice_id}/").status_code == 204
    assert stack.s3.keys(f"voices/{alice.id}/") == set()
    eventually(lambda: not list(cache.glob(f"{voice_id}*")), what="the worker removed the table's copy")


def test_quota_eviction_removes_the_evicted_clips_object(stack: Stack, alice: Any) -> None:
    api = stack.api(alice)
    enrol(api)
    jobs = [speak(api, text) for text in ("First reminder.", "Second reminder.", "Third reminder.")]

    # The worker evicts after the job has finished: wait for it, then the bucket matches the rows.
    eventually(lambda: Clip.objects.filter(owner=alice).count() == QUOTA, what="eviction down to the quota")
    kept = set(Clip.objects.filter(owner=alice).values_list("audio", flat=True))
    assert stack.s3.keys("clips/") == kept
    assert f"clips/{alice.id}/{jobs[0]['cache_key']}.wav" not in kept  # the least recently used went
    assert api.get(f"/api/tts/cache/{jobs[0]['cache_key']}/audio/").status_code == 404
    assert api.get(f"/api/tts/cache/{jobs[2]['cache_key']}/audio/").status_code == 200


def test_the_sweeper_resends_a_lost_job_on_s3_and_each_worker_clears_its_own_temp_files(
    stack: Stack, s3_here: S3Server, alice: Any
) -> None:
    api = stack.api(alice)
    voice = Voice.objects.get(id=enrol(api))
    # A job whose message the broker lost: queued long ago, never delivered.
    long_ago = timezone.now() - timedelta(hours=1)
    job = Job.objects.create(owner=alice, voice=voice, text="The sweeper sent me again.", language="en",
                             enqueued_at=long_ago, enqueue_count=1)
    Job.objects.filter(id=job.id).update(created_at=long_ago)
    # Temp files of a reference copy cut short on the worker host (a SIGKILL mid-copy), and one in progress.
    stack.worker_host.reference_cache.mkdir(parents=True, exist_ok=True)
    abandoned = stack.worker_host.reference_cache / ".tmp-abandoned"
    abandoned.write_bytes(b"half a copy")
    os.utime(abandoned, (time.time() - 3600, time.time() - 3600))
    in_progress = stack.worker_host.reference_cache / ".tmp-in-progress"
    in_progress.write_bytes(b"being copied")

    report = jobs_sweep()

    assert report.requeued == 1
    assert report.partials_removed == 0  # S3 writes are single PUTs: no partial object to look for
    body = api.wait_job(str(job.id), timeout=120)
    assert body["status"] == "succeeded", body
    assert f"clips/{alice.id}/{body['cache_key']}.wav" in stack.s3.keys("clips/")
    eventually(lambda: not abandoned.exists(), what="the worker removed its abandoned temp file")
    assert in_progress.exists()


def test_reference_copy_is_fetched_once_per_host_and_pruned_there_after_deletion(
    s3_here: S3Server, settings: Any, tmp_path: Path, alice: Any, django_capture_on_commit_callbacks: Any
) -> None:
    worker_data, web_data = tmp_path / "worker-var", tmp_path / "web-var"
    settings.DATA_DIR = worker_data
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    path = voice_reference_path(voice=voice)
    assert path.parent == worker_data / "reference-cache"
    assert path.read_bytes() == s3_here.read(voice.audio.name)
    sidecar = path.with_name(path.name + ".analysis.json")
    sidecar.write_text("{}")  # what an engine derives from it
    # Fetched once: later calls use the copy (the object is not read again).
    s3_here.client().delete_object(Bucket=s3_here.bucket, Key=s3_here.key(voice.audio.name))
    assert voice_reference_path(voice=voice) == path
    assert voice_reference_cache_prune(older_than_seconds=600) == 0  # the voice still exists

    # The voice is deleted on another host (the web, with its own DATA_DIR): this host's copy stays...
    settings.DATA_DIR = web_data
    with django_capture_on_commit_callbacks(execute=True):
        voice.delete()
    settings.DATA_DIR = worker_data
    assert path.exists() and sidecar.exists()
    # ...until this host prunes its cache.
    assert voice_reference_cache_prune(older_than_seconds=600) == 2
    assert not path.exists() and not sidecar.exists()


def test_every_write_is_one_put_even_above_boto3s_multipart_threshold(s3_here: S3Server) -> None:
    calls: list[str] = []
    events = default_storage.connection.meta.client.meta.events
    events.register("before-call.s3", lambda model, **kwargs: calls.append(model.name))
    big = os.urandom(9 * 1024 * 1024)  # boto3 would split this into 8 MiB parts by default

    name = default_storage.save("clips/0/big.wav", ContentFile(big))

    assert calls == ["PutObject"]
    assert s3_here.read(name) == big and s3_here.multipart_uploads() == []
    default_storage.delete(name)
    assert s3_here.keys() == set()


@pytest.mark.parametrize(("extra", "message"), [
    ({"AUDIO_SENDFILE": "x-sendfile"}, "AUDIO_SENDFILE must be empty when STORAGE_BACKEND=s3"),
    ({"S3_ADDRESSING_STYLE": "dns"}, "S3_ADDRESSING_STYLE must be path, virtual or empty"),
])
def test_s3_settings_fail_at_start_on_what_cannot_work(s3: S3Server, extra: dict[str, str], message: str) -> None:
    env = {**os.environ, **s3.env(), **extra, "DJANGO_SETTINGS_MODULE": "medicine_project.settings"}
    out = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env, cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode != 0 and message in out.stderr
