"""A stand-in for GPT-SoVITS' `api_v2` server: a real HTTP server on 127.0.0.1, in a thread of
the test process, that answers the two routes workers/engines/gpt_sovits_http.py calls.

GET /openapi.json (the engine's load-time probe) answers a schema naming /tts. POST /tts answers
the statuses in `tts_statuses`, in order (the last one repeats): 200 is real audio (a WAV made
with numpy and soundfile), anything else api_v2's JSON error body. Every request is recorded, in
the order it arrived, so a test can assert on what the worker did.
"""

from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import soundfile

from tests.loopback import LoopbackServer

SAMPLE_RATE = 32000  # what api_v2 answers with v2 models


def speech_wav(seconds: float = 0.5) -> bytes:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    samples = (0.3 * np.sin(2 * np.pi * 220 * t) * np.hanning(len(t))).astype(np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@dataclass
class ApiV2Standin(LoopbackServer):
    tts_statuses: list[int] = field(default_factory=lambda: [200])
    # (method, path, status answered), in arrival order.
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    tts_payloads: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tts_answers(self) -> list[int]:
        with self._lock:
            return [status for method, path, status in self.requests if (method, path) == ("POST", "/tts")]

    def start(self) -> ApiV2Standin:
        standin = self
        audio = speech_wav()

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path != "/openapi.json":
                    self._record("GET", 404)
                    return self._answer(404, b'{"detail":"Not Found"}', "application/json")
                self._record("GET", 200)
                schema = {"openapi": "3.1.0", "paths": {"/tts": {"get": {}, "post": {}}, "/control": {}}}
                self._answer(200, json.dumps(schema).encode(), "application/json")

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"{}")
                if self.path != "/tts":
                    self._record("POST", 404)
                    return self._answer(404, b'{"detail":"Not Found"}', "application/json")
                with standin._lock:
                    number = sum(1 for m, p, _ in standin.requests if (m, p) == ("POST", "/tts"))
                    status = standin.tts_statuses[min(number, len(standin.tts_statuses) - 1)]
                    standin.requests.append(("POST", "/tts", status))
                    standin.tts_payloads.append(payload)
                if status == 200:
                    return self._answer(200, audio, "audio/wav")
                body = {"message": "tts failed", "Exception": "the model server is restarting"}
                self._answer(status, json.dumps(body).encode(), "application/json")

            def _record(self, method: str, status: int) -> None:
                with standin._lock:
                    standin.requests.append((method, self.path, status))

            def log_message(self, *args: Any) -> None:
                return None

        self.serve(Handler)
        return self
