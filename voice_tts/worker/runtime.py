"""The engine a worker process hosts for its whole life, and its heartbeat.

`engine_start()` runs once per process (Celery's worker_process_init); every task then
calls `engine_get()`. A failed load is kept as state (not raised at start) so the worker
stays up, reports not-ready with the reason to /health, and fails jobs with a clear code.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connections

from voice_tts.worker import status
from workers.engines.base import Engine, EngineError, EngineNotReady
from workers.engines.registry import engine_build

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_SECONDS = 5.0
# Load failures that may heal by themselves (a peer server still starting): the engine
# is loaded again on demand, at most this often. Missing weights are not retried.
RETRYABLE_LOAD_CODES = {"engine_unavailable"}
LOAD_RETRY_SECONDS = 15.0

_lock = threading.Lock()
_engine: Engine | None = None
_state: dict[str, Any] = {}
_heartbeat_started = False
# Called with (engine name, model version) after each successful load (signals.py passes the
# reminders service: new weights change every cache key).
_on_loaded: Callable[[str, str], None] | None = None


def _publish() -> None:
    with _lock:
        state = dict(_state, updated_at=time.time())
    try:
        status.worker_heartbeat_write(state, ttl_seconds=settings.WORKER_HEARTBEAT_TTL_SECONDS)
    except Exception:  # noqa: BLE001 - a missed heartbeat must never kill the worker
        logger.warning("worker heartbeat failed", exc_info=True)


def _heartbeat_loop() -> None:
    # Several beats per TTL, so one late beat on a busy machine never drops the worker.
    interval = min(HEARTBEAT_INTERVAL_SECONDS, settings.WORKER_HEARTBEAT_TTL_SECONDS / 3)
    while True:
        time.sleep(interval)
        _publish()


def engine_start(*, name: str, queues: list[str], on_loaded: Callable[[str, str], None] | None = None) -> None:
    """Build and load the engine once; record readiness or the reason it is not ready.

    `on_loaded(name, model_version)` runs after every successful load, the on-demand reloads
    of `engine_get()` included."""
    global _engine, _heartbeat_started, _on_loaded
    if on_loaded is not None:
        _on_loaded = on_loaded
    with _lock:
        _engine = None  # a failed (re)load must not leave the previous engine serving
        _state.update(
            hostname=socket.gethostname(),
            pid=os.getpid(),
            engine=name,
            queues=queues,
            ready=False,
            model_loaded=False,
            model_version="",
            device="",
            error_code="",
            error="",
            loads=_state.get("loads", 0),
            syntheses=_state.get("syntheses", 0),
            started_at=time.time(),
        )
    started = time.monotonic()
    try:
        engine = engine_build(name)
        engine.load()
    except EngineError as exc:
        logger.error("engine %s not ready: %s", name, exc.message)
        with _lock:
            _state.update(error_code=exc.code, error=exc.message)
    except Exception as exc:  # noqa: BLE001 - any load failure becomes not-ready state, reported to /health
        logger.exception("engine %s failed to load", name)
        with _lock:
            _state.update(error_code="engine_load_failed", error=f"{type(exc).__name__}: {exc}")
    else:
        with _lock:
            _engine = engine
            _state.update(
                ready=True,
                model_loaded=True,
                model_version=engine.model_version,
                device=engine.device,
                loads=_state["loads"] + 1,
                load_seconds=round(time.monotonic() - started, 3),
            )
        try:
            status.engine_version_publish(engine=name, model_version=engine.model_version)
        except Exception:  # noqa: BLE001 - the web then reads the database's (older) version
            logger.warning("could not publish the engine version", exc_info=True)
        if _on_loaded is not None:
            _on_loaded(name, engine.model_version)
    _publish()
    if not _heartbeat_started:
        _heartbeat_started = True
        threading.Thread(target=_heartbeat_loop, name="worker-heartbeat", daemon=True).start()


def engine_get() -> Engine:
    with _lock:
        engine, state = _engine, dict(_state)
    if (
        engine is None
        and state.get("error_code") in RETRYABLE_LOAD_CODES
        and time.time() - state.get("started_at", 0) >= LOAD_RETRY_SECONDS
    ):
        engine_start(name=state["engine"], queues=state.get("queues", []))
        with _lock:
            engine, state = _engine, dict(_state)
    if engine is None:
        if not state:
            raise EngineNotReady("engine_not_started", "this process has no engine (it does not serve synthesis)")
        raise EngineNotReady(state.get("error_code") or "engine_not_ready", state.get("error") or "engine not loaded")
    return engine


def synthesis_counted() -> None:
    with _lock:
        _state["syntheses"] = _state.get("syntheses", 0) + 1
    # Published at once (one Redis SET) so that what /health and tests read is current.
    _publish()


def worker_stopped() -> None:
    with _lock:
        state = dict(_state)
    if state:
        try:
            status.worker_heartbeat_clear(hostname=state["hostname"], pid=state["pid"])
        except Exception:  # noqa: BLE001 - shutting down anyway; the key expires by itself
            logger.debug("could not clear the heartbeat", exc_info=True)


def db_connections_drop() -> None:
    """Close every open database connection of this process; the next query opens a new one."""
    try:
        connections.close_all()
    except DatabaseError:
        logger.warning("closing a database connection failed", exc_info=True)
