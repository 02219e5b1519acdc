"""100 concurrent identical requests -> how many syntheses ran (must be 1) and how long each waited.

All requests are fired at once (a barrier releases the client threads together) for the same
text, on a cold cache, through gunicorn, with a `tone` engine given a fixed synthesis time
(TONE_DELAY_SECONDS, default 0.5 s) so that the requests really overlap the synthesis. Each
client then polls its job until it finishes. The number of syntheses comes from the workers'
own counters (heartbeats in Redis), the number of clips from the API (distinct cache keys and
audio URLs), and mixed-up audio is checked by comparing every job's audio bytes.

Target (issue 7): exactly 1 synthesis for 100 identical concurrent requests.

    .venv/bin/python bench/dedupe.py
    .venv/bin/python bench/dedupe.py --requests 200 --delay 1.0 --db postgres --rounds 3
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import BenchClient, BenchStack, machine_line, summary  # noqa: E402


def syntheses(stack: BenchStack) -> int:
    return sum(int(w.get("syntheses") or 0) for w in stack.workers())


def fire(client: BenchClient, *, text: str, barrier: threading.Barrier) -> tuple[float, dict, bytes, int]:
    """One client: wait for the others, POST, poll to the end, fetch the audio."""
    barrier.wait()
    start = time.perf_counter()
    response = client.post_job(text)
    assert response.status_code in (200, 202), response.text
    body = response.json()
    if body["status"] not in ("succeeded", "failed"):
        body = client.wait(body["id"], interval=0.01)
    elapsed = time.perf_counter() - start
    audio = client.session.get(body["audio_url"], timeout=60).content if body["audio_url"] else b""
    return elapsed, body, audio, response.status_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--requests", type=int, default=100, help="identical concurrent requests (default 100)")
    parser.add_argument("--delay", type=float, default=0.5, help="engine time per synthesis, s (default 0.5)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, each with a new text (default 2)")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="worker processes (default 2)")
    args = parser.parse_args(argv)

    print(f"# dedupe  {machine_line()}  db={args.db}, {args.requests} requests, engine delay {args.delay} s")
    env = {"TONE_DELAY_SECONDS": str(args.delay), "WORKER_HEARTBEAT_TTL_SECONDS": "30"}
    ok = True
    with BenchStack(database=args.db, engine="tone", env=env, worker_concurrency=args.worker_concurrency) as stack:
        owner = stack.client()
        clients = [BenchClient(stack.base_url, owner.token) for _ in range(args.requests)]
        for round_no in range(args.rounds):
            text = f"Identical reminder, round {round_no}: take your heart medicine now."
            before = syntheses(stack)
            barrier = threading.Barrier(args.requests)
            with ThreadPoolExecutor(max_workers=args.requests) as pool:
                results = list(pool.map(partial(fire, text=text, barrier=barrier), clients))
            time.sleep(5.5)  # heartbeats (every 5 s) carry the counters
            ran = syntheses(stack) - before
            statuses = {body["status"] for _, body, _, _ in results}
            keys = {body["cache_key"] for _, body, _, _ in results}
            audios = {hashlib.sha256(audio).hexdigest() for _, _, audio, _ in results}
            hits = sum(1 for _, body, _, _ in results if body["cache_hit"])
            print(f"round {round_no + 1}: syntheses {ran}, statuses {sorted(statuses)}, distinct cache keys "
                  f"{len(keys)}, distinct audio {len(audios)}, cache hits {hits}/{args.requests} "
                  f"({sum(r[3] == 200 for r in results)} answered at once, the rest found the clip in the worker)")
            print("   " + summary("request -> finished job", [elapsed for elapsed, _, _, _ in results]))
            ok = ok and ran == 1 and statuses == {"succeeded"} and len(keys) == 1 and len(audios) == 1
    print(f"\n# target: exactly 1 synthesis per {args.requests} identical requests: {'MET' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
