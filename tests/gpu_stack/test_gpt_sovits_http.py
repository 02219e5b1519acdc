"""The HTTP engine against the real `gpt-sovits-api-v2` console script on 127.0.0.1, serving the
tiny model. The server process runs with the same non-loopback network guard (sitecustomize)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml

from tests.gpu_stack.conftest import HERE, engine_device
from workers.engines.base import EngineError, EngineNotReady, EngineTransientError
from workers.engines.gpt_sovits import BERT_DIR, HUBERT_DIR, V2_GPT, V2_SOVITS
from workers.engines.gpt_sovits_http import GptSovitsHttpEngine

SERVER_START_TIMEOUT_S = 180.0  # a start-up bound, not a speed assertion


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def api_v2_script() -> str:
    script = Path(sys.executable).with_name("gpt-sovits-api-v2")
    found = str(script) if script.exists() else shutil.which("gpt-sovits-api-v2")
    if not found:
        pytest.fail("gpt-sovits-api-v2 console script not found (pip install -r requirements-gpu.txt)")
    return found


@pytest.fixture(scope="session")
def api_v2_url(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("api-v2")
    config = data_dir / "tts_infer.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "custom": {
                    "device": engine_device(),
                    "is_half": engine_device().startswith("cuda"),
                    "version": "v2",
                    "t2s_weights_path": str(tiny_model / V2_GPT),
                    "vits_weights_path": str(tiny_model / V2_SOVITS),
                    "cnhuhbert_base_path": str(tiny_model / HUBERT_DIR),
                    "bert_base_path": str(tiny_model / BERT_DIR),
                }
            }
        )
    )
    port = free_port()
    env = dict(os.environ, GPT_SOVITS_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE / "netblock"), env.get("PYTHONPATH")]))
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [api_v2_script(), "-a", "127.0.0.1", "-p", str(port), "-c", str(config)],
            cwd=data_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"api_v2 exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                requests.get(f"{url}/tts", timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    pytest.fail(f"api_v2 did not start:\n{log_path.read_text()[-4000:]}")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def http_engine(api_v2_url: str, monkeypatch: pytest.MonkeyPatch) -> GptSovitsHttpEngine:
    monkeypatch.setenv("GPTSOVITS_API_URL", api_v2_url)
    monkeypatch.setenv("GPTSOVITS_API_MODEL_VERSION", "tiny-v2-test")
    engine = GptSovitsHttpEngine()
    engine.load()
    return engine


def test_synthesises_korean_through_the_server(http_engine: GptSovitsHttpEngine, reference_wav: Path) -> None:
    assert http_engine.model_version == "tiny-v2-test"
    samples, sr = http_engine.synthesize("약 드실 시간입니다.", "ko", reference_wav, None, {"seed": 3})
    assert sr == 32000
    assert samples.dtype == np.int16 and samples.ndim == 1
    assert 0.05 < samples.size / sr < 10.0
    assert samples.any()


def test_with_transcript_and_same_seed_same_audio(http_engine: GptSovitsHttpEngine, reference_wav: Path) -> None:
    args = ("오늘 저녁 약을 잊지 마세요.", "ko", reference_wav, "참고 음성 문장입니다.", {"seed": 11, "top_k": 5})
    first, _ = http_engine.synthesize(*args)
    second, _ = http_engine.synthesize(*args)
    assert np.array_equal(first, second)


def test_server_400_becomes_bad_input_with_its_message(
    http_engine: GptSovitsHttpEngine, reference_wav: Path
) -> None:
    with pytest.raises(EngineError) as info:
        http_engine.synthesize("Hola", "es", reference_wav, None, {})
    assert not isinstance(info.value, EngineTransientError)
    assert info.value.code == "engine_bad_input"
    assert "text_lang: es is not supported" in info.value.message


def test_server_failure_is_not_passed_off_as_audio(http_engine: GptSovitsHttpEngine, tmp_path: Path) -> None:
    # A reference path the server cannot read: the pipeline fails after api_v2 has taken its first
    # chunk (1 s of silence at 16 kHz, its failure placeholder) or answers 400; either way an error.
    with pytest.raises(EngineError) as info:
        http_engine.synthesize("안녕하세요.", "ko", tmp_path / "missing.wav", None, {})
    assert info.value.code in {"engine_bad_input", "engine_failed"}


def test_unreachable_server(monkeypatch: pytest.MonkeyPatch, reference_wav: Path, api_v2_url: str) -> None:
    monkeypatch.setenv("GPTSOVITS_API_URL", f"http://127.0.0.1:{free_port()}")
    engine = GptSovitsHttpEngine()
    with pytest.raises(EngineNotReady) as info:
        engine.load()
    assert info.value.code == "engine_unavailable"
    # Loaded earlier, then the server went away: a transient error the task retries.
    monkeypatch.setenv("GPTSOVITS_API_URL", api_v2_url)
    engine.load()
    engine.base_url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(EngineTransientError) as transient:
        engine.synthesize("안녕하세요.", "ko", reference_wav, None, {})
    assert transient.value.code == "engine_unavailable"
