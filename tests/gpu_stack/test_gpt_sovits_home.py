"""GPTSOVITS_HOME: the engine on an upstream-checkout-shaped directory instead of the installed
package. The code path is process-wide (sys.path, imported modules), so each case runs the real
engine in a fresh Python process, with the same non-loopback network guard (sitecustomize)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.gpu_stack.conftest import HERE, engine_device
from tests.gpu_stack.tiny_model import _package_pretrained_dir

REPO_ROOT = HERE.parents[1]
SUBPROCESS_TIMEOUT_S = 300.0  # a hang bound, not a speed assertion

# Loads the engine, synthesises one sentence and prints one JSON line describing what ran.
ENGINE_SCRIPT = r"""
import json, sys
from pathlib import Path

from workers.engines.base import EngineNotReady
from workers.engines.gpt_sovits import GptSovitsEngine

engine = GptSovitsEngine()
try:
    engine.load()
except EngineNotReady as exc:
    print(json.dumps({"not_ready": exc.code, "message": exc.message}))
    sys.exit(0)
import TTS_infer_pack.TTS as tts_module

samples, sr = engine.synthesize("약 드실 시간입니다.", "ko", Path(sys.argv[1]), "참고 음성 문장입니다.", {"seed": 7})
print(json.dumps({
    "version": engine.version,
    "model_version": engine.model_version,
    "tts_file": tts_module.__file__,
    "sys_path": sys.path,
    "cpufast_runtime_imported": "gpt_sovits_cpufast.runtime" in sys.modules,
    "sample_rate": sr,
    "samples": int(samples.size),
    "dtype": str(samples.dtype),
    "nonzero": bool(samples.any()),
}))
"""


def run_engine(home: Path, model: Path, reference: Path, data_dir: Path) -> dict[str, Any]:
    env = dict(
        os.environ,
        GPTSOVITS_HOME=str(home),
        GPTSOVITS_MODEL_PATH=str(model),
        GPTSOVITS_DEVICE=engine_device(),
        GPT_SOVITS_DATA_DIR=str(data_dir),
        PYTHONUNBUFFERED="1",
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE / "netblock"), str(REPO_ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", ENGINE_SCRIPT, str(reference)],
        cwd=data_dir, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S,
    )
    assert proc.returncode == 0, f"engine process failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def make_checkout(root: Path) -> Path:
    """An upstream checkout's shape: `GPT_SoVITS/` (the code) and `tools/` at the top level.

    Both are symlinks to the installed package's own folders (the same code as upstream's).
    """
    site = _package_pretrained_dir().parents[1]
    root.mkdir(parents=True)
    (root / "GPT_SoVITS").symlink_to(site / "GPT_SoVITS", target_is_directory=True)
    (root / "tools").symlink_to(site / "tools", target_is_directory=True)
    return root


def test_gptsovits_home_checkout_loads_and_synthesises(
    tiny_model: Path, reference_wav: Path, tmp_path: Path
) -> None:
    home = make_checkout(tmp_path / "GPT-SoVITS")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    result = run_engine(home, tiny_model, reference_wav, data_dir)
    assert result["version"] == "v2"
    assert result["model_version"].startswith("gpt_sovits-v2-")
    # The code came from the checkout, and the package's own runtime set-up never ran.
    assert result["tts_file"].startswith(str(home.resolve() / "GPT_SoVITS")), result["tts_file"]
    assert not result["cpufast_runtime_imported"]
    package_code = str(_package_pretrained_dir().parent)
    assert package_code not in result["sys_path"]
    assert result["sample_rate"] == 32000 and result["dtype"] == "int16" and result["nonzero"]
    assert 0.05 < result["samples"] / 32000 < 17.0 + 1.0
    # Nothing written into the checkout (configs go to the per-process data dir).
    assert sorted(p.name for p in home.iterdir()) == ["GPT_SoVITS", "tools"]


@pytest.mark.parametrize("shape", ["empty", "missing", "no_tts_infer_pack"])
def test_gptsovits_home_not_a_checkout_is_not_ready(
    shape: str, tiny_model: Path, reference_wav: Path, tmp_path: Path
) -> None:
    home = tmp_path / "not-a-checkout"
    if shape != "missing":
        home.mkdir()
    if shape == "no_tts_infer_pack":
        (home / "GPT_SoVITS").mkdir()
        (home / "GPT_SoVITS" / "inference_webui.py").write_text("")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    result = run_engine(home, tiny_model, reference_wav, data_dir)
    assert result["not_ready"] == "engine_not_installed"
    message = result["message"]
    assert f"GPTSOVITS_HOME={home}" in message
    assert "is not a GPT-SoVITS checkout" in message
    assert "GPT_SoVITS/TTS_infer_pack/TTS.py is missing" in message
