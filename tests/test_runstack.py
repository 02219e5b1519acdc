"""`make run` (manage.py runstack) starts the split web of compose, on two ports (issue 25 item 1).

A real runstack process with its real children (gunicorn twice, a Celery worker with the tone engine, beat), a
private Redis and the test database: the web on --bind answers /api, the stream server on
--stream-bind streams /v1/audio/speech with the audio the worker made, each server runs its own gunicorn
configuration (sync for the web, gthread for /v1: read from the processes' command lines), and SIGTERM stops
every process it started. How many streams the stream server holds beside short requests on the web:
tests/test_speech_concurrent.py, which starts the same two servers through the same devstack functions.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import soundfile

from medicine_project.devstack import free_port
from tests.audio_samples import wav_bytes
from tests.conftest import ROOT, database_url_for_subprocess
from tests.stack import PrivateRedis, web_wait_answering


def _cmdlines() -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
    return found


@pytest.fixture
def runstack(transactional_db: Any) -> Iterator[dict[str, Any]]:
    tmp = Path(os.environ["CAREPILL_TEST_TMP"]) / f"runstack-{uuid.uuid4().hex[:6]}"
    tmp.mkdir(parents=True)
    private_redis = PrivateRedis(tmp)
    private_redis.start()
    ports = set()
    while len(ports) < 2:
        port = free_port()
        if port != private_redis.port:
            ports.add(port)
    web_port, stream_port = sorted(ports)
    log = tmp / "runstack.log"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "medicine_project.settings",
           "DATABASE_URL": database_url_for_subprocess(), "CELERY_BROKER_URL": private_redis.url,
           "CAREPILL_REDIS_PREFIX": f"run-{uuid.uuid4().hex[:6]}:", "CAREPILL_DATA_DIR": str(tmp / "var"),
           "TTS_ENGINE": "tone", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "manage.py", "runstack", "--bind", f"127.0.0.1:{web_port}",
                             "--stream-bind", f"127.0.0.1:{stream_port}", "--web-workers", "1", "--concurrency", "1"],
                            cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        web, stream = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{stream_port}"
        def failure() -> str:
            return f"runstack's servers did not answer:\n{log.read_text(errors='replace')[-4000:]}"

        for url in (web, stream):
            web_wait_answering(url, proc, failure, timeout=120)
        yield {"proc": proc, "web": web, "stream": stream, "web_port": web_port, "stream_port": stream_port,
               "log": log}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        private_redis.stop()


def test_make_run_serves_the_api_on_one_port_and_v1_streams_on_the_other(runstack, make_user):
    alice = make_user(f"alice{uuid.uuid4().hex[:6]}")
    auth = {"Authorization": f"Token {alice.token}"}
    web, stream = runstack["web"], runstack["stream"]

    # Each port runs its own gunicorn configuration.
    lines = _cmdlines().values()
    web_line = [line for line in lines if "gunicorn" in line and f"127.0.0.1:{runstack['web_port']}" in line]
    stream_line = [line for line in lines if "gunicorn" in line and f"127.0.0.1:{runstack['stream_port']}" in line]
    assert web_line and all("medicine_project/gunicorn_conf.py" in line for line in web_line), web_line
    assert stream_line and all("medicine_project/gunicorn_stream_conf.py" in line for line in stream_line)

    # The web: the API (the pages need built static files: tests/test_web_browser.py builds and serves them).
    health = requests.get(web + "/api/tts/health/", timeout=30)
    assert health.status_code in (200, 503) and health.json()["engine"] == "tone"
    voice = requests.post(web + "/api/tts/voices/", headers=auth, timeout=60,
                          files={"voice_file": ("v.wav", wav_bytes(4.0))})
    assert voice.status_code == 201, voice.text

    # The stream server: /v1/audio/speech streamed with the worker's audio, sentence by sentence.
    with requests.post(stream + "/v1/audio/speech", stream=True, timeout=120,
                       headers={"Authorization": f"Bearer {alice.token}"},
                       json={"model": "tts-1", "voice": "alloy", "input": "First pill. Second pill.",
                             "response_format": "wav"}) as answer:
        assert answer.status_code == 200, answer.text
        assert answer.headers.get("Transfer-Encoding") == "chunked"  # streamed, as OpenAI does by default
        body = answer.content
    samples, rate = soundfile.read(io.BytesIO(body), dtype="float32")
    assert len(samples) / rate > 0.2

    # SIGTERM (Ctrl-C's stop) ends runstack and every process it started.
    children = [pid for pid, line in _cmdlines().items()
                if str(runstack["web_port"]) in line or str(runstack["stream_port"]) in line]
    assert children
    runstack["proc"].send_signal(signal.SIGTERM)
    assert runstack["proc"].wait(timeout=60) == 0
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
              for pid in children if Path(f"/proc/{pid}/status").exists()):
        assert time.monotonic() < deadline, "a server outlived runstack"
        time.sleep(0.2)
