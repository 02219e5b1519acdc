"""How much of a long-term envelope difference between two recordings is the speaker?

`workers.voice_match.ENVELOPE_CORRECTION_STRENGTH` comes from this measurement. The engine
filters each clip by a share of (reference envelope - chosen voice's envelope), where the two
envelopes were measured on different sentences: the reference says whatever the user
recorded, the candidate voice says the engine's probe phrase. Part of that difference is
content and estimation noise, not the speaker. The Wiener shrinkage of a difference of two
measurements is

    strength = s2 / (s2 + 2 * n2)

with n2 the variance of one voice's level-free envelope across sentences (per band, averaged
over bands and voices) and s2 the variance between voices of their mean envelopes. Both are
measured on the engine's own stock voices speaking sentences that are neither in
bench/voice_quality.py's phrase set nor its reference text, so the benchmark's references do
not enter the constant.

Runs with the service's venv (onnxruntime, pyworld; no bench packages), ~3 minutes on 2 cores:
    .venv/bin/python -m bench.envelope_shrinkage
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))

SENTENCES = [
    ("안녕하세요. 약 드실 시간입니다. 물 한 컵과 함께 드세요.", "ko"),  # the engine's candidate probe
    ("오늘 날씨가 참 좋네요. 점심 먹고 산책 다녀오세요.", "ko"),
    ("내일은 병원에 가는 날이에요. 보험 카드를 꼭 챙기세요.", "ko"),
    ("할머니, 잘 주무셨어요? 이따가 전화 드릴게요.", "ko"),
    ("Good morning. Remember to drink some water and rest well today.", "en"),
]
# The three stock voices give the between-voice variance; the half blends add within-voice
# samples (a blend is a voice too) without adding correlated "speakers" to s2.
STOCK = ["jf_alpha", "jf_tebukuro", "jm_kumo"]
BLENDS = ["jf_alpha=0.5+jm_kumo=0.5", "jf_tebukuro=0.5+jm_kumo=0.5", "jf_alpha=0.5+jf_tebukuro=0.5"]


def envelopes() -> np.ndarray:
    """Level-free long-term envelopes (dB, fit band), shape (voices, sentences, bands)."""
    from workers.engines.neural_cpu import SAMPLE_RATE, NeuralCpuEngine
    from workers.speech_text import speech_phonemes, text_normalise_for_speech
    from workers.voice_match import FIT_BAND, voice_analyse

    engine = NeuralCpuEngine()
    engine.match_enabled = False
    engine.load()
    voices = STOCK + BLENDS
    for voice in voices:
        if voice not in engine._voices:
            engine._voices[voice] = engine._blend_style(voice)
    out = np.zeros((len(voices), len(SENTENCES), int(FIT_BAND.sum())))
    for i, voice in enumerate(voices):
        for k, (text, language) in enumerate(SENTENCES):
            phonemes = speech_phonemes(text_normalise_for_speech(text, language), language)
            env = voice_analyse(engine._render(phonemes, voice, 1.0), SAMPLE_RATE).envelope[FIT_BAND]
            out[i, k] = env - env.mean()
    return out


def shrinkage(env: np.ndarray, stock_count: int = len(STOCK)) -> tuple[float, float, float]:
    """(n2, s2, strength) from envelopes shaped (voices, sentences, bands); the first
    `stock_count` voices are independent speakers."""
    noise = float(env.var(axis=1, ddof=1).mean())
    signal = float(env[:stock_count].mean(axis=1).var(axis=0, ddof=1).mean())
    return noise, signal, signal / (signal + 2.0 * noise)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    os.environ.setdefault("CAREPILL_DATA_DIR", str(PROJECT_DIR / "var"))
    env = envelopes()
    korean = [k for k, (_, language) in enumerate(SENTENCES) if language == "ko"]
    for label, sel in (("Korean sentences", korean), ("all sentences", list(range(len(SENTENCES))))):
        n2, s2, strength = shrinkage(env[:, sel])
        print(f"{label}: within-voice n2 {n2:.3f} dB^2, between-voice s2 {s2:.3f} dB^2, "
              f"strength s2/(s2+2 n2) = {strength:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
