"""An instant engine: a short fixed tone whose pitch depends on the text.

It exists to measure the service's own overhead (bench/queue_overhead.py) and to
exercise the pipeline without any speech library. Select it with TTS_ENGINE=tone.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

_SAMPLE_RATE = 16000


class ToneEngine:
    name: ClassVar[str] = "tone"

    def __init__(self) -> None:
        self.model_version = "tone-1"
        self.device = "cpu"

    def load(self) -> None:
        return None

    def synthesize(
        self,
        text: str,
        language: str,
        reference: Path,
        transcript: str | None,
        params: dict[str, Any],
    ) -> tuple[np.ndarray, int]:
        # Different texts give different audio, so a mix-up between requests shows.
        digest = hashlib.sha256(f"{language}:{text}".encode()).digest()
        frequency = 200.0 + digest[0] * 2.0
        seconds = 0.25
        t = np.arange(int(_SAMPLE_RATE * seconds)) / _SAMPLE_RATE
        return (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), _SAMPLE_RATE
