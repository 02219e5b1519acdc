"""walk-3 of the voice style search (issue 26): a candidate is kept only if three judges agree.

The judges are the d-vector encoder's score after the engine's matching, an encoder-free timbre
distance (workers/voice_style/timbre.py) and Whisper-base hearing the probe (asr.py). Everything
here is real: Kokoro from the wheels, the d-vector encoder and Whisper-base from theirs, on speech
the engine renders. Nothing is mocked.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from tests.voice_signals import harmonic_voice
from workers.engines.neural_cpu import SAMPLE_RATE, NeuralCpuEngine
from workers.engines.registry import engine_build
from workers.voice_match import reference_analysis
from workers.voice_style import search
from workers.voice_style.asr import ProbeRecogniser, hangul_errors
from workers.voice_style.encoder import SpeakerEncoder
from workers.voice_style.timbre import timbre_distance, timbre_profile

OTHER_TEXT = "오늘 저녁 여덟 시에 혈압약을 꼭 챙겨 드세요."


@pytest.fixture(scope="module")
def engine() -> NeuralCpuEngine:
    built = engine_build("neural_cpu")
    assert isinstance(built, NeuralCpuEngine)
    built.load()
    return built


@pytest.fixture(scope="module")
def hearer() -> ProbeRecogniser:
    return ProbeRecogniser(threads=1)


@pytest.fixture(scope="module")
def encoder() -> SpeakerEncoder:
    return SpeakerEncoder(threads=1)


def _say(engine: NeuralCpuEngine, voice: str, text: str = search.PROBE_TEXT) -> np.ndarray:
    return engine.style_render(text=text, language="ko", style=engine.style_of(voice))


def test_the_timbre_distance_tells_speakers_apart_not_sentences(engine: NeuralCpuEngine) -> None:
    """Its one job: one voice saying two sentences is closer than two voices saying one sentence."""
    voices = ["jf_alpha", "jm_kumo", "jf_nezumi"]
    probe = {v: timbre_profile(_say(engine, v), SAMPLE_RATE) for v in voices}
    other = {v: timbre_profile(_say(engine, v, OTHER_TEXT), SAMPLE_RATE) for v in voices}
    for v in voices:
        assert timbre_distance(probe[v], probe[v]) == 0.0
        same_voice = timbre_distance(probe[v], other[v])
        other_voices = min(timbre_distance(probe[v], probe[w]) for w in voices if w != v)
        assert same_voice < other_voices / 2, (v, same_voice, other_voices)
    # Symmetric, and a recording too short to profile is refused, not guessed.
    assert timbre_distance(probe["jf_alpha"], probe["jm_kumo"]) == timbre_distance(probe["jm_kumo"],
                                                                                     probe["jf_alpha"])
    with pytest.raises(ValueError):
        timbre_profile(np.zeros(200, np.float32), SAMPLE_RATE)


def test_hangul_errors_count_syllables_only() -> None:
    assert hangul_errors("약 드실 시간입니다.", "약드실 시간 입니다") == 0
    assert hangul_errors("약 드실 시간입니다.", "약 드실 시간이에요") == 3  # 입니다 -> 이에요
    assert hangul_errors("약 드실 시간입니다.", "Thank you.") == 8


def test_the_recogniser_hears_the_probe_and_not_noise(engine: NeuralCpuEngine, hearer: ProbeRecogniser) -> None:
    """Whisper-base from the wheels, joined in memory: the engine's probe is mostly heard; the same audio
    played backwards (the same voice and spectrum, no words) is not."""
    audio = _say(engine, "jf_alpha")
    syllables = len([c for c in search.PROBE_TEXT if "가" <= c <= "힣"])
    forward = hangul_errors(search.PROBE_TEXT, hearer.hear(audio, SAMPLE_RATE, language="ko"))
    backward = hangul_errors(search.PROBE_TEXT, hearer.hear(audio[::-1].copy(), SAMPLE_RATE, language="ko"))
    assert forward <= syllables // 3 < backward, (forward, backward)


def _state(engine: NeuralCpuEngine, encoder: SpeakerEncoder, hearer: Any,
           steps: int = 1) -> tuple[dict[str, Any], Any]:
    # A real reference: a Kokoro voice the matching never uses as a candidate, ~3.5 s.
    reference = _say(engine, "jf_nezumi", OTHER_TEXT)
    analysis = reference_analysis_of(reference)
    post = search.matching_post(engine=engine, reference=analysis, sample_rate=SAMPLE_RATE)
    return search.style_search_start(
        engine=engine, encoder=encoder, start_voice=engine.voice_female, stock_voices=engine.candidate_voices,
        reference=reference, reference_rate=SAMPLE_RATE, steps_total=steps, seed=5, sample_rate=SAMPLE_RATE,
        post=post, hearer=hearer), post


def reference_analysis_of(audio: np.ndarray) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ref.wav"
        sf.write(path, audio, SAMPLE_RATE)
        return reference_analysis(path)


def test_a_candidate_the_timbre_disagrees_with_is_not_kept(engine: NeuralCpuEngine, encoder: SpeakerEncoder,
                                                           hearer: ProbeRecogniser) -> None:
    """The encoder's score rises (any score beats -1), but the timbre distance cannot fall below -1:
    the candidate is rejected for its timbre, the best stays the start voice, the state says why."""
    state, post = _state(engine, encoder, hearer)
    assert int(state["baseline_errors"]) >= 0 and float(state["start_timbre"]) > 0
    state["best_score"], state["best_timbre"] = np.float64(-1.0), np.float64(-1.0)
    search.style_search_step(engine=engine, encoder=encoder, state=state, sample_rate=SAMPLE_RATE, post=post,
                             hearer=hearer)
    assert (int(state["rejected_timbre"]), int(state["accepted"])) == (1, 0)
    assert not state["best_offset"].any()
    summary = search.style_search_summary(state)
    assert summary["rejected_timbre"] == 1 and summary["probe_errors_start"] == int(state["baseline_errors"])


def test_a_candidate_the_recogniser_cannot_follow_is_not_kept(engine: NeuralCpuEngine, encoder: SpeakerEncoder,
                                                              hearer: ProbeRecogniser) -> None:
    """Encoder and timbre agree (both bars lowered), and the start voice was heard well; a recogniser that
    hears the candidate backwards (the real Whisper-base on the real, reversed audio) finds far more
    errors: rejected for intelligibility. With the plain recogniser the same draw is kept."""

    class Backwards:
        def hear(self, audio: np.ndarray, sample_rate: int, *, language: str) -> str:
            return hearer.hear(audio[::-1].copy(), sample_rate, language=language)

    state, post = _state(engine, encoder, hearer)
    state["best_score"], state["best_timbre"] = np.float64(-1.0), np.float64(np.inf)
    kept = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in state.items()}
    search.style_search_step(engine=engine, encoder=encoder, state=state, sample_rate=SAMPLE_RATE, post=post,
                             hearer=Backwards())
    assert (int(state["rejected_asr"]), int(state["accepted"])) == (1, 0)
    assert not state["best_offset"].any()
    search.style_search_step(engine=engine, encoder=encoder, state=kept, sample_rate=SAMPLE_RATE, post=post,
                             hearer=hearer)
    assert (int(kept["rejected_asr"]), int(kept["accepted"])) == (0, 1)
    assert kept["best_offset"].any() and float(kept["best_timbre"]) < np.inf


def test_walk_3_states_round_trip_and_older_ones_are_refused(engine: NeuralCpuEngine, encoder: SpeakerEncoder,
                                                             hearer: ProbeRecogniser) -> None:
    state, _ = _state(engine, encoder, hearer)
    again = search.style_search_loads(search.style_search_dumps(state))
    np.testing.assert_array_equal(again["target_timbre"], state["target_timbre"])
    assert int(again["baseline_errors"]) == int(state["baseline_errors"])
    state["version"] = np.array("walk-2")
    with pytest.raises(search.StyleSearchError) as exc:
        search.style_search_loads(search.style_search_dumps(state))
    assert exc.value.code == "state_version"


def test_a_reference_too_short_for_a_timbre_fails_with_a_code(engine: NeuralCpuEngine,
                                                              encoder: SpeakerEncoder) -> None:
    with pytest.raises(search.StyleSearchError) as exc:
        search.style_search_start(
            engine=engine, encoder=encoder, start_voice=engine.voice_female, stock_voices=engine.candidate_voices,
            reference=harmonic_voice(150.0, seconds=0.02), reference_rate=SAMPLE_RATE, steps_total=1, seed=1,
            sample_rate=SAMPLE_RATE)
    assert exc.value.code == "reference_unusable"
