"""Knowing at once that a streamed answer's client has gone.

A /v1/audio/speech stream spends most of its life waiting for the next sentence's job, not writing; the
server learns that the client hung up only at its next write, which may be a whole sentence's synthesis
away. Until then the stream holds its gunicorn thread (its "slot") and its sentences still queued would be
synthesised for nobody. So while a stream is open, its client's socket is watched for the end of the
connection: a socket that turns readable and, peeked at (MSG_PEEK: nothing is consumed), gives 0 bytes
(FIN) or a reset has lost its client. A client that sends nothing while it reads its answer (every HTTP/1.1
client) makes the socket readable only by hanging up; one that pipelines its next request makes it readable
with data, and is then left alone (the stream ends at its next write, as without this).

One selector thread per process watches every open stream's socket, so the watch costs no thread per
stream. gunicorn hands the WSGI app its client socket as `environ["gunicorn.socket"]` (its sync and gthread
workers); under any other server the watch is off and a disconnect is seen at the next write.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest

logger = logging.getLogger(__name__)


class _Watcher:
    """The process' selector thread, started on first use (after gunicorn's fork, in the worker)."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="client-disconnect-watch", daemon=True)
        self._thread.start()

    def add(self, sock: socket.socket, on_gone: Callable[[], None]) -> None:
        with self._lock:
            self._selector.register(sock, selectors.EVENT_READ, on_gone)
        self._wake()

    def remove(self, sock: socket.socket) -> None:
        with self._lock:
            try:
                self._selector.unregister(sock)
            except (KeyError, ValueError):  # already gone (its client hung up), or the socket is closed
                pass
        self._wake()  # the thread must not poll a descriptor that the server may close and reuse

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except BlockingIOError:  # the wake-up pipe is full: the thread is already due to wake
            pass

    def _run(self) -> None:
        while True:
            events = self._selector.select()
            for key, _ in events:
                if key.fileobj is self._wake_r:
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except BlockingIOError:
                        pass
                    continue
                self._readable(key)

    def _readable(self, key: selectors.SelectorKey) -> None:
        sock: Any = key.fileobj
        try:
            gone = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:  # readable and then not: nothing to say yet
            return
        except OSError:  # reset by the peer, or closed under us
            gone = True
        with self._lock:
            try:
                self._selector.unregister(sock)
            except (KeyError, ValueError):
                return  # the stream ended meanwhile
        if gone:
            try:
                key.data()
            except Exception:  # noqa: BLE001 - the watch thread must outlive one stream's callback
                logger.exception("client disconnect callback failed")


_watcher: _Watcher | None = None
_watcher_lock = threading.Lock()


def _watcher_get() -> _Watcher:
    global _watcher
    with _watcher_lock:
        if _watcher is None:
            _watcher = _Watcher()
        return _watcher


class ClientWatch:
    """`on_gone` is called once, from the watch thread, as soon as the client hangs up; `close()` ends the watch
    (the answer is over). A no-op where the server does not hand over its socket."""

    def __init__(self, request: HttpRequest, on_gone: Callable[[], None]) -> None:
        self._sock = request.META.get("gunicorn.socket")
        if not isinstance(self._sock, socket.socket):
            self._sock = None
            return
        _watcher_get().add(self._sock, on_gone)

    @property
    def active(self) -> bool:
        return self._sock is not None

    def close(self) -> None:
        if self._sock is not None:
            _watcher_get().remove(self._sock)
            self._sock = None
