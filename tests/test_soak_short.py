"""bench/soak.py, small: a few clients against gunicorn + worker + beat + a private
redis-server, with the worker SIGKILLed and Redis restarted (losing every queued
message) mid-run. Nothing accepted may be lost, no clip file may be duplicated, no
request may fail other than the bad inputs that must be refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.worker
def test_short_soak_with_worker_kill_and_redis_restart() -> None:
    done = subprocess.run(
        [sys.executable, "bench/soak.py", "--clients", "4", "--jobs", "6", "--drain", "120", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no summary:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    summary = json.loads(lines[-1])
    context = json.dumps(summary, indent=1, ensure_ascii=False)
    # Both faults really happened during the load.
    assert any("SIGKILL worker" in e for e in summary["events"]), context
    assert any("redis restarted" in e for e in summary["events"]), context
    assert summary["submitted"] == 4 * 6, context
    assert summary["failed_by_design"] + summary["accepted"] == summary["submitted"], context
    assert summary["failed_by_design"] > 0 and summary["accepted"] > 0, context
    assert summary["lost"] == 0, context
    assert summary["db_unfinished"] == 0, context
    assert summary["duplicate_files"] == 0 and summary["rows_without_file"] == 0, context
    assert summary["failed"] == 0, context
    assert summary["succeeded"] == summary["accepted"], context
    assert done.returncode == 0, context
