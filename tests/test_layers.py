"""The import contracts hold: a deliberate violation of each one fails `make lint`.

Each test copies the packages and pyproject.toml to a temporary directory, adds one forbidden
import, and runs lint-imports (or ruff, for what import-linter cannot name) there: it must fail,
naming that contract and only that one. No database, Redis or Django setup: a second or so each.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PACKAGES = ("voice_tts", "workers", "medicine_project", "carepill_config")
CONTRACTS = {
    contract["id"]: contract["name"]
    for contract in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
}

# (the contract ids it breaks, joined by "+"; the file to append to; the forbidden import)
VIOLATIONS = [
    ("workers-no-django", "workers/memory.py", "import django"),
    # workers/ reads its settings through carepill_config: the chain breaks workers-no-django too.
    ("config-alone+workers-no-django", "carepill_config/reader.py", "import django.conf"),
    ("layers", "voice_tts/dispatch.py", "import voice_tts.services.jobs"),
    ("pages-no-api", "voice_tts/web/forms.py", "import voice_tts.apis.jobs"),
    ("pages-no-api", "voice_tts/admin_site.py", "import voice_tts.apis.errors"),
    ("api-through-services", "voice_tts/apis/health.py", "from voice_tts.models import Job"),
    ("api-through-services", "voice_tts/apis/jobs.py", "from voice_tts.presenters import job_json"),
    ("api-through-services", "voice_tts/apis/voices.py", "import redis"),
    ("http-through-services", "voice_tts/http/audio.py", "from voice_tts.redis_client import redis_client"),
    ("leaves-no-data", "voice_tts/audio_links.py", "from voice_tts.models import Clip"),
    ("services-no-http", "voice_tts/services/care.py", "import rest_framework"),
    ("services-no-http", "voice_tts/services/phrases.py", "from voice_tts.audio_links import clip_audio_path"),
    # Up a layer too: the layers contract breaks with it.
    ("services-no-http+layers", "voice_tts/services/plays.py", "from voice_tts.http import errors"),
]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("layers")
    ignore = shutil.ignore_patterns("__pycache__", "static", "templates", "locale", "*.onnx", "*.bin")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, root / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def _lint_imports(root: Path) -> tuple[int, str]:
    done = subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"], cwd=root, env={"PYTHONPATH": str(root), "PATH": ""},
        capture_output=True, text=True, timeout=120,
    )
    # The report wraps contract names at 80 columns: compare with the whitespace collapsed.
    return done.returncode, _collapsed(done.stdout + done.stderr)


def _collapsed(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _broken(report: str) -> set[str]:
    return {id_ for id_, name in CONTRACTS.items() if _collapsed(name) + " BROKEN" in report}


def test_every_contract_has_a_deliberate_violation() -> None:
    assert set(CONTRACTS) == {contract for contracts, _, _ in VIOLATIONS for contract in contracts.split("+")}


def test_the_tree_as_it_is_keeps_every_contract(tree: Path) -> None:
    returncode, report = _lint_imports(tree)
    assert returncode == 0, report
    assert _broken(report) == set()


@pytest.mark.parametrize(("contracts", "path", "line"), VIOLATIONS, ids=[f"{c}:{p}" for c, p, _ in VIOLATIONS])
def test_a_violation_fails_lint_naming_its_contract(tree: Path, contracts: str, path: str, line: str) -> None:
    target = tree / path
    original = target.read_text()
    target.write_text(original + f"\n{line}  # a deliberate violation (tests/test_layers.py)\n")
    try:
        returncode, report = _lint_imports(tree)
    finally:
        target.write_text(original)
    assert returncode != 0, report
    assert _broken(report) == set(contracts.split("+")), report


def test_a_service_that_builds_a_url_fails_ruff(tree: Path) -> None:
    # import-linter cannot forbid django.urls (a submodule of an external package): ruff bans it in
    # voice_tts/services/ruff.toml, and `make lint` runs ruff first.
    target = tree / "voice_tts/services/zz_violation.py"
    target.write_text("from django.urls import reverse\n\nLINK = reverse\n")
    try:
        done = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", str(target)], cwd=tree,
                              capture_output=True, text=True, timeout=60)
    finally:
        target.unlink()
    assert done.returncode != 0
    assert "TID251" in done.stdout and "django.urls" in done.stdout
