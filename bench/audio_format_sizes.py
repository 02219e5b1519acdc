"""Bytes per second of speech for each audio format (voice_tts/audio_codec.py), on real engine output.

    .venv/bin/python -m bench.audio_format_sizes

Speaks a few Korean and English reminder sentences with the espeak engine (22.05 kHz) and, if its model cache is
there, neural_cpu (Kokoro, 24 kHz); GPT-SoVITS' 32 kHz is stood in for by neural_cpu's speech resampled to 32 kHz
(its rate is what changes the Opus/MP3 path). Prints bytes per second of speech and the ratio to WAV. Numbers, not
a test.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soxr

from tests.audio_samples import wav_bytes
from voice_tts.audio_codec import AUDIO_FORMATS, audio_encode
from workers.engines.espeak import EspeakEngine

SENTENCES = [
    ("ko", "아침 약 드실 시간입니다. 물 한 컵과 함께 드세요."),
    ("ko", "혈압약은 식사 후 삼십 분에 드시면 됩니다."),
    ("en", "Time for your evening pills. Please take two tablets with water."),
    ("en", "Remember to check your blood sugar before lunch."),
]
FORMATS = ["wav", "flac", "opus", "mp3", "pcm"]


def speech(engine: object, reference: Path) -> tuple[np.ndarray, int]:
    pieces, rate = [], 0
    for language, text in SENTENCES:
        samples, rate = engine.synthesize(text, language, reference, None, {})  # type: ignore[attr-defined]
        pieces.append(np.asarray(samples))
    joined = np.concatenate(pieces)
    if joined.dtype == np.int16:
        joined = joined.astype(np.float32) / 32768.0
    return joined.astype(np.float32), rate


def sources(reference: Path) -> list[tuple[str, np.ndarray, int]]:
    espeak = EspeakEngine()
    espeak.load()
    found = [("espeak 22.05 kHz", *speech(espeak, reference))]
    try:
        from workers.engines.neural_cpu import NeuralCpuEngine

        os.environ.setdefault("NEURAL_CPU_CACHE_DIR", str(Path(__file__).resolve().parent.parent / "var/models/kokoro"))
        neural = NeuralCpuEngine()
        neural.load()
        samples, rate = speech(neural, reference)
    except Exception as exc:  # the model cache may be missing on this machine: report and go on
        print(f"(neural_cpu skipped: {type(exc).__name__}: {exc})")
    else:
        found.append((f"neural_cpu {rate / 1000:g} kHz", samples, rate))
        found.append(("neural_cpu resampled to 32 kHz (GPT-SoVITS' rate)", soxr.resample(samples, rate, 32000),
                      32000))
    return found


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        reference = Path(folder) / "reference.wav"  # a synthetic voice sample (neural_cpu matches its pitch)
        reference.write_bytes(wav_bytes(5.0, rate=32000))
        found = sources(reference)
    for label, samples, rate in found:
        seconds = len(samples) / rate
        print(f"\n{label}: {seconds:.1f} s of speech")
        print(f"{'format':<6} {'content type':<24} {'bytes/s':>9} {'kbit/s':>7} {'vs wav':>7} {'encode ms':>9}")
        wav_rate = None
        for name in FORMATS:
            started = time.perf_counter()
            data = audio_encode(samples=samples, sample_rate=rate, audio_format=name)
            elapsed = (time.perf_counter() - started) * 1000
            per_second = len(data) / seconds
            wav_rate = wav_rate or per_second
            print(f"{name:<6} {AUDIO_FORMATS[name].content_type:<24} {per_second:>9.0f} {per_second * 8 / 1000:>7.1f} "
                  f"{per_second / wav_rate:>7.3f} {elapsed:>9.1f}")


if __name__ == "__main__":
    main()
