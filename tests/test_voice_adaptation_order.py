"""A voice's style search never holds the worker from interactive work (issue 26).

A real Celery worker (one process, the real neural_cpu engine) runs a search in slices on the
batch queue; an interactive job sent while a slice runs waits for that slice only. The order is
read from the worker's own log (Celery's "succeeded" lines, one per task, in the order they ran),
never from timings.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import worker_start, worker_stop
from voice_tts.models import AdaptationState, Job, Voice
from voice_tts.services.jobs import job_create
from voice_tts.services.voices import voice_create, voice_delete
from workers.engines.neural_cpu import SAMPLE_RATE, NeuralCpuEngine
from workers.engines.registry import engine_build

ROOT = Path(__file__).resolve().parents[1]
_SUCCEEDED = re.compile(r"Task voice_tts\.tasks\.(\w+)\[([0-9a-f-]+)\] succeeded")


def _until(check: Callable[[], bool], *, what: str, timeout: float = 600.0) -> None:
    # Waits for another process's event; the deadline only stops a hung run, it asserts no speed.
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.2)


def _speech_wav() -> bytes:
    import io

    import soundfile as sf

    engine = engine_build("neural_cpu")
    assert isinstance(engine, NeuralCpuEngine)
    engine.load()
    audio = engine.style_render(text="안녕하세요. 오늘은 날씨가 참 좋네요. 산책하러 같이 갈까요?", language="ko",
                                style=engine.style_of("jf_nezumi"))
    buf = io.BytesIO()
    sf.write(buf, audio, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_an_interactive_job_waits_for_one_slice_at_most(
    settings: Any, transactional_db: Any, alice: Any, django_capture_on_commit_callbacks: Any,
) -> None:
    run = uuid.uuid4().hex[:6]
    queues = {"WEBHOOK_QUEUE": f"adapt-{run}-webhooks", "SYNTHESIS_QUEUE": f"adapt-{run}-synthesis",
              "SYNTHESIS_BATCH_QUEUE": f"adapt-{run}-batch"}
    for name, value in queues.items():
        setattr(settings, name, value)
    settings.TTS_ENGINE = "neural_cpu"
    settings.VOICE_ADAPT_ENABLED = True
    reference = _speech_wav()
    worker = worker_start(engine="neural_cpu", concurrency=1, queues=list(queues.values()), timeout=600, extra_env={
        **queues, "VOICE_ADAPT_STEPS": "40", "VOICE_ADAPT_STEPS_PER_SLICE": "2",
        "NEURAL_CPU_CACHE_DIR": str(ROOT / "var" / "models" / "kokoro"),
    })
    try:
        with django_capture_on_commit_callbacks(execute=True):
            voice = voice_create(owner_id=alice.id, data=reference, language="ko")
        assert voice.adaptation_state == AdaptationState.PENDING
        # The search is under way: a slice has run (its "succeeded" line is in the worker's log).
        _until(lambda: "voice_adapt_slice_task" in [n for n, _ in _SUCCEEDED.findall(worker.log())],
               what="a first slice")

        # The slices that had finished when the job was sent (read just before: never fewer).
        finished_before_send = [n for n, _ in _SUCCEEDED.findall(worker.log())].count("voice_adapt_slice_task")
        job = job_create(owner_id=alice.id, text="Where are my glasses?", language="en")
        _until(lambda: Job.objects.get(id=job.id).status == "succeeded", what="the interactive job")

        def ran() -> list[tuple[str, str]]:
            return _SUCCEEDED.findall(worker.log())

        # Slices kept running after the job: the search did not finish first.
        _until(lambda: any(name == "voice_adapt_slice_task" for name, _ in
                           ran()[[n for n, _ in ran()].index("job_synthesize_task") + 1:]),
               what="a slice after the job")
        order = [name for name, _ in ran()]
        job_at = order.index("job_synthesize_task")
        # Between the job's arrival and its run, at most the slice that was running then.
        slices_before_job = order[:job_at].count("voice_adapt_slice_task")
        assert finished_before_send >= 1
        assert slices_before_job - finished_before_send <= 1, order
    finally:
        for voice_row in Voice.objects.filter(owner=alice):
            with django_capture_on_commit_callbacks(execute=True):
                voice_delete(voice=voice_row)
        worker_stop(worker)
