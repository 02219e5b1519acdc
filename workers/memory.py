"""Hand freed heap back to the operating system now and then between syntheses.

A synthesis allocates and frees hundreds of MB of tensors of a different shape each time (the
text length varies). glibc keeps freed chunks in its arenas, fragmented, so a long-lived model
worker's RSS grows job after job although nothing leaks in Python terms; GPT-SoVITS's own
api_v2 server shows the same growth (bench/RESULTS.md). `malloc_trim(0)` returns the free pages
of every arena. The call itself takes milliseconds, but the next synthesis faults the pages in
again, so voice_tts/worker/signals.py trims every WORKER_HEAP_TRIM_EVERY syntheses, not after each.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import Any

logger = logging.getLogger(__name__)

_trim: Any = None  # libc's malloc_trim, False where the C library has none (musl, macOS)


def heap_trim() -> bool:
    """Return freed heap to the OS; False where the C library cannot."""
    global _trim
    if _trim is None:
        try:
            _trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
            _trim.argtypes, _trim.restype = [ctypes.c_size_t], ctypes.c_int
        except (OSError, AttributeError):
            logger.info("malloc_trim is not available: worker memory is not trimmed after jobs")
            _trim = False
    if _trim is False:
        return False
    _trim(0)
    return True
