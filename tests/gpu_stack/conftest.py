"""Fixtures for the GPT-SoVITS suite: a tiny random-weight model in the release layout, a synthetic
reference clip, the real engine loaded once per session, all with non-loopback network blocked.

Only the GPU is "mocked": these run on CPU unless GPTSOVITS_TEST_DEVICE=cuda (on a GPU machine).
Needs requirements-gpu.txt (torch, gpt-sovits-cpufast); the whole folder is skipped without it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

try:
    import gpt_sovits_cpufast  # noqa: F401
    import torch  # noqa: F401
except ImportError:
    # The web venv has neither: leave this folder out there. CI runs it with .venv-gpu.
    collect_ignore_glob = ["test_*.py"]

from tests.gpu_stack import netguard  # noqa: E402
from tests.gpu_stack.tiny_model import build_tiny_model, write_reference_wav  # noqa: E402

HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    # Also declared in pyproject.toml; repeated so the folder works on its own.
    config.addinivalue_line("markers", "gpu_stack: needs requirements-gpu.txt (torch, GPT-SoVITS)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.gpu_stack)


@pytest.fixture(scope="session", autouse=True)
def network_blocked() -> Iterator[None]:
    """Everything in this suite runs with only loopback reachable."""
    netguard.install()
    yield
    netguard.uninstall()


def engine_device() -> str:
    return os.environ.get("GPTSOVITS_TEST_DEVICE", "cpu")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("gpt-sovits-v2"))


@pytest.fixture(scope="session")
def reference_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_reference_wav(tmp_path_factory.mktemp("ref") / "reference.wav")


@pytest.fixture(scope="session")
def loaded_engine(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from workers.engines.gpt_sovits import GptSovitsEngine

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPTSOVITS_MODEL_PATH", str(tiny_model))
        mp.setenv("GPTSOVITS_DEVICE", engine_device())
        mp.setenv("GPT_SOVITS_DATA_DIR", str(tmp_path_factory.mktemp("gsv-data")))
        engine = GptSovitsEngine()
        engine.load()
    yield engine
