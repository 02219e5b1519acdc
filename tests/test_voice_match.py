"""WORLD voice matching on synthetic harmonic voices."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.voice_signals import envelope_gap, harmonic_voice
from workers.voice_match import (
    PITCH_TOLERANCE_LOG,
    VOICE_MATCH_VERSION,
    VoiceMatchError,
    analysis_sidecar_path,
    envelope_correction_apply,
    envelope_correction_db,
    pitch_gap_log,
    reference_analysis,
    voice_analyse,
    voice_distance,
    voice_match_apply,
    warp_factor_fit,
)

SR = 24000


def _write(path: Path, samples: np.ndarray, sr: int = SR) -> Path:
    sf.write(path, samples, sr)
    return path


def test_analysis_measures_f0() -> None:
    analysis = voice_analyse(harmonic_voice(210.0), SR)
    assert 195 < analysis.f0_median_hz < 225
    assert len(analysis.envelope_db) == 129
    assert analysis.voiced_ratio > 0.5


def test_matching_moves_f0_toward_the_reference() -> None:
    source = harmonic_voice(120.0, seed=1)
    target = voice_analyse(harmonic_voice(220.0, seed=2), SR)
    before = voice_analyse(source, SR).f0_median_hz
    matched = voice_match_apply(source, SR, target)
    after = voice_analyse(matched, SR).f0_median_hz
    assert abs(np.log(after / target.f0_median_hz)) < abs(np.log(before / target.f0_median_hz)) / 3
    assert matched.dtype == np.float32 and matched.size == source.size
    assert np.max(np.abs(matched)) <= 1.0


def test_matching_downwards_and_partial_strength() -> None:
    source = harmonic_voice(250.0, seed=3)
    target = voice_analyse(harmonic_voice(110.0, seed=4), SR)
    half = voice_analyse(voice_match_apply(source, SR, target, strength=0.5), SR).f0_median_hz
    full = voice_analyse(voice_match_apply(source, SR, target, strength=1.0), SR).f0_median_hz
    assert full < half < 250.0


def test_warp_factor_recovers_a_formant_shift() -> None:
    low = voice_analyse(harmonic_voice(150.0, formant_scale=1.0), SR)
    high = voice_analyse(harmonic_voice(150.0, formant_scale=1.15), SR)
    assert warp_factor_fit(low.envelope, high.envelope) > 1.05
    assert warp_factor_fit(high.envelope, low.envelope) < 0.95


def test_sidecar_is_written_and_reused(tmp_path: Path) -> None:
    ref = _write(tmp_path / "voice.wav", harmonic_voice(200.0, sample_rate=32000), 32000)
    first = reference_analysis(ref)
    sidecar = analysis_sidecar_path(ref)
    assert sidecar.name == "voice.wav.analysis.json"
    stored = json.loads(sidecar.read_text())
    assert stored["version"] == VOICE_MATCH_VERSION
    # Prove reuse: a doctored sidecar (same stamp) is returned as is.
    stored["analysis"]["f0_median_hz"] = 123.0
    sidecar.write_text(json.dumps(stored))
    assert reference_analysis(ref).f0_median_hz == 123.0
    assert abs(first.f0_median_hz - 200.0) < 15
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_sidecar_is_recomputed_when_the_reference_changes(tmp_path: Path) -> None:
    ref = _write(tmp_path / "voice.wav", harmonic_voice(200.0))
    reference_analysis(ref)
    _write(ref, harmonic_voice(120.0, seconds=2.5))
    os.utime(ref, ns=(1, 1))  # a different stamp even on coarse-mtime filesystems
    assert abs(reference_analysis(ref).f0_median_hz - 120.0) < 10


def test_corrupt_sidecar_is_ignored(tmp_path: Path) -> None:
    ref = _write(tmp_path / "voice.wav", harmonic_voice(180.0))
    analysis_sidecar_path(ref).write_text("{not json")
    assert abs(reference_analysis(ref).f0_median_hz - 180.0) < 12


def test_silent_or_missing_reference_is_an_error(tmp_path: Path) -> None:
    silent = _write(tmp_path / "silence.wav", np.zeros(SR * 2, np.float32))
    with pytest.raises(VoiceMatchError):
        reference_analysis(silent)
    with pytest.raises(VoiceMatchError):
        reference_analysis(tmp_path / "missing.wav")
    not_audio = tmp_path / "text.wav"
    not_audio.write_bytes(b"hello")
    with pytest.raises(VoiceMatchError):
        reference_analysis(not_audio)


def test_analysis_has_a_mel_cepstrum_that_tells_formants_apart() -> None:
    base = voice_analyse(harmonic_voice(150.0, formant_scale=1.0, seed=5), SR)
    same = voice_analyse(harmonic_voice(150.0, formant_scale=1.0, seed=6), SR)
    other = voice_analyse(harmonic_voice(150.0, formant_scale=1.2, seed=7), SR)
    assert len(base.cepstrum) == 15
    assert voice_distance(same, base) < voice_distance(other, base)


def test_voice_distance_counts_pitch() -> None:
    ref = voice_analyse(harmonic_voice(200.0, seed=8), SR)
    near = voice_analyse(harmonic_voice(210.0, seed=9), SR)
    far = voice_analyse(harmonic_voice(120.0, seed=10), SR)
    assert voice_distance(near, ref) < voice_distance(far, ref)
    assert pitch_gap_log(near, ref) < PITCH_TOLERANCE_LOG < pitch_gap_log(far, ref)


def test_envelope_correction_moves_the_envelope_toward_the_reference() -> None:
    source = harmonic_voice(200.0, formant_scale=1.0, seed=11)
    src = voice_analyse(source, SR)
    target = voice_analyse(harmonic_voice(200.0, formant_scale=1.15, seed=12), SR)
    before = envelope_gap(src.envelope, target.envelope)
    gaps = {}
    for strength in (0.5, 1.0):
        out = envelope_correction_apply(source, SR, envelope_correction_db(src, target, strength=strength))
        assert out.dtype == np.float32 and out.size == source.size
        after = voice_analyse(out, SR)
        gaps[strength] = envelope_gap(after.envelope, target.envelope)
        # A filter: the pitch is the source's, and the level is kept.
        assert abs(np.log(after.f0_median_hz / src.f0_median_hz)) < 0.02
        assert np.sqrt(np.mean(out**2)) == pytest.approx(np.sqrt(np.mean(source**2)), rel=0.02)
    assert gaps[1.0] < gaps[0.5] < before
    assert gaps[1.0] < before / 2


def test_envelope_correction_is_bounded_and_neutral_for_the_same_voice() -> None:
    voice = voice_analyse(harmonic_voice(180.0, seed=13), SR)
    assert not np.any(envelope_correction_db(voice, voice))
    source = harmonic_voice(180.0, seed=14)
    assert np.allclose(envelope_correction_apply(source, SR, np.zeros(129)), source, atol=1e-6)
    # A voice with no energy above 1 kHz: the difference is huge there, the EQ stays bounded.
    dull = voice_analyse(harmonic_voice(180.0, seed=15), SR)
    dull.envelope_db = [v - (40.0 if i > 16 else 0.0) for i, v in enumerate(dull.envelope_db)]
    correction = envelope_correction_db(dull, voice, strength=1.0)
    assert np.max(np.abs(correction)) <= 9.0 + 1e-9
    assert correction[100] > 0 > correction[5]  # raises the dull highs relative to the lows
