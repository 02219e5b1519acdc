"""Wheels for the requirements that the index offers only as source, built in the Dockerfile's
`wheels` stage (which has the compilers) so that the runtime stage installs nothing but wheels.

    python deploy/source_wheels.py OUT_DIR -r requirements-gpu.txt -r requirements-s3.txt

pip resolves the requirements once without installing (`--dry-run --report`); every package it
would take as a source archive is built into a wheel in OUT_DIR at the exact version it resolved.
The CPU requirements have none (OUT_DIR stays empty); the GPU ones have pyopenjtalk and
jieba_fast. Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path


def source_packages(report: dict) -> list[str]:
    """`name==version` for each package of a pip installation report that is not a wheel."""
    pins = []
    for item in report.get("install", []):
        url = item["download_info"]["url"]
        if not url.endswith(".whl"):
            pins.append(f"{item['metadata']['name']}=={item['metadata']['version']}")
    return sorted(pins)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out, requirements = Path(argv[0]), argv[1:]
    out.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip"]
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "report.json"
        subprocess.run([*pip, "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report_path),
                        *requirements], check=True)
        pins = source_packages(json.loads(report_path.read_text()))
    if not pins:
        print("source_wheels: every requirement is a wheel; nothing to build")
        return 0
    print("source_wheels: building", " ".join(pins))
    subprocess.run([*pip, "wheel", "--no-deps", "--wheel-dir", str(out), *pins], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
