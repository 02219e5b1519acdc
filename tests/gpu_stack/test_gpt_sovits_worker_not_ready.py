"""A GPT-SoVITS worker whose weights are missing: it stays up, reports not-ready with the list of
missing files, jobs fail with that code (never hang), and the web keeps answering."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import worker_start, worker_stop

pytestmark = pytest.mark.worker

JOB_TIMEOUT_S = 180.0


def no_ready_gpt_sovits_worker_left() -> None:
    """A worker stopped by an earlier module may still have a heartbeat key for a few seconds."""
    from voice_tts.worker import status

    deadline = time.monotonic() + 30
    while any(w.get("ready") for w in status.workers_live() if w.get("engine") == "gpt_sovits"):
        assert time.monotonic() < deadline, "a ready gpt_sovits worker is still reporting"
        time.sleep(0.5)


def test_missing_weights_worker_reports_not_ready_and_jobs_fail_clearly(
    transactional_db: Any, settings: Any, alice_http: Any, tmp_path: Path
) -> None:
    settings.TTS_ENGINE = "gpt_sovits"
    no_ready_gpt_sovits_worker_left()
    empty = tmp_path / "no-weights"
    empty.mkdir()
    worker = worker_start(
        engine="gpt_sovits",
        extra_env={"GPTSOVITS_MODEL_PATH": str(empty), "GPTSOVITS_DEVICE": "cpu"},
        concurrency=1,
        timeout=240.0,
    )
    try:
        health = alice_http.get("/api/tts/health/")
        assert health.status_code == 200
        body = health.json()
        assert body["model_loaded"] is False and body["status"] == "not_ready"
        [state] = body["workers"]
        assert state["error_code"] == "engine_weights_missing"
        assert "s2G2333k.pth" in state["error"] and "chinese-hubert-base/pytorch_model.bin" in state["error"]

        alice_http.upload_voice(4.0)
        created = alice_http.post("/api/tts/jobs/", json={"text": "약 드실 시간입니다.", "language": "ko"})
        assert created.status_code == 202, created.text
        # The job fails with the reason (it does not hang in the queue), and the web keeps serving.
        done = alice_http.wait_job(created.json()["id"], timeout=JOB_TIMEOUT_S)
        assert done["status"] == "failed"
        assert done["error"]["code"] == "engine_weights_missing", done
        assert alice_http.get("/api/tts/health/").status_code == 200
    finally:
        worker_stop(worker)
