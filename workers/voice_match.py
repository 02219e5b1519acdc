"""Bring a stock voice closer to an enrolled speaker with the WORLD vocoder.

There is no neural cloning on the CPU path: Kokoro only has a handful of stock voices.
What we can move cheaply is what listeners (and speaker-embedding models) use most to tell
people apart: the pitch register (log-F0 mean and spread) and the formant positions (the
spectral envelope stretched or squeezed along frequency, i.e. vocal-tract length). Measured
on our phrases: pitch alone does not raise speaker similarity, the envelope warp does.

The reference is analysed once per voice and the result is kept next to it as
`<reference>.analysis.json`, so the voice deletion that removes `<reference>*` removes it too.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

# Bump when the analysis or the transform changes; part of the engine's model_version
# and of the sidecar (an old sidecar is recomputed, never misread).
VOICE_MATCH_VERSION = "vm-4"

_FRAME_PERIOD_MS = 5.0
# Long-term envelope on a fixed Hz grid, so references of any sample rate compare.
_ENV_MAX_HZ = 8000.0
_ENV_POINTS = 129
_ENV_GRID = np.linspace(0.0, _ENV_MAX_HZ, _ENV_POINTS)
# Band where envelopes are compared (level removal, warp fit, correction): below 200 Hz is
# F0/noise, above 5 kHz mostly fricatives.
_FIT_LO_HZ, _FIT_HI_HZ = 200.0, 5000.0
FIT_BAND = (_ENV_GRID >= _FIT_LO_HZ) & (_ENV_GRID <= _FIT_HI_HZ)
FIT_BAND.flags.writeable = False
_WARP_CANDIDATES = np.linspace(0.80, 1.25, 46)
_F0_FLOOR, _F0_CEIL = 60.0, 500.0
# Timbre is compared as the mean mel cepstrum (c1..c15 of a 40-band log-mel envelope) of the
# voiced frames: the long-term counterpart of the mel-cepstral distance used to compare voices.
_MEL_BANDS = 40
_CEPSTRUM_ORDER = 15
_MEL_LO_HZ, _MEL_HI_HZ = 80.0, 7600.0
# In voice_distance, one unit of |log F0 difference| weighs as much as 4 cepstral units:
# a quarter-octave pitch difference (0.17 in log) counts like a clearly audible timbre step.
_PITCH_WEIGHT = 4.0
# WORLD re-synthesis costs time and quality (measured: ~2x the synthesis time, -0.6 MOS), so
# the engine runs it only when the closest stock voice is still this far from the reference's
# median pitch (0.25 in log = ~4 semitones); closer than that, pitch alone does not move
# speaker similarity and the stock voice is kept as Kokoro made it.
PITCH_TOLERANCE_LOG = 0.25
# Envelope correction (vm-4): the chosen voice's long-term envelope is filtered towards the
# reference's. Only part of the measured difference is the speaker: the reference and the
# candidate's probe say different sentences, so part of it is phonetic content and
# estimation noise. The share applied is the Wiener shrinkage speaker / (speaker + noise of a
# difference of two measurements) = s2 / (s2 + 2 n2), measured once offline on the stock
# voices with bench/envelope_shrinkage.py (n2: a voice's envelope variance across sentences,
# 1.1-1.2 dB^2; s2: variance between the stock voices, 10-10.6 dB^2 -> 0.81-0.83). No band is
# moved by more than _CORRECTION_MAX_DB, so one badly estimated band cannot colour a voice.
ENVELOPE_CORRECTION_STRENGTH = 0.8
_CORRECTION_MAX_DB = 9.0
# Above the analysed grid (8 kHz) the gain fades to 0 dB over this band instead of ending in
# a step: the analysis says nothing about those frequencies, so they are left as they are.
_CORRECTION_FADE_HZ = 2000.0


class VoiceMatchError(RuntimeError):
    pass


@dataclass
class VoiceAnalysis:
    """What we keep about a voice: pitch statistics and its long-term spectral envelope."""

    f0_median_hz: float
    log_f0_mean: float
    log_f0_std: float
    voiced_ratio: float
    duration_s: float
    envelope_db: list[float] = field(repr=False)  # mean log envelope on _ENV_GRID, voiced frames
    cepstrum: list[float] = field(default_factory=list, repr=False)  # mean mel cepstrum c1.., voiced frames
    version: str = VOICE_MATCH_VERSION

    @property
    def envelope(self) -> np.ndarray:
        return np.asarray(self.envelope_db, dtype=np.float64)


def _world():
    # pyworld-prebuilt installs the `pyworld` module; imported lazily so that the web
    # process can import this module's dataclass without the C extension.
    import pyworld

    return pyworld


def _as_world_input(samples: np.ndarray) -> np.ndarray:
    x = np.asarray(samples)
    if x.dtype == np.int16:
        x = x.astype(np.float64) / 32768.0
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    return x


def _f0(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    pw = _world()
    # DIO + StoneMask is ~10x faster than Harvest and good enough for statistics.
    f0, t = pw.dio(x, sample_rate, f0_floor=_F0_FLOOR, f0_ceil=_F0_CEIL, frame_period=_FRAME_PERIOD_MS)
    f0 = pw.stonemask(x, f0, t, sample_rate)
    return f0, t


def _mean_envelope_db(sp: np.ndarray, voiced: np.ndarray, sample_rate: int) -> np.ndarray:
    frames = sp[voiced] if voiced.any() else sp
    mean_db = 10.0 * np.log10(np.mean(frames, axis=0) + 1e-12)
    bins_hz = np.linspace(0.0, sample_rate / 2.0, sp.shape[1])
    env = np.interp(_ENV_GRID, bins_hz, mean_db)
    # Level does not identify a voice, the shape does: remove the mean over the fit band.
    return env - env[FIT_BAND].mean()


def _mel_grid_hz() -> np.ndarray:
    def mel(hz: float) -> float:
        return 2595.0 * math.log10(1.0 + hz / 700.0)

    mels = np.linspace(mel(_MEL_LO_HZ), mel(_MEL_HI_HZ), _MEL_BANDS)
    return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)


_MEL_GRID_HZ = _mel_grid_hz()
_DCT = np.cos(np.pi * np.outer(np.arange(1, _CEPSTRUM_ORDER + 1), np.arange(_MEL_BANDS) + 0.5) / _MEL_BANDS)


def _mel_cepstrum_mean(sp: np.ndarray, voiced: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mean mel cepstrum (c1..c15, c0 = level dropped) of the voiced frames' WORLD envelopes."""
    frames = sp[voiced] if voiced.any() else sp
    bins_hz = np.linspace(0.0, sample_rate / 2.0, sp.shape[1])
    # Linear interpolation of every frame at the mel band centres, vectorised over frames.
    idx = np.clip(np.searchsorted(bins_hz, _MEL_GRID_HZ) - 1, 0, sp.shape[1] - 2)
    frac = (_MEL_GRID_HZ - bins_hz[idx]) / (bins_hz[idx + 1] - bins_hz[idx])
    mel_env = frames[:, idx] * (1.0 - frac) + frames[:, idx + 1] * frac
    log_mel = np.log(mel_env + 1e-12)
    return (log_mel @ _DCT.T).mean(axis=0)


def voice_distance(candidate: VoiceAnalysis, reference: VoiceAnalysis) -> float:
    """How far a voice is from a reference: timbre (mel-cepstral) + pitch register (log F0).

    Used to pick the stock voice (or blend) to speak with; smaller is closer.
    """
    cep_a, cep_b = np.asarray(candidate.cepstrum), np.asarray(reference.cepstrum)
    timbre = float(np.sqrt(np.mean((cep_a - cep_b) ** 2))) if cep_a.size and cep_a.size == cep_b.size else 0.0
    pitch = abs(math.log(candidate.f0_median_hz / reference.f0_median_hz))
    return timbre + _PITCH_WEIGHT * pitch


def pitch_gap_log(candidate: VoiceAnalysis, reference: VoiceAnalysis) -> float:
    return abs(math.log(candidate.f0_median_hz / reference.f0_median_hz))


def _pitch_stats(f0: np.ndarray) -> tuple[float, float, float, float]:
    voiced = f0[f0 > 0]
    if voiced.size < 10:
        raise VoiceMatchError("no voiced speech found in the reference")
    logs = np.log(voiced)
    return float(np.median(voiced)), float(logs.mean()), float(logs.std()), float(voiced.size / max(1, f0.size))


def voice_analyse(samples: np.ndarray, sample_rate: int) -> VoiceAnalysis:
    """Analyse a recording: F0 median/spread and the long-term spectral envelope."""
    pw = _world()
    x = _as_world_input(samples)
    if x.size < sample_rate // 4:
        raise VoiceMatchError("reference is too short to analyse")
    f0, t = _f0(x, sample_rate)
    median, mean, std, ratio = _pitch_stats(f0)
    sp = pw.cheaptrick(x, f0, t, sample_rate)
    env = _mean_envelope_db(sp, f0 > 0, sample_rate)
    cep = _mel_cepstrum_mean(sp, f0 > 0, sample_rate)
    return VoiceAnalysis(
        f0_median_hz=median,
        log_f0_mean=mean,
        log_f0_std=std,
        voiced_ratio=ratio,
        duration_s=x.size / sample_rate,
        envelope_db=[round(float(v), 3) for v in env],
        cepstrum=[round(float(v), 4) for v in cep],
    )


def analysis_sidecar_path(reference: Path) -> Path:
    return reference.with_name(reference.name + ".analysis.json")


def _reference_stamp(reference: Path) -> dict[str, int]:
    st = reference.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def reference_analysis(reference: Path) -> VoiceAnalysis:
    """The analysis of an enrolled reference, computed once and kept beside the file.

    The sidecar records the reference's size and mtime: a re-uploaded reference at the
    same path is analysed again. A sidecar we cannot write (read-only media) is not an
    error, the analysis is just recomputed next time.
    """
    reference = Path(reference)
    sidecar = analysis_sidecar_path(reference)
    try:
        stamp = _reference_stamp(reference)
    except OSError as exc:
        raise VoiceMatchError(f"reference not readable: {exc}") from exc
    try:
        stored = json.loads(sidecar.read_text(encoding="utf-8"))
        if stored.get("version") == VOICE_MATCH_VERSION and stored.get("reference") == stamp:
            return VoiceAnalysis(**stored["analysis"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # missing, stale or corrupt: recompute below

    import soundfile

    try:
        samples, sample_rate = soundfile.read(str(reference), dtype="float64", always_2d=False)
    except Exception as exc:  # soundfile raises its own LibsndfileError and RuntimeError
        raise VoiceMatchError(f"reference not decodable: {exc}") from exc
    analysis = voice_analyse(samples, int(sample_rate))
    payload = {"version": VOICE_MATCH_VERSION, "reference": stamp, "analysis": asdict(analysis)}
    try:
        # Temp name in the same directory, then an atomic rename: two workers analysing
        # the same voice at once both write whole files and the last one wins.
        fd, tmp = tempfile.mkstemp(prefix=sidecar.name + ".", suffix=".tmp", dir=str(sidecar.parent))
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh)
        os.replace(tmp, sidecar)
    except OSError:
        try:
            os.unlink(tmp)
        except (OSError, UnboundLocalError):
            pass
    return analysis


def _warp_frequency(matrix: np.ndarray, alpha: float) -> np.ndarray:
    """out[:, k] = matrix[:, k / alpha]: alpha > 1 moves formants up (shorter vocal tract)."""
    bins = matrix.shape[1]
    src = np.clip(np.arange(bins) / alpha, 0, bins - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, bins - 1)
    frac = src - lo
    return matrix[:, lo] * (1.0 - frac) + matrix[:, hi] * frac


def _warp_envelope_db(env: np.ndarray, alpha: float) -> np.ndarray:
    return np.interp(_ENV_GRID / alpha, _ENV_GRID, env)


def warp_factor_fit(source_env_db: np.ndarray, target_env_db: np.ndarray) -> float:
    """The frequency-warp factor that best maps the source's long-term envelope onto the target's."""
    best, best_err = 1.0, math.inf
    for alpha in _WARP_CANDIDATES:
        warped = _warp_envelope_db(source_env_db, float(alpha))
        diff = warped[FIT_BAND] - target_env_db[FIT_BAND]
        err = float(np.mean((diff - diff.mean()) ** 2))
        if err < best_err:
            best, best_err = float(alpha), err
    return best


def envelope_correction_db(
    source: VoiceAnalysis,
    target: VoiceAnalysis,
    *,
    strength: float = ENVELOPE_CORRECTION_STRENGTH,
) -> np.ndarray:
    """The static EQ (dB on the analysis grid, 0-8 kHz) that moves `source`'s long-term
    envelope towards `target`'s: `strength` x their difference, level-free, clipped.

    Both envelopes are WORLD (CheapTrick) envelopes averaged over voiced frames, so the
    difference is spectral colour (tilt, formant regions), not the harmonics of either pitch.
    """
    diff = target.envelope - source.envelope
    if diff.shape != _ENV_GRID.shape:
        raise VoiceMatchError("analyses on different envelope grids")
    # Loudness is handled elsewhere: the correction only reshapes, it does not raise the level.
    diff = diff - diff[FIT_BAND].mean()
    return np.clip(strength * diff, -_CORRECTION_MAX_DB, _CORRECTION_MAX_DB)


def envelope_correction_apply(samples: np.ndarray, sample_rate: int, correction_db: np.ndarray) -> np.ndarray:
    """Filter `samples` by the static EQ `correction_db` (on the analysis grid); keeps the RMS level.

    A zero-phase filter applied to Kokoro's own waveform: the excitation, phase and timing
    stay exactly as the model made them. (Re-synthesising with WORLD to reshape the
    envelope cost ~0.3-0.6 predicted MOS in vm-2; this filter costs a few hundredths.)
    """
    x = _as_world_input(samples)
    correction_db = np.asarray(correction_db, dtype=np.float64)
    if x.size == 0 or not np.any(correction_db):
        return np.asarray(x, dtype=np.float32)
    # The gain curve is smooth at the grid's 62.5 Hz spacing, so its impulse response is a few
    # ms long; padding keeps the circular FFT convolution from wrapping the ends around.
    pad = min(4096, x.size)
    n = x.size + 2 * pad
    spectrum = np.fft.rfft(np.pad(x, pad), n)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    gain_db = np.interp(freqs, _ENV_GRID, correction_db)
    fade = np.clip((_ENV_MAX_HZ + _CORRECTION_FADE_HZ - freqs) / _CORRECTION_FADE_HZ, 0.0, 1.0)
    gain_db = np.where(freqs > _ENV_MAX_HZ, correction_db[-1] * fade, gain_db)
    y = np.fft.irfft(spectrum * 10.0 ** (gain_db / 20.0), n)[pad : pad + x.size]
    src_rms = float(np.sqrt(np.mean(x**2)) + 1e-12)
    out_rms = float(np.sqrt(np.mean(y**2)) + 1e-12)
    y = y * (src_rms / out_rms)
    peak = float(np.max(np.abs(y)))
    if peak > 0.99:
        y = y * (0.99 / peak)
    return y.astype(np.float32)


def voice_match_apply(
    samples: np.ndarray,
    sample_rate: int,
    target: VoiceAnalysis,
    *,
    strength: float = 1.0,
) -> np.ndarray:
    """Return `samples` re-synthesised with the target's pitch statistics and formant scale.

    `strength` in [0, 1] interpolates between no change and a full match (in log domain).
    """
    pw = _world()
    x = _as_world_input(samples)
    if x.size < sample_rate // 10 or strength <= 0:
        return np.asarray(samples, dtype=np.float32)
    f0, t = _f0(x, sample_rate)
    voiced = f0 > 0
    if voiced.sum() < 10:
        return np.asarray(samples, dtype=np.float32)
    sp = pw.cheaptrick(x, f0, t, sample_rate)
    ap = pw.d4c(x, f0, t, sample_rate)

    # Pitch: map log-F0 mean and spread. Spread ratio is bounded: a monotone reference
    # (or a bad F0 track) must not flatten or exaggerate the intonation to caricature.
    logs = np.log(f0[voiced])
    src_mean, src_std = float(logs.mean()), float(logs.std()) or 1e-3
    spread = float(np.clip(target.log_f0_std / src_std, 0.6, 1.6))
    new_logs = target.log_f0_mean + (logs - src_mean) * spread
    new_logs = (1 - strength) * logs + strength * new_logs
    f0_out = f0.copy()
    f0_out[voiced] = np.clip(np.exp(new_logs), _F0_FLOOR, _F0_CEIL)

    # Formants: warp the envelope (and aperiodicity, so noise bands follow) along frequency.
    src_env = _mean_envelope_db(sp, voiced, sample_rate)
    alpha = warp_factor_fit(src_env, target.envelope)
    alpha = float(np.exp(strength * np.log(alpha)))
    if abs(alpha - 1.0) > 1e-3:
        sp = _warp_frequency(sp, alpha)
        ap = np.clip(_warp_frequency(ap, alpha), 0.0, 1.0)

    # No long-term EQ toward the reference any more (vm-2 had one): it cost ~0.3 MOS on
    # Kokoro's output and the voice choice (voice_distance) now matches the spectral colour.

    y = pw.synthesize(f0_out, np.ascontiguousarray(sp), np.ascontiguousarray(ap), sample_rate, _FRAME_PERIOD_MS)
    y = y[: x.size]
    # Keep the loudness of the stock output; the caller normalises loudness later anyway.
    src_rms = float(np.sqrt(np.mean(x**2)) + 1e-9)
    out_rms = float(np.sqrt(np.mean(y**2)) + 1e-9)
    y = y * (src_rms / out_rms)
    peak = float(np.max(np.abs(y)) + 1e-9)
    if peak > 0.99:
        y = y * (0.99 / peak)
    return y.astype(np.float32)
