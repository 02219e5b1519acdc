"""An instant engine: a short fixed tone whose pitch depends on the text.

It exists to measure the service's own overhead (bench/queue_overhead.py) and to
exercise the pipeline without any speech library. Select it with TTS_ENGINE=tone.

Knobs make it stand in for a real model in fault and load tests:
- TONE_DELAY_SECONDS: sleep this long per synthesis (a slow GPU);
- TONE_CRASH_MARKER: if the text contains this string, the process kills itself with
  SIGKILL, the way a segfaulting or OOM-killed engine dies (a poison input);
- TONE_SAMPLE_RATE: the clips' sample rate (default 16000), e.g. 24000 or 32000 to stand in for
  an engine whose rate the stored encodings depend on (services/speech.py).
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from carepill_config import ConfigError, Env
from workers.engines.base import EngineNotReady

_SAMPLE_RATE = 16000


class ToneEngine:
    name: ClassVar[str] = "tone"

    def __init__(self) -> None:
        self.model_version = "tone-1"
        self.device = "cpu"
        self._delay = 0.0
        self._crash_marker = ""
        self._sample_rate = _SAMPLE_RATE

    def load(self) -> None:
        env = Env()
        try:
            self._delay = env.float("TONE_DELAY_SECONDS", 0.0, minimum=0.0)
            self._crash_marker = env.str("TONE_CRASH_MARKER", "")
            self._sample_rate = env.int("TONE_SAMPLE_RATE", _SAMPLE_RATE, minimum=8000, maximum=48000)
        except ConfigError as exc:
            raise EngineNotReady("bad_config", str(exc)) from None

    def synthesize(
        self,
        text: str,
        language: str,
        reference: Path,
        transcript: str | None,
        params: dict[str, Any],
    ) -> tuple[np.ndarray, int]:
        if self._crash_marker and self._crash_marker in text:
            os.kill(os.getpid(), signal.SIGKILL)
        if self._delay:
            time.sleep(self._delay)
        # Different texts give different audio, so a mix-up between requests shows.
        digest = hashlib.sha256(f"{language}:{text}".encode()).digest()
        frequency = 200.0 + digest[0] * 2.0
        seconds = 0.25
        t = np.arange(int(self._sample_rate * seconds)) / self._sample_rate
        return (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), self._sample_rate
