"""A real HTTP server on 127.0.0.1 that records webhook deliveries."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.loopback import LoopbackServer


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    received_at: float


@dataclass
class WebhookReceiver(LoopbackServer):
    # Status codes to answer, in order; the last one repeats.
    statuses: list[int] = field(default_factory=lambda: [200])
    extra_headers: dict[str, str] = field(default_factory=dict)
    # Seconds to stall before answering, per request in order (a slow receiver).
    delays: list[float] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/carepill"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.deliveries.append(Delivery({k.lower(): v for k, v in self.headers.items()}, body,
                                                    time.monotonic()))
                number = len(receiver.deliveries)
                if number <= len(receiver.delays):
                    time.sleep(receiver.delays[number - 1])
                index = min(number, len(receiver.statuses)) - 1
                self.send_response(receiver.statuses[index])
                for key, value in receiver.extra_headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                return None

            def handle(self) -> None:
                try:
                    super().handle()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the service gave up waiting (timeout): expected here

        self.serve(Handler)
        return self

    def wait_for(self, count: int, *, timeout: float = 30.0, check: Callable[[], bool] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.deliveries)} deliveries after {timeout}s, wanted {count}")
            time.sleep(0.05)
