"""workers.runtime: one engine per process, readiness reported, transient load
failures healed on demand (the api_v2 server of gpt_sovits_http starting after us)."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from voice_tts.worker import runtime
from workers.engines.base import EngineNotReady


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _OpenApi(BaseHTTPRequestHandler):
    """Answers like a GPT-SoVITS api_v2 server's schema page (enough for load())."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = b'{"paths": {"/tts": {}}}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        return None


def test_engine_unavailable_at_start_loads_once_the_server_is_up(monkeypatch, db):
    port = _free_port()
    monkeypatch.setenv("GPTSOVITS_API_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(runtime, "LOAD_RETRY_SECONDS", 0.0)

    runtime.engine_start(name="gpt_sovits_http", queues=["synthesis"])
    with pytest.raises(EngineNotReady):
        runtime.engine_get()  # still nothing listening: not ready

    server = ThreadingHTTPServer(("127.0.0.1", port), _OpenApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        engine = runtime.engine_get()
        assert engine.name == "gpt_sovits_http"
        assert runtime._state["ready"] is True and runtime._state["loads"] >= 1
    finally:
        server.shutdown()
        server.server_close()


def test_missing_weights_are_not_retried(monkeypatch, db):
    monkeypatch.setattr(runtime, "LOAD_RETRY_SECONDS", 0.0)
    from workers.engines import registry

    monkeypatch.setitem(registry.ENGINE_PATHS, "broken", "workers.engines.no_such_module.Engine")
    runtime.engine_start(name="broken", queues=["synthesis"])
    started = runtime._state["started_at"]
    with pytest.raises(EngineNotReady) as error:
        runtime.engine_get()
    assert error.value.code == "engine_load_failed"
    assert runtime._state["started_at"] == started  # no second load attempt


def test_heap_is_trimmed_every_n_syntheses_only(monkeypatch, settings):
    import sys

    from celery import signals

    from voice_tts.tasks import job_synthesize_task, webhook_deliver_task
    from voice_tts.worker import signals as lifecycle
    from workers.memory import heap_trim

    if sys.platform == "linux":
        assert heap_trim() is True  # glibc has malloc_trim: the real call runs here
    calls: list[int] = []
    monkeypatch.setattr(lifecycle, "heap_trim", lambda: calls.append(1) or True)
    monkeypatch.setattr(lifecycle, "_syntheses_since_trim", 0)
    settings.WORKER_HEAP_TRIM_EVERY = 3
    for _ in range(7):
        signals.task_postrun.send(sender=job_synthesize_task)
        signals.task_postrun.send(sender=webhook_deliver_task)  # never counted
    assert calls == [1, 1]  # after the 3rd and the 6th synthesis
    settings.WORKER_HEAP_TRIM_EVERY = 0
    for _ in range(5):
        signals.task_postrun.send(sender=job_synthesize_task)
    assert calls == [1, 1]
