"""The contract every speech engine honours.

A worker process builds exactly one engine at start, calls `load()` once and then
`synthesize()` for every job it is given, so `load()` is where weights are read and
`synthesize()` must never reload them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

# params key naming a voice's own style table file (issue 26; read by neural_cpu, ignored by the
# others). Set by the worker's service from the voice row, never by a caller.
STYLE_TABLE_PARAM = "style_table"


class EngineError(Exception):
    """A synthesis failed for a reason that retrying the same job cannot fix.

    `code` is machine-readable and ends up on the job row (`error_code`).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class EngineTransientError(EngineError):
    """A synthesis failed for a reason that may go away (a peer server restarting,
    a busy device); the task retries these with backoff, a bounded number of times."""


class EngineNotReady(EngineError):
    """The engine could not be loaded (missing or corrupt weights, missing library)."""


@runtime_checkable
class Engine(Protocol):
    name: ClassVar[str]
    # Identifies the loaded weights; part of every cache key so that new weights never
    # serve clips made by old ones. Valid only after load().
    model_version: str
    device: str

    def load(self) -> None: ...

    def synthesize(
        self,
        text: str,
        language: str,
        reference: Path,
        transcript: str | None,
        params: dict[str, Any],
    ) -> tuple[np.ndarray, int]:
        """Return mono samples (int16 or float in [-1, 1]) and their sample rate."""
        ...
