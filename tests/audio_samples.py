"""Synthetic recordings for tests: made here, never downloaded."""

from __future__ import annotations

import io

import numpy as np
import soundfile


def voice_like(seconds: float, *, rate: int = 44100, f0: float = 160.0, seed: int = 0) -> np.ndarray:
    """A harmonic, syllable-modulated signal with a little noise: speech-like levels."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    vibrato = f0 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(vibrato) / rate
    signal = sum(np.sin(k * phase) / k for k in range(1, 8))
    syllables = 0.55 + 0.45 * np.sin(2 * np.pi * 3.5 * t) ** 2
    return (0.2 * signal * syllables + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


def wav_bytes(
    seconds: float,
    *,
    rate: int = 44100,
    channels: int = 1,
    lead_silence: float = 0.0,
    tail_silence: float = 0.0,
    fmt: str = "WAV",
    subtype: str | None = None,
) -> bytes:
    speech = voice_like(seconds, rate=rate)
    audio = np.concatenate([np.zeros(int(lead_silence * rate), np.float32), speech,
                            np.zeros(int(tail_silence * rate), np.float32)])
    if channels > 1:
        audio = np.stack([audio * (1 - 0.1 * c) for c in range(channels)], axis=1)
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def silence_bytes(seconds: float, *, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(int(seconds * rate), np.float32), rate, format="WAV")
    return buffer.getvalue()


def decode(data: bytes) -> tuple[np.ndarray, int, soundfile._SoundFileInfo]:
    info = soundfile.info(io.BytesIO(data))
    samples, rate = soundfile.read(io.BytesIO(data), dtype="int16")
    return samples, rate, info
