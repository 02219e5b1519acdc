"""Cache-hit job requests against gunicorn on 127.0.0.1: requests/s, p50/p95/p99, errors, CPU, SQL.

For each database (SQLite, PostgreSQL) it starts a private stack (redis-server on a free port,
a throwaway database, gunicorn with medicine_project/gunicorn_conf.py, a `tone` worker), makes
one clip and 50 finished jobs (distinct texts), then drives with K concurrent clients:
  - post:   POST /api/tts/jobs/ for that clip's text (a cache hit: 200),
  - get:    GET  /api/tts/jobs/<id>/ over the finished jobs (200),
  - health: GET  /api/tts/health/ (no auth, reads worker heartbeats from Redis) for reference.
Any answer other than 200 counts as an error. The load generator is wrk (`apt-get install wrk`)
when present: it costs far less CPU than a Python client on a 2-core machine where client and
server share the cores. Without wrk a threaded Python client is used (its numbers are lower: it
competes for the same cores).

Per request it also reports the gunicorn workers' user+sys CPU (robust to other load on the box)
and, from a separate untimed pass, the SQL statements: a second gunicorn (1 worker) started with
bench/gunicorn_count_sql.py (the app's gunicorn_conf.py plus a counter in every DB connection)
gets --sql-requests requests of each mode. `SQL/req` counts statements sent through Django's
cursors and `writes` those starting with INSERT/UPDATE/DELETE; `driver/req` is what reached the
database driver (SQLite's trace callback; psycopg's execute + commit/rollback), which also sees
BEGIN/COMMIT and statements that bypass Django's cursor.

Before/after (--app-root OLD): serves the OLD checkout (e.g. a `git worktree add /work/old-8a08c45
8a08c45`) and the current tree (the checkout this bench/ lives in) side by side, each with its
own redis-server, database, gunicorn and worker, all started before timing begins. Both are
warmed up for each mode, then measured interleaved, old, new, old, new ... (--repeat rounds,
one stack loaded at a time), and a table per database gives both sides' medians over the rounds
and new/old for req/s and p99. Targets (issue 13): at 16 clients, for cache-hit POST and GET job,
new >= 0.8x old req/s and new p99 <= 1.25x old p99, with no errors: PASS/MISS per row.

Single stack (no --app-root): the current tree only; target (issue 7): >= 1200 requests/s and
p99 <= 20 ms at 16 clients on both databases.

--json FILE writes every number (per-round runs, SQL by keyword, commits, targets) for RESULTS.md.

    .venv/bin/python bench/api_latency.py                       # both databases, 16 clients, 8 s each
    .venv/bin/python bench/api_latency.py --db postgres --clients 32 --duration 15 --repeat 3
    .venv/bin/python bench/api_latency.py --app-root /work/old-8a08c45 --repeat 3 --json /tmp/api.json
    .venv/bin/python bench/api_latency.py --app-root /work/old-8a08c45 --db sqlite --duration 2 --repeat 1
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
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import ROOT, BenchStack, free_port, git_describe, machine_line, percentiles  # noqa: E402

HERE = Path(__file__).resolve().parent
TEXT = "It is time to take your blood pressure medicine."
N_IDS = 50
WRITE_KEYWORDS = ("INSERT", "UPDATE", "DELETE")
DML_KEYWORDS = ("SELECT", *WRITE_KEYWORDS)
TARGET_MODES = ("post", "get")
TARGET_CLIENTS = 16
TARGET_RPS_MIN = 0.8          # new/old requests/s at least
TARGET_P99_MAX = 1.25         # new/old p99 at most
SQL_KEY = "bench:sql-count"
METRICS = ("rps", "p50", "p95", "p99", "cpu_ms")

Runner = Callable[..., dict[str, Any]]  # run_wrk or run_python


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
    errors = data["non200"] + data["connect"] + data["read"] + data["write"] + data["timeout"]
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
                if response.status != 200:
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


def prepare(stack: BenchStack, *, n_ids: int = N_IDS) -> tuple[str, list[str]]:
    """One synthesised clip (so TEXT is a cache hit) and `n_ids` finished jobs to poll.

    The jobs to poll are made from distinct texts (202 with an id in every version of the API):
    a cache-hit POST need not return a job id (newer code answers `"id": null` and writes no row)."""
    client = stack.client()
    first = client.post_job(TEXT)
    assert first.status_code == 202, f"{first.status_code} {first.text}"
    ids = []
    for i in range(n_ids):
        response = client.post_job(f"{TEXT} Dose {i + 1}.")
        assert response.status_code == 202, f"{response.status_code} {response.text}"
        ids.append(str(response.json()["id"]))
    for job_id in [str(first.json()["id"]), *ids]:
        body = client.wait(job_id, interval=0.01, backoff=1.5)
        assert body["status"] == "succeeded", body
    hit = client.post_job(TEXT)
    assert hit.status_code == 200, f"cache hit expected: {hit.status_code} {hit.text}"
    return client.token, ids


def measure(stack: BenchStack, runner: Runner, mode: str, *, duration: float, **kwargs: Any) -> dict[str, Any]:
    """One timed run of `mode`, with the gunicorn workers' CPU per request."""
    cpu0 = stack.web_cpu_seconds()
    result = runner(stack, mode, duration=duration, **kwargs)
    result["cpu_ms"] = (stack.web_cpu_seconds() - cpu0) / max(1, result["requests"]) * 1000
    return result


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the runs for each metric, errors and requests summed, the runs themselves kept."""
    out: dict[str, Any] = {name: statistics.median(r[name] for r in runs) for name in METRICS}
    out["errors"] = sum(r["errors"] for r in runs)
    out["requests"] = sum(r["requests"] for r in runs)
    out["runs"] = runs
    return out


# --- SQL statements per request (untimed) ---------------------------------------------------


def _send(session: requests.Session, base_url: str, mode: str, body: str, ids: list[str], n: int) -> int:
    try:
        if mode == "post":
            response = session.post(base_url + "/api/tts/jobs/", data=body,
                                    headers={"Content-Type": "application/json"}, timeout=30)
        elif mode == "health":
            response = session.get(base_url + "/api/tts/health/", timeout=30)
        else:
            response = session.get(f"{base_url}/api/tts/jobs/{ids[n % len(ids)]}/", timeout=30)
    except requests.RequestException:
        return 0
    return response.status_code


def is_write(keyword: str) -> bool:
    """INSERT/UPDATE/DELETE, or a WITH with one of them in it (the counter names it "WITH UPDATE INSERT")."""
    words = keyword.split()
    return bool(words) and (words[0] in WRITE_KEYWORDS or (words[0] == "WITH" and len(words) > 1))


def is_dml(keyword: str) -> bool:
    return keyword.split(" ", 1)[0] in (*DML_KEYWORDS, "WITH")


def sql_summary(counts: dict[str, int], requests_sent: int, errors: int) -> dict[str, Any]:
    """Per-request statement counts from the counter's `<level>:<KEYWORD>` hash."""
    n = max(1, requests_sent)
    levels: dict[str, dict[str, int]] = {"django": {}, "db": {}}
    for name, value in counts.items():
        level, _, keyword = name.partition(":")
        levels.setdefault(level, {})[keyword] = value
    django, db = levels["django"], levels["db"]
    return {
        "requests": requests_sent,
        "errors": errors,
        "per_request": sum(django.values()) / n,
        "writes_per_request": sum(v for k, v in django.items() if is_write(k)) / n,
        "by_keyword": {k: v / n for k, v in sorted(django.items())},
        "driver_per_request": sum(db.values()) / n,
        "driver_writes_per_request": sum(v for k, v in db.items() if is_write(k)) / n,
        "driver_by_keyword": {k: v / n for k, v in sorted(db.items())},
        # DML the driver ran that never went through Django's cursor (raw cursors, health checks)
        "bypassed_per_request": max(0, sum(v for k, v in db.items() if is_dml(k))
                                    - sum(v for k, v in django.items() if is_dml(k))) / n,
    }


def count_sql(stack: BenchStack, modes: list[str], *, token: str, body: str, ids: list[str], n: int,
              warmup: int = 50) -> dict[str, dict[str, Any]]:
    """SQL statements per request of each mode, on a second gunicorn (1 worker) that counts them.

    The counting gunicorn runs the app's own gunicorn_conf.py through bench/gunicorn_count_sql.py,
    so this works for any version of the app; it is stopped before the timed runs."""
    env = {"BENCH_SQL_REDIS_URL": stack.redis_url, "BENCH_SQL_KEY": SQL_KEY,
           "BENCH_APP_GUNICORN_CONF": str(stack.app_root / "medicine_project" / "gunicorn_conf.py")}
    base_url = stack.start_web(name="web_sql", port=free_port(), config=HERE / "gunicorn_count_sql.py", workers=1,
                               env=env)
    counter = redis.Redis.from_url(stack.redis_url)
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    out = {}
    try:
        roots = {v.decode() for v in counter.hgetall(SQL_KEY + ":app").values()}
        if roots != {str(stack.app_root)}:
            raise RuntimeError(f"the counting gunicorn imported the app from {sorted(roots)}, not {stack.app_root}")
        for mode in modes:
            for i in range(warmup):  # caches (token, clip, prepared statements) warm, connection open
                _send(session, base_url, mode, body, ids, i)
            time.sleep(0.1)
            counter.delete(SQL_KEY)
            errors = sum(_send(session, base_url, mode, body, ids, i) != 200 for i in range(n))
            time.sleep(0.2)  # anything the worker does after its last response (request_finished)
            counts = {k.decode(): int(v) for k, v in counter.hgetall(SQL_KEY).items()}
            out[mode] = sql_summary(counts, n, errors)
    finally:
        session.close()
        stack.stop_process("web_sql")
    return out


def sql_notes(mode: str, counted: dict[str, dict[str, Any] | None]) -> None:
    """Counting-pass errors, and DML that reached the driver without Django's cursor."""
    for label, sql in counted.items():
        if sql and sql["errors"]:
            print(f"#   {mode} {label}: {sql['errors']} of {sql['requests']} counting-pass requests did not answer 200")
    bypassed = {label: sql["bypassed_per_request"] for label, sql in counted.items() if sql}
    if any(bypassed.values()):
        print(f"#   {mode}: driver-only statements per request (raw driver calls, e.g. CONN_HEALTH_CHECKS' SELECT 1): "
              + ", ".join(f"{label} {value:.2f}" for label, value in bypassed.items()))


# --- before/after ---------------------------------------------------------------------------


@dataclass
class Side:
    label: str
    stack: BenchStack
    token: str
    ids: list[str]
    sql: dict[str, dict[str, Any]] = field(default_factory=dict)


def verdict(mode: str, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
    """The issue-13 target for `mode` (None for modes without one)."""
    if mode not in TARGET_MODES:
        return None
    rps = new["rps"] / old["rps"] if old["rps"] else float("nan")
    p99 = new["p99"] / old["p99"] if old["p99"] else float("nan")
    return {"rps_ratio_min": TARGET_RPS_MIN, "p99_ratio_max": TARGET_P99_MAX, "clients": TARGET_CLIENTS,
            "pass": bool(rps >= TARGET_RPS_MIN and p99 <= TARGET_P99_MAX and new["errors"] == 0)}


HEADER = (f"{'mode':<7} {'code':<8} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':>6} "
          f"{'CPU ms/req':>10} {'SQL/req':>7} {'writes':>6} {'driver':>6}  runs (req/s)")


def side_line(mode: str, label: str, agg: dict[str, Any], sql: dict[str, Any] | None) -> str:
    sql_cols = (f"{sql['per_request']:7.2f} {sql['writes_per_request']:6.2f} {sql['driver_per_request']:6.2f}"
                if sql else f"{'-':>7} {'-':>6} {'-':>6}")
    runs = ", ".join(f"{r['rps']:.0f}" for r in agg["runs"])
    return (f"{mode:<7} {label:<8} {agg['rps']:7.0f} {agg['p50']:7.1f} {agg['p95']:7.1f} {agg['p99']:7.1f} "
            f"{agg['errors']:6d} {agg['cpu_ms']:10.2f} {sql_cols}  {runs}")


def ratio_line(mode: str, ratio: dict[str, float], target: dict[str, Any] | None,
               paired: list[dict[str, float]]) -> str:
    mark = "" if target is None else ("PASS" if target["pass"] else "MISS")
    per_round = ", ".join(f"{r['rps']:.2f}" for r in paired)
    rounds = f"  per round: {per_round}" if len(paired) > 1 else ""
    return (f"{mode:<7} {'new/old':<8} {ratio['rps']:6.2f}x {ratio['p50']:6.2f}x {'':>7} {ratio['p99']:6.2f}x "
            f"{'':>6} {ratio['cpu_ms']:9.2f}x {mark:>22}{rounds}")


def compare(args: argparse.Namespace, runner: Runner, databases: list[str], modes: list[str],
            report: dict[str, Any]) -> list[dict[str, Any]]:
    """Old (args.app_root) and new (this tree) side by side, measured interleaved; returns the rows."""
    rows: list[dict[str, Any]] = []
    body = json.dumps({"text": TEXT, "language": "en"})
    for database in databases:
        with ExitStack() as stacks:
            sides = []
            for label, root in (("old", args.app_root), ("new", ROOT)):
                stack = stacks.enter_context(BenchStack(
                    database=database, engine="tone", web_workers=args.web_workers, app_root=root,
                    web_extra=args.gunicorn_args.split()))
                token, ids = prepare(stack)
                sides.append(Side(label, stack, token, ids))
            if args.no_worker:
                for side in sides:
                    side.stack.stop_process("worker")
            if args.sql_requests:
                for side in sides:
                    side.sql = count_sql(side.stack, modes, token=side.token, body=body, ids=side.ids,
                                         n=args.sql_requests)
            print(f"\n## {database}: old = {sides[0].stack.app_root}, new = {sides[1].stack.app_root}; "
                  f"medians of {args.repeat} interleaved round(s)")
            print(HEADER, flush=True)
            for mode in modes:
                kwargs: dict[str, Any] = {"clients": args.clients, "threads": args.threads, "body": body}
                if args.warmup:
                    for side in sides:
                        runner(side.stack, mode, duration=args.warmup, token=side.token, ids=side.ids, **kwargs)
                runs: dict[str, list[dict[str, Any]]] = {side.label: [] for side in sides}
                for _ in range(args.repeat):
                    for side in sides:  # old, new, old, new ...: both see the same box
                        runs[side.label].append(measure(side.stack, runner, mode, duration=args.duration,
                                                        token=side.token, ids=side.ids, **kwargs))
                old, new = aggregate(runs["old"]), aggregate(runs["new"])
                for side, agg in zip(sides, (old, new), strict=True):
                    agg["sql"] = side.sql.get(mode)
                ratio = {name: new[name] / old[name] if old[name] else float("nan") for name in METRICS}
                # each round's new/old: a pair measured back to back, so less exposed to the box's drift
                paired = [{name: n[name] / o[name] if o[name] else float("nan") for name in METRICS}
                          for o, n in zip(runs["old"], runs["new"], strict=True)]
                target = verdict(mode, old, new)
                row = {"database": database, "mode": mode, "old": old, "new": new, "ratio": ratio,
                       "paired_ratios": paired, "target": target}
                rows.append(row)
                print(side_line(mode, "old", old, old["sql"]))
                print(side_line(mode, "new", new, new["sql"]))
                print(ratio_line(mode, ratio, target, paired), flush=True)
                sql_notes(mode, {"old": old["sql"], "new": new["sql"]})
        report["rows"] = rows
        if args.json:
            args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n# targets (issue 13), at {TARGET_CLIENTS} clients: new >= {TARGET_RPS_MIN}x old req/s and "
          f"new p99 <= {TARGET_P99_MAX}x old p99, no errors (cache-hit POST, GET job)")
    if args.clients != TARGET_CLIENTS:
        print(f"# note: this run used {args.clients} clients; the targets are defined at {TARGET_CLIENTS}")
    for row in rows:
        if row["target"] is None:
            continue
        ratio = row["ratio"]
        print(f"{row['database']:<9} {row['mode']:<5} req/s {ratio['rps']:.2f}x (>= {TARGET_RPS_MIN})  "
              f"p99 {ratio['p99']:.2f}x (<= {TARGET_P99_MAX})  errors {row['new']['errors']}  "
              f"{'PASS' if row['target']['pass'] else 'MISS'}")
    return rows


# --- one stack ------------------------------------------------------------------------------


def single(args: argparse.Namespace, runner: Runner, databases: list[str], modes: list[str],
           report: dict[str, Any]) -> list[dict[str, Any]]:
    """The current tree alone (the behaviour before --app-root compared two trees)."""
    rows: list[dict[str, Any]] = []
    body = json.dumps({"text": TEXT, "language": "en"})
    for database in databases:
        with BenchStack(database=database, engine="tone", web_workers=args.web_workers,
                        web_extra=args.gunicorn_args.split()) as stack:
            token, ids = prepare(stack)
            if args.no_worker:
                stack.stop_process("worker")
            sql = (count_sql(stack, modes, token=token, body=body, ids=ids, n=args.sql_requests)
                   if args.sql_requests else {})
            for mode in modes:
                kwargs: dict[str, Any] = dict(token=token, body=body, ids=ids, clients=args.clients,
                                              threads=args.threads)
                if args.warmup:
                    runner(stack, mode, duration=args.warmup, **kwargs)
                results = [measure(stack, runner, mode, duration=args.duration, **kwargs)
                           for _ in range(args.repeat)]
                best = sorted(results, key=lambda r: r["rps"])[len(results) // 2]
                spread = ", ".join(f"{r['rps']:.0f}" for r in results)
                counted = sql.get(mode)
                rows.append({"database": database, "mode": mode, "best": best, "runs": results, "sql": counted})
                sql_text = (f"  SQL {counted['per_request']:.2f}/req (writes {counted['writes_per_request']:.2f})"
                            if counted else "")
                print(f"{database:<9} {mode:<7} {best['rps']:7.0f} req/s  p50 {best['p50']:6.1f} ms  "
                      f"p95 {best['p95']:6.1f} ms  p99 {best['p99']:6.1f} ms  errors {best['errors']}  "
                      f"web CPU {best['cpu_ms']:.2f} ms/req{sql_text}"
                      f"  (n={best['requests']}; runs: {spread})", flush=True)
        report["rows"] = rows
        if args.json:
            args.json.write_text(json.dumps(report, indent=2) + "\n")
    print("\n# target (issue 7): >= 1200 req/s, p99 <= 20 ms (POST and GET, each database)")
    for row in rows:
        if row["mode"] == "health":
            continue
        best = row["best"]
        ok = best["rps"] >= 1200 and best["p99"] <= 20 and best["errors"] == 0
        print(f"{row['database']:<9} {row['mode']:<5} {'MET' if ok else 'MISSED'}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections (default 16)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement (default 8)")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="seconds of untimed load per mode (and per stack) first (default 2)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measurements per case (with --app-root: interleaved rounds); medians are shown")
    parser.add_argument("--web-workers", type=int, default=None, help="gunicorn workers (default: CPU count)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--modes", default="post,get,health", help="comma list of post,get,health")
    parser.add_argument("--no-worker", action="store_true",
                        help="stop the worker before measuring (default: it stays up, idle, as in production)")
    parser.add_argument("--app-root", type=Path,
                        help="an OLD checkout of the app: measure it and this tree interleaved, before/after")
    parser.add_argument("--gunicorn-args", default="", help="extra gunicorn arguments, e.g. '-k gthread --threads 4'")
    parser.add_argument("--sql-requests", type=int, default=200,
                        help="requests per mode in the untimed SQL counting pass (default 200; 0: skip it)")
    parser.add_argument("--json", type=Path, help="write the results as JSON to this file")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if set(modes) - {"post", "get", "health"}:
        parser.error("--modes: post, get, health")
    if args.app_root is not None:
        args.app_root = args.app_root.resolve()
        if not (args.app_root / "manage.py").exists():
            parser.error(f"--app-root {args.app_root}: no manage.py there")
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")

    use_wrk = bool(args.client == "wrk" or (args.client == "auto" and shutil.which("wrk")))
    runner = run_wrk if use_wrk else run_python
    databases = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    trees = {"old": git_describe(args.app_root), "new": git_describe(ROOT)} if args.app_root else \
        {"app": git_describe(ROOT)}
    print(f"# api_latency  {machine_line()}")
    for label, tree in trees.items():
        print(f"# {label}: {tree['root']} ({tree['commit'] or '?'}{', uncommitted changes' if tree['dirty'] else ''})"
              f" {args.gunicorn_args}")
    print(f"# client: {'wrk' if use_wrk else 'python threads'}, {args.clients} connections, "
          f"{args.duration:g} s x {args.repeat}{' interleaved old/new' if args.app_root else ''}, "
          f"warm-up {args.warmup:g} s; SQL: {args.sql_requests} untimed requests per mode")
    report: dict[str, Any] = {
        "bench": "api_latency", "machine": machine_line(), "trees": trees,
        "client": "wrk" if use_wrk else "python", "clients": args.clients, "duration_s": args.duration,
        "warmup_s": args.warmup, "repeat": args.repeat, "web_workers": args.web_workers or os.cpu_count(),
        "gunicorn_args": args.gunicorn_args, "no_worker": args.no_worker, "sql_requests": args.sql_requests,
        "units": {"rps": "requests/s", "p50": "ms", "p95": "ms", "p99": "ms", "cpu_ms": "web CPU ms per request",
                  "sql": "statements per request"},
        "rows": [],
    }
    if args.app_root:
        compare(args, runner, databases, modes, report)
    else:
        single(args, runner, databases, modes, report)
    print("# web CPU ms/req: gunicorn workers' user+sys CPU per request (robust to other load on the machine);")
    print("# 2 cores / that = the ceiling in req/s if the web had the machine to itself (DB/Redis/client excluded)")
    print("# SQL/req, writes: statements through Django's cursors (writes: INSERT/UPDATE/DELETE); driver: all the")
    print("# database driver saw, BEGIN/COMMIT included (untimed counting pass, 1 gunicorn worker)")
    print(f"# load after: {statistics.fmean(os.getloadavg()):.2f}")
    if args.json:
        report["load_after"] = os.getloadavg()
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"# JSON: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
