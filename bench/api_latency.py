"""Cache-hit job requests against gunicorn on 127.0.0.1: requests/s, p50/p95/p99, errors.

For each database (SQLite, PostgreSQL) it starts a private stack (redis-server on a free port,
a throwaway database, gunicorn with medicine_project/gunicorn_conf.py, a `tone` worker), makes
one clip, then drives with K concurrent clients:
  - POST /api/tts/jobs/ for that clip's text (a cache hit: 200 with a finished job), and
  - GET  /api/tts/jobs/<id>/ over a set of finished jobs,
  - GET  /api/tts/health/ (no auth, reads worker heartbeats from Redis) for reference.
The load generator is wrk (`apt-get install wrk`) when present: it costs far less CPU than a
Python client on a 2-core machine where client and server share the cores. Without wrk a
threaded Python client is used (its numbers are lower: it competes for the same cores).

Targets (issue 7): >= 1200 requests/s and p99 <= 20 ms at 16 clients on both databases.

    .venv/bin/python bench/api_latency.py                       # both databases, 16 clients, 8 s each
    .venv/bin/python bench/api_latency.py --db postgres --clients 32 --duration 15 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import BenchStack, machine_line, percentiles  # noqa: E402

HERE = Path(__file__).resolve().parent
TEXT = "It is time to take your blood pressure medicine."


def run_wrk(stack: BenchStack, mode: str, *, token: str, body: str, ids: list[str], clients: int,
            duration: float, threads: int) -> dict[str, Any]:
    env = {**os.environ, "BENCH_TOKEN": token, "BENCH_MODE": mode, "BENCH_BODY": body, "BENCH_IDS": ",".join(ids)}
    out = subprocess.run(
        ["wrk", "-t", str(min(threads, clients)), "-c", str(clients), "-d", f"{max(1, round(duration))}s",
         "--timeout", "5s", "-s", str(HERE / "wrk_job.lua"), stack.base_url],
        env=env, capture_output=True, text=True, check=True,
    )
    line = next(raw for raw in out.stdout.splitlines() if raw.startswith("BENCHJSON "))
    data = json.loads(line.removeprefix("BENCHJSON "))
    errors = data["status_errors"] + data["connect"] + data["read"] + data["write"] + data["timeout"]
    return {"rps": data["requests"] / (data["duration_us"] / 1e6), "p50": data["p50"] / 1e3,
            "p95": data["p95"] / 1e3, "p99": data["p99"] / 1e3, "errors": errors, "requests": data["requests"]}


def run_python(stack: BenchStack, mode: str, *, token: str, body: str, ids: list[str], clients: int,
               duration: float, threads: int) -> dict[str, Any]:
    """Fallback load generator: `clients` threads, one request at a time each (closed loop)."""
    import http.client

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + duration
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def loop(offset: int) -> None:
        n = offset
        mine: list[float] = []
        bad = 0
        while time.perf_counter() < stop_at:
            n += 1
            conn = http.client.HTTPConnection("127.0.0.1", stack.web_port, timeout=5)
            start = time.perf_counter()
            try:
                if mode == "post":
                    conn.request("POST", "/api/tts/jobs/", body=body, headers=headers)
                elif mode == "health":
                    conn.request("GET", "/api/tts/health/")
                else:
                    conn.request("GET", f"/api/tts/jobs/{ids[n % len(ids)]}/", headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status >= 400:
                    bad += 1
            except OSError:
                bad += 1
            finally:
                conn.close()
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    started = time.perf_counter()
    pool = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    pct = percentiles(latencies)
    return {"rps": len(latencies) / elapsed, "p50": pct["p50"] * 1000, "p95": pct["p95"] * 1000,
            "p99": pct["p99"] * 1000, "errors": errors[0], "requests": len(latencies)}


def prepare(stack: BenchStack, *, n_ids: int) -> tuple[str, list[str]]:
    """One synthesised clip, then `n_ids` finished cache-hit jobs to poll."""
    client = stack.client()
    first = client.post_job(TEXT)
    assert first.status_code == 202, first.text
    assert client.wait(first.json()["id"])["status"] == "succeeded"
    ids = []
    for _ in range(n_ids):
        hit = client.post_job(TEXT)
        assert hit.status_code == 200 and hit.json()["cache_hit"], hit.text
        ids.append(hit.json()["id"])
    return client.token, ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections (default 16)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement (default 8)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of untimed load first (default 2)")
    parser.add_argument("--repeat", type=int, default=1, help="measurements per case; the median rps is shown")
    parser.add_argument("--web-workers", type=int, default=None, help="gunicorn workers (default: CPU count)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--modes", default="post,get,health", help="comma list of post,get,health")
    parser.add_argument("--no-worker", action="store_true",
                        help="stop the worker before measuring (default: it stays up, idle, as in production)")
    parser.add_argument("--app-root", type=Path, help="serve another checkout (a baseline) with the same client")
    parser.add_argument("--gunicorn-args", default="", help="extra gunicorn arguments, e.g. '-k gthread --threads 4'")
    args = parser.parse_args(argv)

    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk"))
    runner = run_wrk if use_wrk else run_python
    print(f"# api_latency  {machine_line()}")
    print(f"# app: {args.app_root or 'this checkout'} {args.gunicorn_args}")
    print(f"# client: {'wrk' if use_wrk else 'python threads'}, {args.clients} connections, "
          f"{args.duration:g} s x {args.repeat}")
    databases = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    rows = []
    for database in databases:
        with BenchStack(database=database, engine="tone", web_workers=args.web_workers, app_root=args.app_root,
                        web_extra=args.gunicorn_args.split()) as stack:
            token, ids = prepare(stack, n_ids=50)
            if args.no_worker:
                stack.stop_process("worker")
            body = json.dumps({"text": TEXT, "language": "en"})
            for mode in args.modes.split(","):
                kwargs = dict(token=token, body=body, ids=ids, clients=args.clients, threads=args.threads)
                if args.warmup:
                    runner(stack, mode, duration=args.warmup, **kwargs)
                results = []
                for _ in range(args.repeat):
                    cpu0 = stack.web_cpu_seconds()
                    result = runner(stack, mode, duration=args.duration, **kwargs)
                    result["cpu_ms"] = (stack.web_cpu_seconds() - cpu0) / max(1, result["requests"]) * 1000
                    results.append(result)
                best = sorted(results, key=lambda r: r["rps"])[len(results) // 2]
                spread = ", ".join(f"{r['rps']:.0f}" for r in results)
                rows.append((database, mode, best, spread))
                print(f"{database:<9} {mode:<7} {best['rps']:7.0f} req/s  p50 {best['p50']:6.1f} ms  "
                      f"p95 {best['p95']:6.1f} ms  p99 {best['p99']:6.1f} ms  errors {best['errors']}  "
                      f"web CPU {best['cpu_ms']:.2f} ms/req"
                      f"  (n={best['requests']}; runs: {spread})", flush=True)
    print("\n# target: >= 1200 req/s, p99 <= 20 ms (POST and GET, each database)")
    for database, mode, best, _ in rows:
        if mode == "health":
            continue
        ok = best["rps"] >= 1200 and best["p99"] <= 20 and best["errors"] == 0
        print(f"{database:<9} {mode:<5} {'MET' if ok else 'MISSED'}")
    print("# web CPU ms/req: gunicorn workers' user+sys CPU per request (robust to other load on the machine);")
    print("# 2 cores / that = the ceiling in req/s if the web had the machine to itself (DB/Redis/client excluded)")
    print(f"# load after: {statistics.fmean(os.getloadavg()):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
