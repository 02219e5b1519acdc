"""The in-process GPT-SoVITS engine on a tiny random-weight v2Pro model set: v2Pro's own GPT and
SoVITS names, a SoVITS with version head b"05" built as v2Pro, and a random speaker-verification
ERes2NetV2 under sv/ (full size: `sv.SV` hard-wires it). Real package code, CPU, network blocked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.gpu_stack.conftest import engine_device
from tests.gpu_stack.test_gpt_sovits_engine import check_audio, engine_for, linked_copy
from tests.gpu_stack.tiny_model import build_tiny_model
from workers.engines.base import EngineNotReady
from workers.engines.gpt_sovits import V2_SOVITS, V2PRO_GPT, V2PRO_SOVITS, V2PRO_SV, GptSovitsEngine


@pytest.fixture(scope="module")
def tiny_v2pro_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("gpt-sovits-v2pro"), version="v2Pro")


@pytest.fixture(scope="module")
def v2pro_engine(tiny_v2pro_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GptSovitsEngine]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPTSOVITS_MODEL_PATH", str(tiny_v2pro_model))
        mp.setenv("GPTSOVITS_DEVICE", engine_device())
        mp.setenv("GPT_SOVITS_DATA_DIR", str(tmp_path_factory.mktemp("gsv-data-v2pro")))
        engine = GptSovitsEngine()
        engine.load()
    yield engine


def test_tiny_v2pro_layout_and_head(tiny_v2pro_model: Path) -> None:
    for rel in (V2PRO_GPT, V2PRO_SOVITS, V2PRO_SV):
        assert (tiny_v2pro_model / rel).is_file(), rel
    assert (tiny_v2pro_model / V2PRO_SOVITS).read_bytes()[:2] == b"05"
    assert not (tiny_v2pro_model / V2_SOVITS).exists()


def test_v2pro_loads_and_reports_version(v2pro_engine: GptSovitsEngine, tiny_v2pro_model: Path) -> None:
    import torch

    assert v2pro_engine.loaded
    assert v2pro_engine.version == "v2Pro"
    assert v2pro_engine.model_version.startswith("gpt_sovits-v2Pro-")
    assert v2pro_engine.device == engine_device()
    tts = v2pro_engine._tts
    assert tts.is_v2pro and tts.vits_model.is_v2pro
    # The speaker-verification net is OUR checkpoint (the engine points sv.py at the model dir),
    # not whatever sits under the package's data dir.
    saved = torch.load(tiny_v2pro_model / V2PRO_SV, map_location="cpu", weights_only=True)
    loaded = tts.sv_model.embedding_model.conv1.weight.detach().cpu().float()
    assert torch.equal(loaded, saved["conv1.weight"].float())


def test_v2pro_korean_with_transcript(v2pro_engine: GptSovitsEngine, reference_wav: Path) -> None:
    samples, sr = v2pro_engine.synthesize(
        "약 드실 시간입니다.", "ko", reference_wav, "참고 음성 문장입니다.", {"seed": 7}
    )
    check_audio(samples, sr, sentences=1)  # 32 kHz int16, finite, non-silent, within the GPT's cap


def test_v2pro_same_seed_same_audio(v2pro_engine: GptSovitsEngine, reference_wav: Path) -> None:
    args: tuple[Any, ...] = ("오늘 저녁 약을 잊지 마세요.", "ko", reference_wav, "참고 음성 문장입니다.")
    first, _ = v2pro_engine.synthesize(*args, {"seed": 42})
    v2pro_engine.synthesize("다른 문장입니다.", "ko", reference_wav, None, {"seed": 1})
    second, _ = v2pro_engine.synthesize(*args, {"seed": 42})
    assert np.array_equal(first, second)


def test_v2pro_and_v2_model_versions_differ(v2pro_engine: GptSovitsEngine, loaded_engine: GptSovitsEngine) -> None:
    # Both load in one process side by side (separate TTS objects), and never share a cache key.
    assert loaded_engine.version == "v2"
    assert v2pro_engine.model_version != loaded_engine.model_version


def test_v2pro_sovits_without_sv_checkpoint_is_not_ready(
    tiny_model: Path, tiny_v2pro_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fine-tuned v2Pro SoVITS pointed at from a v2 model dir (no sv/): named, before any loading.
    engine = engine_for(tiny_model, monkeypatch)
    monkeypatch.setenv("GPTSOVITS_SOVITS_WEIGHTS", str(tiny_v2pro_model / V2PRO_SOVITS))
    with pytest.raises(EngineNotReady) as info:
        engine.load()
    assert info.value.code == "engine_weights_missing"
    assert V2PRO_SV in info.value.message and "v2Pro" in info.value.message


def test_v2pro_without_its_sovits_lists_v2pro_names(
    tiny_v2pro_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = linked_copy(tiny_v2pro_model, tmp_path / "m", except_=V2PRO_GPT)
    (model / V2PRO_SOVITS).unlink()
    with pytest.raises(EngineNotReady) as info:
        engine_for(model, monkeypatch).load()
    assert info.value.code == "engine_weights_missing"
    assert "GPT-SoVITS v2Pro" in info.value.message and V2PRO_SOVITS in info.value.message
