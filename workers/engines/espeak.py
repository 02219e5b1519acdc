"""espeak-ng speaking the text, through its C library (ctypes).

The library and its voice data come from the `espeakng-loader` wheel, so no system
package is needed. It is a formant synthesiser: robotic but real, instant on a CPU,
and it speaks Korean and English. It does not clone the reference voice.
"""

from __future__ import annotations

import ctypes
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from workers.engines.base import EngineError, EngineNotReady
from workers.speech_text.espeak_phonemes import ESPEAK_LOCK, PhonemiserError, espeak_library

_ESPEAK_CHARS_UTF8 = 1
_PARAM_RATE = 1
_DEFAULT_WPM = 160


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

_VOICES = {"ko": b"ko", "en": b"en-us"}


class EspeakEngine:
    name: ClassVar[str] = "espeak"

    def __init__(self) -> None:
        self.model_version = ""
        self.device = "cpu"
        self._lib: ctypes.CDLL | None = None
        self._sample_rate = 0
        self._chunks: list[np.ndarray] = []
        # Keep a reference: ctypes callbacks are freed when garbage collected.
        self._callback = _SynthCallback(self._on_samples)

    def _on_samples(self, wav: Any, count: int, _events: Any) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    def load(self) -> None:
        # One initialised library per process, shared with the phonemiser of the
        # neural_cpu engine (workers.speech_text.espeak_phonemes), under one lock.
        with ESPEAK_LOCK:
            try:
                lib = espeak_library()
            except PhonemiserError as exc:
                raise EngineNotReady("engine_load_failed", str(exc)) from exc
            lib.espeak_Synth.argtypes = [
                ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
            ]
            sample_rate = lib.espeak_ng_GetSampleRate()
        if sample_rate <= 0:
            raise EngineNotReady("engine_load_failed", f"espeak-ng reports sample rate {sample_rate}")
        self._lib = lib
        self._sample_rate = sample_rate
        self.model_version = f"espeak-ng-loader-{version('espeakng-loader')}"

    def synthesize(
        self,
        text: str,
        language: str,
        reference: Path,
        transcript: str | None,
        params: dict[str, Any],
    ) -> tuple[np.ndarray, int]:
        if self._lib is None:
            raise EngineNotReady("engine_not_loaded", "espeak engine used before load()")
        voice = _VOICES.get(language)
        if voice is None:
            raise EngineError("unsupported_language", f"espeak engine speaks {', '.join(_VOICES)}, not {language!r}")
        speed = float(params.get("speed", 1.0))
        encoded = text.encode("utf-8")
        with ESPEAK_LOCK:
            self._chunks = []
            # The callback is process-global too: claim it for this call.
            self._lib.espeak_SetSynthCallback(self._callback)
            if self._lib.espeak_SetVoiceByName(voice) != 0:
                raise EngineError("engine_failed", f"espeak-ng has no voice {voice.decode()}")
            self._lib.espeak_SetParameter(_PARAM_RATE, int(_DEFAULT_WPM * speed), 0)
            status = self._lib.espeak_Synth(encoded, len(encoded) + 1, 0, 0, 0, _ESPEAK_CHARS_UTF8, None, None)
            self._lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        if status != 0 or not chunks:
            raise EngineError("engine_failed", f"espeak-ng produced no audio (status {status})")
        return np.concatenate(chunks), self._sample_rate
