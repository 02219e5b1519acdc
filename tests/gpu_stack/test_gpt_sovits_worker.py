"""End to end: a real Celery worker process with TTS_ENGINE=gpt_sovits on the tiny model, jobs
through the real API over HTTP (live_server), the model loaded once for several jobs, and
/api/tts/health/ reporting it. The worker runs with the non-loopback network guard too."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import soundfile

from tests.conftest import WorkerProcess, worker_start, worker_stop
from tests.gpu_stack.conftest import HERE

pytestmark = pytest.mark.worker

JOB_TIMEOUT_S = 180.0  # an upper bound for a hung job on a loaded 2-core machine, not a speed check


# Module scope: stopped before test_gpt_sovits_worker_not_ready.py starts its own (not-ready) worker.
@pytest.fixture(scope="module")
def gsv_worker(
    django_db_setup: Any, django_db_blocker: Any, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    env = {
        "GPTSOVITS_MODEL_PATH": str(tiny_model),
        "GPTSOVITS_DEVICE": os.environ.get("GPTSOVITS_TEST_DEVICE", "cpu"),
        "GPT_SOVITS_DATA_DIR": str(tmp_path_factory.mktemp("worker-gsv-data")),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE / "netblock"), os.environ.get("PYTHONPATH")])),
    }
    with django_db_blocker.unblock():
        # One process, as in production (`make worker-gpu`): one engine, one model in memory.
        worker = worker_start(engine="gpt_sovits", extra_env=env, concurrency=1, timeout=240.0)
    yield worker
    worker_stop(worker)


@pytest.fixture
def gsv(gsv_worker: WorkerProcess, transactional_db: Any, settings: Any) -> WorkerProcess:
    settings.TTS_ENGINE = "gpt_sovits"  # the web side (live_server thread) serves that engine too
    return gsv_worker


def test_jobs_complete_with_one_model_load(gsv: WorkerProcess, alice_http: Any) -> None:
    assert alice_http.upload_voice(4.0, transcript="참고 음성 문장입니다.").status_code == 201
    jobs = [
        {"text": "약 드실 시간입니다.", "language": "ko"},
        {"text": "혈압약 ABC 두 알을 드세요.", "language": "ko"},
        {"text": "Time to take your medicine.", "language": "en"},
    ]
    for job in jobs:
        created = alice_http.post("/api/tts/jobs/", json=job | {"params": {"seed": 7}})
        assert created.status_code == 202, created.text
        done = alice_http.wait_job(created.json()["id"], timeout=JOB_TIMEOUT_S)
        assert done["status"] == "succeeded", (done, gsv.log()[-3000:])
        audio = alice_http.get(done["audio_url"])
        assert audio.status_code == 200
        samples, rate = soundfile.read(io.BytesIO(audio.content), dtype="int16")
        assert rate > 0 and samples.size > 0

    states = [s for s in gsv.states() if s.get("pid")]
    assert len(states) == 1
    assert states[0]["loads"] == 1, states  # loaded once, at process start, not per job
    assert states[0]["syntheses"] >= len(jobs)

    health = alice_http.get("/api/tts/health/").json()
    assert health["engine"] == "gpt_sovits"
    assert health["model_loaded"] is True
    assert health["device"] == os.environ.get("GPTSOVITS_TEST_DEVICE", "cpu")
    assert health["model_version"].startswith("gpt_sovits-v2-")

