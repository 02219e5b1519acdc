"""The espeak-ng engine speaks real audio through the library shipped on PyPI."""

from pathlib import Path

import numpy as np
import pytest

from workers.engines.base import EngineError
from workers.engines.espeak import EspeakEngine
from workers.engines.registry import engine_build


@pytest.fixture(scope="module")
def engine():
    engine = engine_build("espeak")
    engine.load()
    return engine


def test_korean_and_english_speech(engine):
    for language, text in (("ko", "약 드실 시간입니다"), ("en", "Time for your medicine")):
        samples, rate = engine.synthesize(text, language, Path("unused.wav"), None, {})
        assert rate == 22050 and samples.dtype == np.int16
        assert 0.5 < len(samples) / rate < 5
        assert np.abs(samples).max() > 3000  # audible, not silence


def test_longer_text_is_longer_and_speed_shortens_it(engine):
    short, rate = engine.synthesize("약 드세요", "ko", Path("x"), None, {})
    long, _ = engine.synthesize("약 드세요. 물도 한 컵 같이 드세요.", "ko", Path("x"), None, {})
    fast, _ = engine.synthesize("약 드세요. 물도 한 컵 같이 드세요.", "ko", Path("x"), None, {"speed": 2.0})
    assert len(long) > len(short)
    assert len(fast) < 0.75 * len(long)


def test_same_text_gives_the_same_utterance(engine):
    # espeak-ng carries a little state between calls (a few samples of tail), so
    # compare the utterance's length, not the bytes.
    a, _ = engine.synthesize("hello", "en", Path("x"), None, {})
    b, _ = engine.synthesize("hello", "en", Path("x"), None, {})
    assert abs(len(a) - len(b)) < 0.01 * len(a)


def test_unsupported_language(engine):
    with pytest.raises(EngineError) as error:
        engine.synthesize("hola", "es", Path("x"), None, {})
    assert error.value.code == "unsupported_language"


def test_model_version_names_the_data(engine):
    assert isinstance(engine, EspeakEngine)
    assert engine.model_version.startswith("espeak-ng-loader-") and engine.device == "cpu"


def test_english_is_read_by_the_english_voice(engine):
    # The English voice, not the Korean one reading Latin letters: the two differ.
    text = "It's time to take your medicine."
    en, _ = engine.synthesize(text, "en", Path("x"), None, {})
    ko, _ = engine.synthesize(text, "ko", Path("x"), None, {})
    assert abs(len(en) - len(ko)) > 0.05 * len(en) or not np.array_equal(en[: len(ko)], ko[: len(en)])
    # Switching back and forth keeps each language's own voice (espeak-ng's voice is process state).
    again, _ = engine.synthesize(text, "en", Path("x"), None, {})
    assert abs(len(again) - len(en)) < 0.01 * len(en)


def test_bench_scales_int16_pcm_to_unit_range(engine):
    # The voice-quality bench once cast espeak's int16 PCM to float32 before checking its dtype,
    # so Whisper heard +-32767-scale audio ("Thank you." for every English phrase).
    from bench.voice_quality import audio_as_float

    samples, _ = engine.synthesize("Take 2 tablets.", "en", Path("x"), None, {})
    assert samples.dtype == np.int16
    audio = audio_as_float(samples)
    assert audio.dtype == np.float32
    assert 0.1 < np.abs(audio).max() <= 1.0
    np.testing.assert_allclose(audio, samples / 32767.0, atol=1e-6)
    floats = np.array([0.5, -0.25], dtype=np.float64)
    np.testing.assert_array_equal(audio_as_float(floats), floats.astype(np.float32))
