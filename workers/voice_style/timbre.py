"""A second opinion on "sounds like the speaker" that no neural encoder gives: cepstral statistics.

The style search scores candidates with a d-vector encoder (encoder.py), and a walk guided by one
encoder learns to fool it: on a real female speaker its own score kept rising while an independent
encoder (resemblyzer, the benchmark's) fell below the start voice. So a candidate is kept only if
this encoder-free measure agrees that it did not move away from the speaker.

The measure is the oldest one in speaker recognition: the distribution of mel-cepstra (coefficients
1-19 of 40-band log mel power, 25 ms frames every 10 ms at 16 kHz, loud frames only; c0, the loudness,
is left out) summarised as a diagonal Gaussian, compared by the symmetric Kullback-Leibler divergence
per dimension. It knows nothing of the d-vector's weights, so a style vector that exploits them does
not move it; the probe text is fixed, so between candidates only the voice changes. In an exploratory
walk on the slt reference (bench/RESULTS.md) it tracked the independent encoder better than the
search's own score did (correlation -0.61 against +0.40 over 37 candidates).
"""

from __future__ import annotations

import numpy as np

from workers.voice_style.encoder import mel_filters

_RATE = 16000
_N_FFT, _WIN, _HOP, _N_MELS, _N_CEPS = 512, 400, 160, 40, 20
# Frames within ~30 dB of the loudest (natural-log units: 30 dB = 6.9): the voice, not the pauses.
_LOUD_RANGE = 6.9
# A floor on each coefficient's variance, so a near-constant one cannot dominate the divergence.
_VAR_FLOOR = 1e-3

_MEL = mel_filters(sample_rate=_RATE, n_fft=_N_FFT, n_mels=_N_MELS)
_n = np.arange(_WIN)
_WINDOW = np.zeros(_N_FFT)
_WINDOW[(_N_FFT - _WIN) // 2 : (_N_FFT - _WIN) // 2 + _WIN] = 0.54 - 0.46 * np.cos(2.0 * np.pi * _n / _WIN)
# DCT-II rows 0..19 over the 40 mel bands.
_DCT = np.cos(np.pi / _N_MELS * (np.arange(_N_MELS)[None, :] + 0.5) * np.arange(_N_CEPS)[:, None])


def timbre_profile(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """(2, 19): the mean and the variance of the loud frames' mel-cepstra (c1..c19)."""
    x = np.asarray(audio, dtype=np.float64).ravel()
    if sample_rate != _RATE:
        import soxr

        x = soxr.resample(x, sample_rate, _RATE)
    if x.size < _N_FFT + 2 * _HOP:
        raise ValueError("too short for a timbre profile")
    count = 1 + (x.size - _N_FFT) // _HOP
    idx = np.arange(_N_FFT)[None, :] + _HOP * np.arange(count)[:, None]
    power = np.abs(np.fft.rfft(x[idx] * _WINDOW, axis=1)) ** 2
    log_mel = np.log(power @ _MEL.T + 1e-10)
    peak = log_mel.max(axis=1)
    loud = peak > peak.max() - _LOUD_RANGE
    ceps = (log_mel[loud] @ _DCT.T)[:, 1:]
    return np.stack([ceps.mean(axis=0), ceps.var(axis=0) + _VAR_FLOOR]).astype(np.float64)


def timbre_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric KL divergence of two profiles' diagonal Gaussians, per dimension (0: identical)."""
    m1, v1 = a[0], a[1]
    m2, v2 = b[0], b[1]
    return float(0.5 * np.mean(v1 / v2 + v2 / v1 - 2.0 + (m1 - m2) ** 2 * (1.0 / v1 + 1.0 / v2)))
