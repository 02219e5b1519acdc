"""Where one cache-hit job request spends its time, in process, with pyinstrument.

Starts a private stack (as bench/api_latency.py does) to get a migrated database, a user, a
voice and a clip, then runs N requests through Django's test Client in this process under
pyinstrument, and prints the call tree and the SQL queries per request. No gunicorn and no
socket: what is left is Django + DRF + our code + the database and Redis round trips.

    .venv/bin/pip install pyinstrument
    .venv/bin/python bench/profile_api.py --db sqlite --mode post -n 500
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import BenchStack  # noqa: E402

TEXT = "It is time to take your blood pressure medicine."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--mode", choices=["post", "miss", "get", "health"], default="post",
                        help="post: a cache hit; miss: a new text each time (a queued job); get: poll; health")
    parser.add_argument("-n", type=int, default=500, help="requests profiled (default 500)")
    parser.add_argument("--html", type=Path, help="also write pyinstrument's HTML report here")
    args = parser.parse_args(argv)

    with BenchStack(database=args.db, engine="tone") as stack:
        client = stack.client()
        first = client.post_job(TEXT)
        job_id = first.json()["id"]  # a finished job to poll (the hit that follows makes none)
        client.wait(job_id)
        assert client.post_job(TEXT).json()["cache_hit"]
        stack.stop_process("web")
        os.environ.update({k: v for k, v in stack.env.items() if k not in ("PYTHONPATH",)})

        import django

        django.setup()
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext
        from pyinstrument import Profiler

        http = Client(SERVER_NAME="127.0.0.1", HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Token {client.token}")
        body = json.dumps({"text": TEXT, "language": "en"})

        misses = iter(range(10**9))

        def once() -> int:
            if args.mode == "miss":
                fresh = json.dumps({"text": f"{TEXT} {next(misses)}", "language": "en"})
                return http.post("/api/tts/jobs/", fresh, content_type="application/json").status_code
            if args.mode == "post":
                return http.post("/api/tts/jobs/", body, content_type="application/json").status_code
            if args.mode == "get":
                return http.get(f"/api/tts/jobs/{job_id}/").status_code
            return http.get("/api/tts/health/").status_code

        for _ in range(50):
            once()
        with CaptureQueriesContext(connection) as queries:
            status = once()
        print(f"status {status}; {len(queries.captured_queries)} SQL queries per request:")
        for query in queries.captured_queries:
            print("   ", query["sql"][:160])
        profiler = Profiler(interval=0.0002)
        start = time.perf_counter()
        profiler.start()
        for _ in range(args.n):
            once()
        profiler.stop()
        elapsed = time.perf_counter() - start
        print(f"{args.n} requests in {elapsed:.2f} s under the profiler: {elapsed / args.n * 1000:.2f} ms each")
        print(profiler.output_text(unicode=True, color=False, show_all=False))
        if args.html:
            args.html.write_text(profiler.output_html())
        start = time.perf_counter()
        for _ in range(args.n):
            once()
        elapsed = time.perf_counter() - start
        print(f"without the profiler: {elapsed / args.n * 1000:.2f} ms per request (in process, one thread)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
