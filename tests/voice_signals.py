"""Synthetic voice-like signals for tests: no recordings, nothing downloaded."""

from __future__ import annotations

import numpy as np

from workers.voice_match import FIT_BAND


def harmonic_voice(f0_hz: float, seconds: float = 2.0, sample_rate: int = 24000, formant_scale: float = 1.0,
                   seed: int = 0) -> np.ndarray:
    """A sung vowel-ish tone: glottal-like harmonics at `f0_hz` with slow vibrato, shaped by
    three formant resonances (scaled by `formant_scale`) and syllable-rate amplitude."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = f0_hz * (1.0 + 0.03 * np.sin(2 * np.pi * 5.0 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    formants = np.array([700.0, 1200.0, 2600.0]) * formant_scale
    out = np.zeros_like(t)
    for k in range(1, int(5000 / f0_hz)):
        freq = k * f0_hz
        gain = sum(1.0 / (1.0 + ((freq - fc) / 120.0) ** 2) for fc in formants) + 0.02
        out += gain / k**0.5 * np.sin(k * phase)
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 3.0 * t) ** 2
    out = out * envelope + 0.001 * rng.standard_normal(t.size)
    return (0.5 * out / np.max(np.abs(out))).astype(np.float32)


def envelope_gap(a: np.ndarray, b: np.ndarray) -> float:
    """RMS difference (dB) of two long-term envelopes over the matching's fit band, level removed."""
    diff = a[FIT_BAND] - b[FIT_BAND]
    return float(np.sqrt(np.mean((diff - diff.mean()) ** 2)))
