"""Container healthchecks for compose.yaml, run inside the app image (docs/deployment.md):

    python deploy/healthcheck.py web                  # the web answers /api/tts/health/ as the proxy asks
    python deploy/healthcheck.py worker NODE          # e.g. cpu@$HOSTNAME: the worker answers a ping
                                                      # and every one of its processes has its engine loaded

A synthesis worker is healthy only when its engine is loaded: the processes of this container
publish their engine state to Redis (voice_tts/worker/status.py, the heartbeats /api/tts/health/
reads), so "healthy" here means what "ok" means there, for this worker. While the model loads
(Kokoro: about a minute on 2 cores) it says so and exits 1. The web check needs no Django; the
worker check sets Django up like any management command.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.request
from pathlib import Path
from typing import Any

APP_ROOT = Path(__file__).resolve().parent.parent


def web_check(*, host_header: str, url: str = "http://127.0.0.1:8000/api/tts/health/") -> str:
    """GET the health route with the Host the proxy sends (one of DJANGO_ALLOWED_HOSTS). A 200 means
    the web serves and reaches Redis (503 otherwise); the engine's own state is the workers' check."""
    request = urllib.request.Request(url, headers={"Host": host_header})  # noqa: S310 - a fixed local http URL
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        return f"web answers {response.status}"


def engine_problem(workers: list[dict[str, Any]], *, hostname: str, engine: str) -> str | None:
    """Why this host's worker processes are not all serving `engine`, or None when they are.

    `workers` are the live heartbeats of every host (status.workers_live()); a process that has
    not published yet is still starting, one with ready=False is loading or failed (error_code)."""
    mine = [w for w in workers if w.get("hostname") == hostname]
    if not mine:
        return f"no engine heartbeat from {hostname} yet (the worker processes are starting or loading the model)"
    for state in mine:
        if state.get("engine") != engine:
            return f"pid {state.get('pid')} runs engine {state.get('engine')!r}, TTS_ENGINE is {engine!r}"
        if not state.get("ready"):
            reason = state.get("error_code") or "loading the model"
            return f"pid {state.get('pid')}: engine {engine} not ready ({reason}) {state.get('error', '')}".rstrip()
    return None


def worker_check(node: str) -> str:
    """Ping `node` (the worker's -n name) and check its processes' engines; raises on failure."""
    sys.path.insert(0, str(APP_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medicine_project.settings")
    import django

    django.setup()
    from django.conf import settings

    from medicine_project.celery import app
    from voice_tts.worker import status

    if not app.control.ping(destination=[node], timeout=5):
        raise RuntimeError(f"{node} does not answer a ping")
    problem = engine_problem(status.workers_live(), hostname=socket.gethostname(), engine=settings.TTS_ENGINE)
    if problem:
        raise RuntimeError(problem)
    return f"{node} answers and its engine {settings.TTS_ENGINE} is loaded"


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["web"]:
            print(web_check(host_header=os.environ.get("CAREPILL_HOSTNAME") or "localhost"))
        elif argv[:1] == ["worker"] and len(argv) == 2:
            print(worker_check(argv[1]))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy", with its reason for `docker inspect`
        print(f"unhealthy: {type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
