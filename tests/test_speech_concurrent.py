"""64 /v1/audio/speech streams open at once on the shipped split web, with short requests answered beside
them (issue 25 item 1).

Live stack, started as `make run` starts it (medicine_project/devstack.py): the web (sync workers,
gunicorn_conf.py, 2 processes) and the /v1 stream server (gthread, gunicorn_stream_conf.py, 2 processes), a
private Redis, the test database, and at first no worker at all, so that every stream stays open. The proof is
the order of events, never a clock: all 64 streams are inside the server at once (each has made its sentence's
job, which no worker can finish yet, and none has answered), streams are seen waiting in Redis (blocking pops
in CLIENT LIST; a stream leaves its pop every SPEECH_WAKE_FALLBACK_SECONDS to re-read its job, so not all 64 are
in one snapshot under load), and while they still wait, the web answers health checks and a voice listing, and
the stream server itself answers /v1/models; only then does the worker start, and every stream delivers its
audio. With the stream server at 2 x 8 threads (the configuration before issue 25), the 17th stream waited for a
thread that no stream would give back until its audio came, so this test timed out (STREAM_THREADS=8: 16 jobs,
never 64). How fast short requests are answered beside the streams is measured in bench/web_config.py.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
import requests
import soundfile

from tests.stack import ServiceStack, speech_user_enrol
from tests.test_speech_disconnect import _until
from voice_tts.models import Job

STREAMS = 64
USERS = 4


@pytest.fixture
def idle_stack(transactional_db: Any) -> Iterator[ServiceStack]:
    stack = ServiceStack(engine="tone", concurrency=2, env={
        "THROTTLE_SPEECH_RATE": "100000/min",
        "THROTTLE_JOBS_RATE": "100000/min",
    })
    try:
        stack.redis.start()
        stack.stream_url = stack.start_split()
        yield stack
    finally:
        stack.shutdown()


def _waiting_streams(stack: ServiceStack) -> int:
    clients = redis.Redis.from_url(stack.redis.url).client_list()
    return sum(1 for client in clients if client.get("cmd") == "blmove")


def test_64_streams_stay_open_while_short_requests_are_answered(idle_stack, make_user):
    users = [speech_user_enrol(idle_stack, make_user, f"s{n}") for n in range(USERS)]
    tag = uuid.uuid4().hex[:8]

    def stream(n: int) -> bytes:
        user = users[n % USERS]
        response = requests.post(idle_stack.stream_url + "/v1/audio/speech", timeout=300, json={
            "model": "tts-1", "voice": "alloy", "input": f"Pill {n} of {tag}.", "response_format": "mp3"},
            headers={"Authorization": f"Bearer {user.token}"})
        assert response.status_code == 200, response.text
        return response.content

    with ThreadPoolExecutor(max_workers=STREAMS) as pool:
        answers = [pool.submit(stream, n) for n in range(STREAMS)]
        _until(lambda: Job.objects.filter(text__contains=tag).count() >= STREAMS,
               f"{STREAMS} streams inside the server, each with its job", timeout=240)
        _until(lambda: _waiting_streams(idle_stack) > 0, "streams waiting in Redis for their sentence")
        # Every stream is open and waiting; the web still answers.
        for _ in range(5):
            health = requests.get(idle_stack.base_url + "/api/tts/health/", timeout=30)
            assert health.status_code in (200, 503) and "status" in health.json()
        listing = users[0].client.get("/api/tts/voices/")
        assert listing.status_code == 200 and len(listing.json()["results"]) == 1
        models = requests.get(idle_stack.stream_url + "/v1/models", timeout=30,
                              headers={"Authorization": f"Bearer {users[1].token}"})
        assert models.status_code == 200 and models.json()["data"]
        ended = [answer for answer in answers if answer.done()]  # ... while no stream has ended
        assert not ended, [repr(answer.exception()) for answer in ended][:3]

        idle_stack.start_worker()
        bodies = [answer.result(timeout=300) for answer in answers]
    for body in bodies:
        samples, rate = soundfile.read(io.BytesIO(body), dtype="float32")
        assert len(samples) / rate > 0.1
