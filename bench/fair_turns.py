"""Fair turns (issue 24 item 2): a lone user's queue wait while another user has 200 queued.

One worker process (`-c 1`, the `tone` engine sleeping TONE_DELAY_SECONDS per synthesis, a stand-in
for a GPU). The flooder posts 200 jobs, then keeps 200 of theirs waiting (posting one more for each
that finished) while the lone user posts one job at a time and waits for it. Reported: the lone
user's queue wait (created_at -> started_at, both from the job's own row, through the API), its
p50/p99, and the flood's throughput (jobs per second) over the same period.

Before (first come, first served): run it against a checkout of the old code (`--app-root`, e.g.
`git worktree add /tmp/base main`), or on this code with `--in-flight 1000000` (every job handed to
the broker at once, which is what first come, first served was).

    .venv/bin/python bench/fair_turns.py                          # after: JOBS_IN_FLIGHT_PER_USER=2
    .venv/bin/python bench/fair_turns.py --in-flight 1000000      # before, on this code
    .venv/bin/python bench/fair_turns.py --app-root /tmp/base     # before, the old code itself
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import BenchStack, git_describe, machine_line, percentiles  # noqa: E402


def _seconds(body: dict, start: str, end: str) -> float:
    return (datetime.fromisoformat(body[end]) - datetime.fromisoformat(body[start])).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--flood", type=int, default=200, help="jobs the flooder keeps queued")
    parser.add_argument("--samples", type=int, default=30, help="lone jobs measured")
    parser.add_argument("--delay", type=float, default=0.02, help="TONE_DELAY_SECONDS: one synthesis")
    parser.add_argument("--in-flight", type=int, default=None, help="JOBS_IN_FLIGHT_PER_USER (default: the app's)")
    parser.add_argument("--app-root", type=Path, default=None, help="serve another checkout (the baseline)")
    args = parser.parse_args()

    env = {"TONE_DELAY_SECONDS": str(args.delay), "THROTTLE_JOBS_RATE": "1000000/min"}
    if args.in_flight is not None:
        env["JOBS_IN_FLIGHT_PER_USER"] = str(args.in_flight)
    print(machine_line())
    print(json.dumps({"app": git_describe(args.app_root or Path(__file__).resolve().parent.parent),
                      "db": args.db, "flood": args.flood, "samples": args.samples, "tone_delay_s": args.delay,
                      "jobs_in_flight_per_user": args.in_flight or "app default"}))
    with BenchStack(database=args.db, engine="tone", env=env, worker_concurrency=1, app_root=args.app_root) as stack:
        flooder = stack.client("flooder")
        lone = stack.client("lone")
        sent = finished = 0
        pending: list[str] = []

        def top_up() -> None:
            nonlocal sent, finished
            # Keep `flood` of the flooder's jobs unfinished: one new job per finished one. One user's
            # jobs run in the order they were sent (both before and after), so look from the oldest.
            while pending and flooder.job(pending[0])["status"] in ("succeeded", "failed"):
                pending.pop(0)
                finished += 1
            while len(pending) < args.flood:
                pending.append(flooder.post_job(f"flood job number {sent}").json()["id"])
                sent += 1

        top_up()
        flood_start = time.monotonic()
        waits = []
        for n in range(args.samples):
            top_up()
            body = lone.wait(lone.post_job(f"lone user's reminder {n}").json()["id"], timeout=600, interval=0.01,
                             backoff=1.2, max_interval=0.2)
            if body["status"] != "succeeded":
                raise RuntimeError(f"lone job failed: {body}")
            waits.append(_seconds(body, "created_at", "started_at"))
            print(f"  sample {n + 1}/{args.samples}: queue wait {waits[-1] * 1000:.0f} ms "
                  f"({len(pending)} of the flooder's waiting)", flush=True)
        top_up()
        elapsed, done = time.monotonic() - flood_start, finished
        points = percentiles(waits, (50, 99))
        print(f"lone user's queue wait (created -> started), n={len(waits)}: "
              f"p50 {points['p50'] * 1000:.0f} ms  p99 {points['p99'] * 1000:.0f} ms  "
              f"max {max(waits) * 1000:.0f} ms")
        print(f"flood throughput meanwhile: {done} jobs in {elapsed:.1f} s = {done / elapsed:.1f} jobs/s "
              f"(one synthesis sleeps {args.delay * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
