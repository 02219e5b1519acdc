"""Worker RSS as jobs go by: does a synthesis process leak?

Starts a private stack whose worker has one process (-c 1, the GPU worker's shape) and never
recycles it (max tasks per child raised), sends distinct phrases through the API (no cache
hits), and reads the worker child's VmRSS from /proc after each checkpoint. Growth per 100 jobs
is the slope from the first checkpoint (after warm-up: model loaded, front ends built, first
allocations made) to the last.

Engines: `neural_cpu` (the default) and `gpt_sovits` with the tiny random-weight v2 model
(built on the fly, CPU). The GPT-SoVITS one needs torch: run this with .venv-gpu/bin/python.

Target (issue 7): < 5 MB growth per 100 jobs after warm-up.

    .venv-gpu/bin/python bench/worker_memory.py                          # both engines, short defaults
    .venv-gpu/bin/python bench/worker_memory.py --engine gpt_sovits --checkpoints 10,100,1000
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import BenchClient, BenchStack, machine_line  # noqa: E402

WORDS = ["morning", "evening", "heart", "blood pressure", "vitamin", "sleeping", "stomach", "pain"]


def phrase(n: int) -> str:
    return f"Time for your {WORDS[n % len(WORDS)]} medicine, number {n}."


def child_pid(stack: BenchStack) -> int:
    pids = [int(w["pid"]) for w in stack.workers() if w.get("ready")]
    if len(pids) != 1:
        raise RuntimeError(f"expected one worker process, got {pids}")
    return pids[0]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def run_jobs(client: BenchClient, start: int, count: int, *, window: int = 8) -> None:
    """Keep `window` jobs in flight until `count` are done (failures are fatal: leaks hide there)."""
    pending: list[str] = []
    n = start
    while n < start + count or pending:
        while n < start + count and len(pending) < window:
            response = client.post_job(phrase(n))
            assert response.status_code == 202, response.text
            pending.append(response.json()["id"])
            n += 1
        body = client.wait(pending.pop(0), timeout=600, interval=0.05)
        assert body["status"] == "succeeded", body


def measure(engine: str, checkpoints: list[int], env: dict[str, str]) -> list[tuple[int, float]]:
    env = {"CELERY_WORKER_MAX_TASKS_PER_CHILD": "1000000", **env}
    with BenchStack(database="sqlite", engine=engine, env=env, worker_concurrency=1) as stack:
        client = stack.client()
        pid = child_pid(stack)
        points = [(0, rss_mb(pid))]
        done = 0
        for target in checkpoints:
            run_jobs(client, done, target - done)
            done = target
            time.sleep(0.5)
            if child_pid(stack) != pid:
                raise RuntimeError("the worker process was replaced during the run")
            points.append((done, rss_mb(pid)))
            print(f"  {engine:<11} after {done:5d} jobs: RSS {points[-1][1]:8.1f} MB", flush=True)
        return points


def tiny_model_env() -> dict[str, str]:
    dest = Path(tempfile.mkdtemp(prefix="bench-tiny-gsv-")) / "model"
    subprocess.run([sys.executable, "-m", "tests.gpu_stack.tiny_model", str(dest)], check=True,
                   cwd=Path(__file__).resolve().parent.parent, capture_output=True)
    return {"GPTSOVITS_MODEL_PATH": str(dest), "GPTSOVITS_DEVICE": "cpu"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["neural_cpu", "gpt_sovits", "both"], default="both")
    parser.add_argument("--checkpoints", help="job counts to read RSS at, e.g. 10,100,1000 (default: 10,50,100 "
                        "for gpt_sovits, 5,15,30 for neural_cpu, whose jobs take ~1-3 s each here)")
    args = parser.parse_args(argv)
    engines = ["gpt_sovits", "neural_cpu"] if args.engine == "both" else [args.engine]
    print(f"# worker_memory  {machine_line()}")
    verdicts = []
    for engine in engines:
        default = "10,50,100" if engine == "gpt_sovits" else "5,15,30"
        checkpoints = sorted(int(x) for x in (args.checkpoints or default).split(","))
        env = tiny_model_env() if engine == "gpt_sovits" else {}
        points = measure(engine, checkpoints, env)
        (n0, r0), (n1, r1) = points[1], points[-1]
        per_100 = (r1 - r0) / max(1, n1 - n0) * 100
        # The last segment: allocator pools still grow with each new input shape early on, so
        # the later slope is the better estimate of a steady-state leak.
        (na, ra), (nb, rb) = points[-2], points[-1]
        last_100 = (rb - ra) / max(1, nb - na) * 100
        print(f"{engine:<11} RSS idle {points[0][1]:.1f} MB, after warm-up ({n0} jobs) {r0:.1f} MB, "
              f"after {n1} jobs {r1:.1f} MB: growth {per_100:+.2f} MB per 100 jobs overall, "
              f"{last_100:+.2f} MB per 100 jobs over the last segment ({na}->{nb})")
        verdicts.append((engine, last_100))
    print("\n# target: < 5 MB growth per 100 jobs after warm-up (last segment)")
    for engine, per_100 in verdicts:
        print(f"{engine:<11} {per_100:+.2f} MB/100 jobs {'MET' if per_100 < 5 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
