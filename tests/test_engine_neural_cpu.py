"""The neural_cpu engine end to end: real model from the wheels, real espeak-ng, real WORLD."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.voice_signals import envelope_gap, harmonic_voice
from workers.engines.base import Engine, EngineError, EngineNotReady
from workers.engines.neural_cpu import (
    VOICE_QUALITY_MOS,
    NeuralCpuEngine,
    blend_names,
    blend_parts,
    model_file_assemble,
)
from workers.engines.registry import ENGINE_PATHS, engine_build
from workers.voice_match import VoiceAnalysis, analysis_sidecar_path, reference_analysis, voice_analyse
from workers.voice_style import search
from workers.voice_style.encoder import SpeakerEncoder


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kokoro-cache")


@pytest.fixture(scope="module")
def engine(cache_dir: Path) -> NeuralCpuEngine:
    mp = pytest.MonkeyPatch()
    mp.setenv("NEURAL_CPU_CACHE_DIR", str(cache_dir))
    mp.setenv("NEURAL_CPU_THREADS", "2")
    mp.setenv("NEURAL_CPU_MATCH", "1")
    built = engine_build("neural_cpu")
    assert isinstance(built, NeuralCpuEngine)
    built.load()
    mp.undo()
    return built


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    path = tmp_path / "ref.wav"
    sf.write(path, harmonic_voice(210.0, seconds=2.0, sample_rate=32000), 32000)
    return path


def _decodable(samples: np.ndarray, sr: int) -> np.ndarray:
    buf = io.BytesIO()
    sf.write(buf, samples, sr, format="WAV", subtype="PCM_16")
    buf.seek(0)
    decoded, decoded_sr = sf.read(buf, dtype="float32")
    assert decoded_sr == sr
    return decoded


def test_registered_and_protocol(engine: NeuralCpuEngine) -> None:
    assert ENGINE_PATHS["neural_cpu"] == "workers.engines.neural_cpu.NeuralCpuEngine"
    assert isinstance(engine, Engine)
    assert engine.name == "neural_cpu" and engine.device == "cpu"
    assert engine.model_version.startswith("kokoro82m-int8-")
    assert "ko-rules" in engine.model_version


@pytest.mark.parametrize(
    ("language", "text"),
    [("ko", "아침 8시 30분입니다. 혈압약 1정을 드세요."), ("en", "Please take 2 tablets at 8:30.")],
)
def test_synthesizes_plausible_audio(engine: NeuralCpuEngine, reference: Path, language: str, text: str) -> None:
    samples, sr = engine.synthesize(text, language, reference, None, {"speed": 1.0, "seed": 7, "other": "x"})
    assert sr == 24000
    decoded = _decodable(samples, sr)
    seconds = decoded.size / sr
    # About 5-25 characters of normalised text per second of speech.
    chars = len(engine.phonemes(text, language))
    assert chars / 25 < seconds < chars / 5 + 1
    assert np.isfinite(samples).all() and np.max(np.abs(samples)) <= 1.0
    assert np.sqrt(np.mean(samples**2)) > 0.01  # not silence


def test_speed_param_shortens_audio(engine: NeuralCpuEngine, reference: Path) -> None:
    slow, _ = engine.synthesize("약 드실 시간입니다.", "ko", reference, None, {"speed": 0.8})
    fast, _ = engine.synthesize("약 드실 시간입니다.", "ko", reference, None, {"speed": 1.6})
    assert fast.size < slow.size * 0.8


def test_matching_moves_f0_toward_reference(engine: NeuralCpuEngine, tmp_path: Path) -> None:
    """A mid reference (180 Hz, below the female stock voice) and a low one (100 Hz)."""
    text = "오늘도 약을 꼭 챙겨 드세요."
    for f0 in (100.0, 180.0):
        ref = tmp_path / f"ref{int(f0)}.wav"
        sf.write(ref, harmonic_voice(f0, seconds=2.0), 24000)
        engine.match_enabled = False
        stock, sr = engine.synthesize(text, "ko", ref, None, {})
        engine.match_enabled = True
        matched, _ = engine.synthesize(text, "ko", ref, None, {})
        stock_f0 = voice_analyse(stock, sr).f0_median_hz
        matched_f0 = voice_analyse(matched, sr).f0_median_hz
        assert abs(np.log(matched_f0 / f0)) < abs(np.log(stock_f0 / f0))
        assert analysis_sidecar_path(ref).exists()


def test_stock_voice_follows_reference_pitch(engine: NeuralCpuEngine) -> None:
    assert engine.voice_for_pitch(95.0) == engine.voice_male
    assert engine.voice_for_pitch(260.0) == engine.voice_female


def test_unsupported_language(engine: NeuralCpuEngine, reference: Path) -> None:
    with pytest.raises(EngineError) as info:
        engine.synthesize("Bonjour", "fr", reference, None, {})
    assert info.value.code == "unsupported_language"


def test_unusable_reference(engine: NeuralCpuEngine, tmp_path: Path) -> None:
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(48000, np.float32), 24000)
    with pytest.raises(EngineError) as info:
        engine.synthesize("약 드세요.", "ko", silent, None, {})
    assert info.value.code == "reference_unusable"


def test_nothing_speakable(engine: NeuralCpuEngine, reference: Path) -> None:
    with pytest.raises(EngineError) as info:
        engine.synthesize(" ... ", "ko", reference, None, {})
    assert info.value.code == "empty_text"


def test_synthesize_before_load_is_not_ready(reference: Path) -> None:
    with pytest.raises(EngineNotReady):
        NeuralCpuEngine().synthesize("약", "ko", reference, None, {})


def test_session_does_not_cache_a_memory_plan_per_input_length(engine: NeuralCpuEngine) -> None:
    # Each phrase is a new input shape; a per-shape plan cache made the worker grow job after job.
    assert engine._session.get_session_options().enable_mem_pattern is False


def test_long_text_is_chunked_to_the_model_context(engine: NeuralCpuEngine) -> None:
    phonemes = engine.phonemes("아침 식사 후에 혈압약 1정과 비타민 2알을 물 한 컵과 함께 드세요, " * 20, "ko")
    chunks = engine._chunks(phonemes)
    assert len(chunks) > 1
    assert all(0 < len(engine._tokens(c)) <= 500 for c in chunks)
    assert "".join(chunks).replace(" ", "") == phonemes.replace(" ", "")


def test_corrupt_cached_model_is_rebuilt(engine: NeuralCpuEngine, cache_dir: Path) -> None:
    model, digest = model_file_assemble(cache_dir)
    with open(model, "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\0garbage\0")
    rebuilt, digest_again = model_file_assemble(cache_dir)
    assert rebuilt == model and digest_again == digest
    import hashlib

    assert hashlib.sha256(rebuilt.read_bytes()).hexdigest() == digest


def test_blend_names() -> None:
    names = blend_names(["a", "b", "c"], 4)
    assert len(names) == 15 and len(set(names)) == 15
    assert {"a", "b", "c"} <= set(names)
    assert "a=0.25+b=0.5+c=0.25" in names


def test_candidates_are_blends_analysed_once_and_cached(engine: NeuralCpuEngine, cache_dir: Path) -> None:
    assert len(engine._candidates) == len(blend_names(engine.candidate_voices, 4))
    assert list(cache_dir.glob("candidates-*.json"))
    blend = next(n for n in engine._candidates if "+" in n)
    assert engine._voices[blend].shape == engine._voices[engine.voice_female].shape
    assert "cand-" in engine.model_version


def test_voice_choice_follows_the_reference(engine: NeuralCpuEngine, tmp_path: Path) -> None:
    low = voice_analyse(harmonic_voice(95.0, seconds=2.0), 24000)
    high = voice_analyse(harmonic_voice(300.0, seconds=2.0), 24000)
    low_f0 = engine._candidates[engine.voice_for_reference(low)].f0_median_hz
    high_f0 = engine._candidates[engine.voice_for_reference(high)].f0_median_hz
    assert low_f0 < high_f0


def test_world_runs_only_when_the_closest_blend_is_far(
    engine: NeuralCpuEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workers.voice_match as vm

    calls: list[int] = []
    real = vm.voice_match_apply

    def counting(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(vm, "voice_match_apply", counting)
    ref = tmp_path / "ref180.wav"
    sf.write(ref, harmonic_voice(180.0, seconds=2.0), 24000)
    engine.match_enabled = True
    engine.synthesize("약 드세요.", "ko", ref, None, {})
    assert calls == []  # a blend within the pitch tolerance exists: Kokoro's audio as is
    # Only the female voice to choose from: 180 Hz is far below it, WORLD lowers the pitch.
    monkeypatch.setattr(engine, "_candidates", {engine.voice_female: engine._candidates[engine.voice_female]})
    out, sr = engine.synthesize("약 드세요.", "ko", ref, None, {})
    assert calls == [1]
    assert voice_analyse(out, sr).f0_median_hz < engine._candidates[engine.voice_female].f0_median_hz


def test_matched_clip_is_filtered_toward_the_reference_envelope(
    engine: NeuralCpuEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within the pitch tolerance the blend's clip is EQ'd toward the reference's long-term envelope."""
    ref = tmp_path / "ref_bright.wav"
    sf.write(ref, harmonic_voice(240.0, seconds=2.5, formant_scale=1.2), 24000)
    target = voice_analyse(harmonic_voice(240.0, seconds=2.5, formant_scale=1.2), 24000)
    text = "오늘도 약을 꼭 챙겨 드세요."
    engine.match_enabled = True
    monkeypatch.setattr(engine, "envelope_strength", 0.8)
    matched, sr = engine.synthesize(text, "ko", ref, None, {})
    monkeypatch.setattr(engine, "envelope_strength", 0.0)
    plain, _ = engine.synthesize(text, "ko", ref, None, {})  # the same blend, Kokoro's spectrum as is
    assert matched.size == plain.size
    before, after = voice_analyse(plain, sr), voice_analyse(matched, sr)
    assert envelope_gap(after.envelope, target.envelope) < envelope_gap(before.envelope, target.envelope)
    # A filter, not a vocoder: pitch and level stay the blend's.
    assert abs(np.log(after.f0_median_hz / before.f0_median_hz)) < 0.03
    assert np.sqrt(np.mean(matched**2)) == pytest.approx(np.sqrt(np.mean(plain**2)), rel=0.05)


def test_envelope_strength_is_configurable(
    engine: NeuralCpuEngine, monkeypatch: pytest.MonkeyPatch, cache_dir: Path
) -> None:
    monkeypatch.setenv("NEURAL_CPU_CACHE_DIR", str(cache_dir))
    monkeypatch.setenv("NEURAL_CPU_ENVELOPE_STRENGTH", "1.5")
    with pytest.raises(EngineNotReady) as error:
        NeuralCpuEngine().load()
    assert error.value.code == "bad_config"
    # On by default at the estimated speaker share (voice_match.ENVELOPE_CORRECTION_STRENGTH).
    assert engine.envelope_strength == 0.8
    # Another strength changes how clips sound: cached clips of the default must not be reused.
    monkeypatch.setenv("NEURAL_CPU_ENVELOPE_STRENGTH", "0")
    other = NeuralCpuEngine()
    other.load()
    assert other.envelope_strength == 0.0
    assert other.model_version != engine.model_version


def _analysis(f0: float, timbre: float) -> VoiceAnalysis:
    return VoiceAnalysis(f0_median_hz=f0, log_f0_mean=float(np.log(f0)), log_f0_std=0.1, voiced_ratio=0.6,
                         duration_s=2.0, envelope_db=[0.0] * 129, cepstrum=[timbre] * 15)


def _chooser(candidates: dict[str, VoiceAnalysis], weight: float) -> NeuralCpuEngine:
    chooser = NeuralCpuEngine()  # no load(): the choice is pure arithmetic on analyses
    chooser._candidates = candidates
    chooser.quality_weight = weight
    return chooser


def test_blend_parts_and_quality() -> None:
    assert blend_parts("jf_alpha") == [("jf_alpha", 1.0)]
    assert blend_parts("jf_alpha=0.25+jm_kumo=0.75") == [("jf_alpha", 0.25), ("jm_kumo", 0.75)]
    chooser = NeuralCpuEngine()
    q = VOICE_QUALITY_MOS
    assert chooser.blend_quality("jf_alpha") == pytest.approx(q["jf_alpha"])
    assert chooser.blend_quality("jf_alpha=0.5+jf_tebukuro=0.5") == pytest.approx(
        (q["jf_alpha"] + q["jf_tebukuro"]) / 2)
    # an unknown voice counts as the worst known one
    assert chooser.blend_quality("xx_unknown") == pytest.approx(min(q.values()))


def test_voice_choice_trades_closeness_for_quality() -> None:
    # The reference sits at timbre 0; the low-quality blend is a little closer than the one
    # keeping half of the best voice, the best voice alone is far.
    ref = _analysis(220.0, 0.0)
    candidates = {
        "jf_tebukuro=0.75+jm_kumo=0.25": _analysis(220.0, 2.0),
        "jf_alpha=0.5+jf_tebukuro=0.25+jm_kumo=0.25": _analysis(220.0, 2.6),
        "jf_alpha": _analysis(220.0, 8.0),
    }
    assert _chooser(candidates, 0.0).voice_for_reference(ref) == "jf_tebukuro=0.75+jm_kumo=0.25"
    assert _chooser(candidates, 10.0).voice_for_reference(ref) == "jf_alpha=0.5+jf_tebukuro=0.25+jm_kumo=0.25"
    # Quality never wins over a clearly different speaker.
    candidates["jf_alpha=0.5+jf_tebukuro=0.25+jm_kumo=0.25"] = _analysis(220.0, 6.0)
    assert _chooser(candidates, 10.0).voice_for_reference(ref) == "jf_tebukuro=0.75+jm_kumo=0.25"


def test_voice_choice_keeps_within_the_pitch_tolerance() -> None:
    # A better-sounding voice an octave above the reference would need WORLD: not chosen while a
    # candidate within the pitch tolerance exists, however large the quality weight.
    ref = _analysis(120.0, 0.0)
    candidates = {"jm_kumo": _analysis(125.0, 3.0), "jf_alpha": _analysis(260.0, 0.5)}
    assert _chooser(candidates, 100.0).voice_for_reference(ref) == "jm_kumo"
    # With none within the tolerance, the usual trade-off among all of them.
    only_far = {"jf_alpha": _analysis(260.0, 0.5), "jf_tebukuro": _analysis(330.0, 0.5)}
    assert _chooser(only_far, 10.0).voice_for_reference(ref) == "jf_alpha"


def test_quality_weight_is_configurable(monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> None:
    monkeypatch.setenv("NEURAL_CPU_CACHE_DIR", str(cache_dir))
    monkeypatch.setenv("NEURAL_CPU_QUALITY_WEIGHT", "-1")
    with pytest.raises(EngineNotReady) as error:
        NeuralCpuEngine().load()
    assert error.value.code == "bad_config"


def test_style_match_is_what_synthesize_does_to_kokoros_output(engine: NeuralCpuEngine, tmp_path: Path) -> None:
    """The style search may score after the engine's matching (bench --adapt-post-scored): style_match on
    the raw rendering of the chosen voice is exactly the clip synthesize returns, filter and WORLD alike."""
    engine.match_enabled = True
    text = "약 드실 시간입니다."
    for f0, name in ((215.0, "near"), (95.0, "low")):  # whichever of the filter and WORLD applies
        ref = tmp_path / f"ref_{name}.wav"
        sf.write(ref, harmonic_voice(f0, seconds=2.0), 24000)
        analysis = reference_analysis(ref)
        voice = engine.voice_for_reference(analysis)
        raw = engine.style_render(text=text, language="ko", style=engine.style_of(voice))
        spoken, _ = engine.synthesize(text, "ko", ref, None, {})
        post = engine.style_match(raw, reference=analysis, own=engine._candidates[voice])
        assert post.shape == spoken.shape and not np.array_equal(post, raw)
        np.testing.assert_allclose(post, spoken, atol=1e-6)


def test_the_style_search_scores_after_post_when_given(engine: NeuralCpuEngine, tmp_path: Path) -> None:
    """With post=, the search scores what post returns (here: the reference itself, cosine ~1), not the
    raw rendering; clarity stays judged on the raw rendering."""
    encoder = SpeakerEncoder(threads=1)
    reference = harmonic_voice(150.0, seconds=3.0)
    common = {"engine": engine, "encoder": encoder, "start_voice": engine.voice_female,
              "stock_voices": engine.candidate_voices, "reference": reference, "reference_rate": 24000,
              "steps_total": 1, "seed": 1, "sample_rate": 24000}
    raw_state = search.style_search_start(**common)
    post_state = search.style_search_start(**common, post=lambda audio: reference)
    assert float(post_state["start_score"]) > 0.99 > float(raw_state["start_score"])
    np.testing.assert_array_equal(post_state["baseline"], raw_state["baseline"])


def test_the_style_search_stays_in_the_trust_region(engine: NeuralCpuEngine) -> None:
    """walk-2's guard against fooling the encoder: every candidate is projected, before it is synthesised,
    into the stock voices' box and a ball of `radius` stock spreads; the best offset never leaves it, even
    with the step size at its maximum. radius=0 is the unguarded walk-1 search (the benchmark's 'before')."""
    encoder = SpeakerEncoder(threads=1)
    common = {"engine": engine, "encoder": encoder, "start_voice": engine.voice_female,
              "stock_voices": engine.candidate_voices, "reference": harmonic_voice(180.0, seconds=3.0),
              "reference_rate": 24000, "steps_total": 2, "seed": 3, "sample_rate": 24000}
    state = search.style_search_start(**common, radius=0.3)
    assert float(state["radius"]) == 0.3
    assert np.all(state["offset_low"] <= 0) and np.all(state["offset_high"] >= 0)
    # A far offset is pulled back onto the ball, inside the box; one already inside is left alone.
    far = 10.0 * state["scale"]
    pulled, moved = search.trust_region_project(far, state)
    assert moved and search.trust_distance(pulled, state) == pytest.approx(0.3, rel=1e-4)
    assert np.all(pulled >= state["offset_low"] - 1e-6) and np.all(pulled <= state["offset_high"] + 1e-6)
    near = 0.01 * state["scale"]
    kept, moved = search.trust_region_project(near, state)
    assert not moved and np.array_equal(kept, near)
    # The real engine, the step size at its maximum: every candidate is projected, the best stays inside.
    state["sigma"] = np.float64(1.0)
    while not search.style_search_done(state):
        search.style_search_step(engine=engine, encoder=encoder, state=state, sample_rate=24000)
    assert int(state["projected"]) == 2
    assert search.trust_distance(state["best_offset"], state) <= 0.3 + 1e-4
    summary = search.style_search_summary(state)
    assert summary["projected"] == 2 and summary["radius"] == 0.3
    # Off: no projection (the same seeded draws as walk-1), the state still round-trips.
    off = search.style_search_start(**common, radius=0.0)
    off["sigma"] = np.float64(1.0)
    search.style_search_step(engine=engine, encoder=encoder, state=off, sample_rate=24000)
    assert int(off["projected"]) == 0
    again = search.style_search_loads(search.style_search_dumps(state))
    np.testing.assert_array_equal(again["offset_high"], state["offset_high"])
    with pytest.raises(search.StyleSearchError):
        search.style_search_start(**common, radius=float("nan"))
