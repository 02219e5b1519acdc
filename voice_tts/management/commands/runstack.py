"""`make run`: web + stream server (gunicorn) + worker (all queues) + beat (+ embedded Redis if none answers).

The split web of compose, without its proxy (docs/openai.md, "Serving"): the pages, /api and the admin on
--bind (sync workers, short requests at their best), the OpenAI-compatible /v1 on --stream-bind (gthread:
each open stream holds a thread, 64 at once fit). Point OpenAI clients' base_url at the stream server.
"""

from __future__ import annotations

import signal
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from medicine_project.devstack import Stack, beat_args, redis_ensured, stream_args, web_args, worker_args


class Command(BaseCommand):
    help = "Run the web, the /v1 stream server, a worker and beat in the foreground until interrupted."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000", help="the web: pages, /api, the admin")
        parser.add_argument("--stream-bind", default="127.0.0.1:8001", help="the stream server: /v1")
        parser.add_argument("--web-workers", type=int, default=2)
        parser.add_argument("--concurrency", type=int, default=None, help="worker processes (default: cores)")

    def handle(self, *args: Any, bind: str, stream_bind: str, web_workers: int, concurrency: int | None,
               **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        stopping = False

        def on_signal(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        with redis_ensured(settings.CELERY_BROKER_URL, log=self.stdout.write):
            stack = Stack()
            stack.start("worker", worker_args(concurrency=concurrency))
            stack.start("beat", beat_args())
            stack.start("web", web_args(bind=bind, workers=web_workers))
            stack.start("stream", stream_args(bind=stream_bind, workers=web_workers))
            self.stdout.write(f"web on http://{bind}/ (pages under /voice/, API under /api/tts/)")
            self.stdout.write(f"OpenAI-compatible speech on http://{stream_bind}/v1 (base_url for OpenAI clients)")
            self.stdout.write("Ctrl-C stops everything")
            try:
                while not stopping:
                    exited = stack.first_exited()
                    if exited:
                        self.stderr.write(f"{exited[0]} exited with code {exited[1]}; stopping")
                        break
                    time.sleep(0.5)
            finally:
                stack.stop()
