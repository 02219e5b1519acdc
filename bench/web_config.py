"""The web's configuration, candidates side by side in one run (issue 25 item 1).

Candidates (gunicorn, medicine_project/gunicorn_conf.py, WEB_WORKERS processes = one per core):
  sync     WEB_WORKER_CLASS=sync: one request per process (the baseline for short requests)
  gthread  WEB_WORKER_CLASS=gthread: WEB_THREADS (48) threads per process, one server for everything
  gevent   `--worker-class gevent` (needs `pip install gevent`): one event loop per process, a greenlet per
           connection, the standard library (sockets: psycopg >= 3.1.14, redis-py) made cooperative by gunicorn's
           monkey-patching. PostgreSQL only: with SQLite a greenlet waiting in SQLite's busy handler for the
           write lock blocks its whole process, the lock's holder (another greenlet) included, until the 30 s
           timeout (measured: 8 concurrent streams on SQLite all answered 500)
  split    the shipped default: sync workers for /api and the pages, the stream server
           (medicine_project/gunicorn_stream_conf.py, gthread) for /v1; the two ports are driven directly, as
           `make run` runs them (compose's Caddy, which routes by path, is left out)

Part 1, short requests (per database): cache-hit POST /api/tts/jobs/ and GET of a finished job, with wrk
(bench/wrk_job.lua, 16 connections), rounds interleaved over the candidates' stacks, all started before
timing. Target: req/s >= 0.9x sync's and p99 <= 1.25x sync's. `split` serves /api with sync workers, so its
short requests are sync's by construction and are not measured twice.

Part 2, streams: STREAMS clients (several users) each stream one new 5-sentence MP3 text through
POST /v1/audio/speech at the same time, the `tone` engine sleeping --sentence-seconds per sentence in 8 worker
processes (a GPU's pace without the web's CPU), while /api/tts/health/ is probed every 20 ms. Target: health
p99 <= 50 ms with no errors, and every stream delivers its audio (each body decodes as MP3, 5 sentences long).

    .venv/bin/python bench/web_config.py                         # both parts, both databases
    .venv/bin/python bench/web_config.py --skip-streams --db sqlite --rounds 1
    .venv/bin/python bench/web_config.py --skip-short --streams 64 --candidates gthread,gevent,split
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import requests
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api_latency import TEXT, measure, prepare, run_python, run_wrk  # noqa: E402
from bench.harness import BenchStack, free_port, machine_line, percentiles  # noqa: E402

CANDIDATES = ("sync", "gthread", "gevent", "split")
RPS_MIN = 0.9
P99_MAX = 1.25
HEALTH_P99_MAX_MS = 50.0
WORDS = ("아침", "점심", "저녁", "자기 전", "오후")


class HealthProbe:
    """GET `url` every `interval` s from a process of its own (not a thread among the streams' clients,
    whose GIL would be in the figures) until the `with` ends; `samples`: seconds per request, an error as inf."""

    def __init__(self, url: str, interval: float = 0.02) -> None:
        self.url, self.interval, self.samples = url, interval, []

    def __enter__(self) -> HealthProbe:
        self._proc = subprocess.Popen([sys.executable, __file__, "--probe", self.url, str(self.interval)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc: object) -> None:
        out, _ = self._proc.communicate("", timeout=60)  # closing its stdin stops it
        self.samples = [float(value) for value in out.split()]


def probe_run(url: str, interval: float) -> None:
    """The probe process: one keep-alive connection, latencies printed when stdin closes."""
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    session, samples = requests.Session(), []
    while not stop.is_set():
        start = time.perf_counter()
        try:
            ok = session.get(url, timeout=30).status_code == 200
        except requests.RequestException:
            ok = False
        samples.append(time.perf_counter() - start if ok else float("inf"))
        stop.wait(interval)
    print(" ".join(f"{value:.6f}" for value in samples))


def stream_text(number: int) -> str:
    """Five Korean sentences that no other number says (so nothing is a cache hit)."""
    return " ".join(f"{WORDS[k]} {number}번째 알림입니다, 약 {k + 1}정을 드세요." for k in range(5))


def _web_env(args: argparse.Namespace, candidate: str) -> dict[str, str]:
    """gunicorn_conf.py's settings for the candidate (gevent is not one of its classes: gunicorn's flags below)."""
    env = {"WEB_WORKER_CLASS": "gthread" if candidate == "gevent" else "sync" if candidate == "split" else candidate}
    if candidate == "gthread" and args.web_threads:
        env["WEB_THREADS"] = str(args.web_threads)
    return env


# gunicorn's own flags win over its config file: the gevent worker, 1000 connections per process.
GEVENT_ARGS = ["--worker-class", "gevent", "--worker-connections", "1000", "--threads", "1"]


def _web_extra(candidate: str) -> list[str]:
    return GEVENT_ARGS if candidate == "gevent" else []


def short_requests(args: argparse.Namespace, database: str, candidates: list[str]) -> None:
    # gevent is PostgreSQL-only (see above); `split` serves /api with sync workers (sync's figures).
    measured = [c for c in candidates if c != "split" and (c != "gevent" or database == "postgres")]
    if "sync" not in measured:
        measured.insert(0, "sync")
    print(f"\n1. short requests, {database}: {args.clients} connections, {args.duration:g} s per run, "
          f"{args.rounds} rounds interleaved over {', '.join(measured)}")
    runner = run_wrk if args.client == "wrk" else run_python
    with ExitStack() as stack_of:
        stacks = {c: stack_of.enter_context(BenchStack(database=database, env=_web_env(args, c),
                                                       web_extra=_web_extra(c))) for c in measured}
        prepared = {c: prepare(stacks[c]) for c in measured}
        body = f'{{"text": "{TEXT}"}}'
        results: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for mode in ("post", "get"):
            for candidate in measured:  # warm-up, untimed
                token, ids = prepared[candidate]
                runner(stacks[candidate], mode, token=token, body=body, ids=ids, clients=args.clients,
                       duration=1.0, threads=2)
            for _ in range(args.rounds):
                for candidate in measured:
                    token, ids = prepared[candidate]
                    results.setdefault((candidate, mode), []).append(measure(
                        stacks[candidate], runner, mode, duration=args.duration, token=token, body=body, ids=ids,
                        clients=args.clients, threads=2))
    print("| candidate | mode | req/s | p50 ms | p99 ms | errors | req/s vs sync | p99 vs sync | target |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mode in ("post", "get"):
        base = results[("sync", mode)]
        base_rps = statistics.median(r["rps"] for r in base)
        base_p99 = statistics.median(r["p99"] for r in base)
        for candidate in [*measured, *(["split"] if "split" in candidates else [])]:
            runs = results[("sync" if candidate == "split" else candidate, mode)]
            rps = statistics.median(r["rps"] for r in runs)
            p50 = statistics.median(r["p50"] for r in runs)
            p99 = statistics.median(r["p99"] for r in runs)
            errors = sum(r["errors"] for r in runs)
            ok = rps >= RPS_MIN * base_rps and p99 <= P99_MAX * base_p99 and not errors
            note = " (sync's)" if candidate == "split" else ""
            print(f"| {candidate}{note} | {mode} | {rps:.0f} | {p50:.1f} | {p99:.1f} | {errors} | "
                  f"{rps / base_rps:.2f}x | {p99 / base_p99:.2f}x | {'PASS' if ok else 'MISS'} |")


def _stream(url: str, token: str, text: str) -> tuple[float, float, bytes] | str:
    body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "mp3"}
    start = time.perf_counter()
    first = None
    chunks = []
    try:
        with requests.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, stream=True,
                           timeout=600) as response:
            if response.status_code != 200:
                return f"HTTP {response.status_code} {response.text[:200]}"
            for chunk in response.iter_content(chunk_size=None):
                if chunk and first is None:
                    first = time.perf_counter() - start
                chunks.append(chunk)
    except requests.RequestException as exc:
        return f"{type(exc).__name__}: {exc}"
    return first or float("nan"), time.perf_counter() - start, b"".join(chunks)


def _audio_ok(data: bytes) -> str:
    """'' when the body is one MP3 of about five sentences, else what is wrong."""
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32")
    except soundfile.LibsndfileError as exc:
        return f"undecodable: {exc}"
    return "" if len(samples) / rate > 1.0 else f"too short: {len(samples) / rate:.2f} s"


def streams(args: argparse.Namespace, candidate: str, count: int) -> dict[str, Any]:
    env = {**_web_env(args, candidate), "THROTTLE_SPEECH_RATE": "100000/s",
           "TONE_DELAY_SECONDS": str(args.sentence_seconds)}
    with BenchStack(database=args.stream_db, engine="tone", worker_concurrency=8, env=env,
                    web_extra=_web_extra(candidate)) as stack:
        stream_base = stack.base_url
        if candidate == "split":  # the stream service: gthread with the default threads
            stream_base = stack.start_web(name="stream", port=free_port(),
                                          config=stack.app_root / "medicine_project" / "gunicorn_stream_conf.py")
        tokens = [stack.client(f"user{n}").token for n in range(args.users)]
        url = stream_base + "/v1/audio/speech"
        _stream(url, tokens[0], stream_text(10_000))  # warm-up: the first stream imports the encoders
        barrier = threading.Barrier(count)

        def one(n: int) -> tuple[float, float, bytes] | str:
            barrier.wait()
            return _stream(url, tokens[n % len(tokens)], stream_text(n + 1))

        with HealthProbe(stack.base_url + "/api/tts/health/") as probe:
            with ThreadPoolExecutor(max_workers=count) as pool:
                outcomes = list(pool.map(one, range(count)))
        health = probe.samples
    errors = [o for o in outcomes if isinstance(o, str)]
    bad_audio = [problem for o in outcomes if not isinstance(o, str) and (problem := _audio_ok(o[2]))]
    pct = percentiles(health)
    firsts = [o[0] for o in outcomes if not isinstance(o, str)]
    lasts = [o[1] for o in outcomes if not isinstance(o, str)]
    health_errors = sum(1 for value in health if value == float("inf"))
    ok = pct["p99"] * 1000 <= HEALTH_P99_MAX_MS and not errors and not bad_audio and not health_errors
    return {"candidate": candidate, "streams": count, "done": len(lasts), "errors": errors, "bad_audio": bad_audio,
            "health_n": len(health), "health_errors": health_errors, "health_p50": pct["p50"] * 1000,
            "health_p99": pct["p99"] * 1000,
            "first_p50": percentiles(firsts)["p50"] if firsts else float("nan"),
            "last_p50": percentiles(lasts)["p50"] if lasts else float("nan"), "ok": ok}


def stream_part(args: argparse.Namespace, candidates: list[str]) -> None:
    print(f"\n2. {args.streams} streams at once over {args.users} users ({args.stream_db}), 5 sentences each, "
          f"tone engine {args.sentence_seconds:g} s per sentence in 8 processes; health probed every 20 ms")
    print("| candidate | streams | delivered (valid MP3) | errors | first byte p50 | last byte p50 | health n | "
          "health p50 ms | health p99 ms | target |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for candidate in candidates:
        if candidate == "gevent" and args.stream_db == "sqlite":
            print("| gevent | - | - | - | - | - | - | - | - | skipped: SQLite blocks a gevent process (see above) |")
            continue
        result = streams(args, candidate, args.streams)
        errors = result["errors"] + result["bad_audio"]
        print(f"| {candidate} | {result['streams']} | {result['done'] - len(result['bad_audio'])} | {len(errors)}"
              f"{' (' + errors[0][:80] + ')' if errors else ''} | {result['first_p50']:.2f} s | "
              f"{result['last_p50']:.2f} s | {result['health_n']} ({result['health_errors']} failed) | "
              f"{result['health_p50']:.1f} | "
              f"{result['health_p99']:.1f} | {'PASS' if result['ok'] else 'MISS'} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--probe"]:
        probe_run(argv[1], float(argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", default=",".join(CANDIDATES), help=f"comma list of {', '.join(CANDIDATES)}")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both", help="part 1's databases")
    parser.add_argument("--clients", type=int, default=16, help="part 1: concurrent connections (default 16)")
    parser.add_argument("--duration", type=float, default=5.0, help="part 1: seconds per run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="part 1: interleaved rounds (default 3)")
    parser.add_argument("--client", choices=["wrk", "python"], default="wrk", help="part 1's load generator")
    parser.add_argument("--streams", type=int, default=64, help="part 2: streams at once (default 64)")
    parser.add_argument("--users", type=int, default=8, help="part 2: users the streams are spread over (default 8)")
    parser.add_argument("--sentence-seconds", type=float, default=0.5, help="part 2: worker seconds per sentence")
    parser.add_argument("--stream-db", choices=["sqlite", "postgres"], default="sqlite", help="part 2's database")
    parser.add_argument("--web-threads", type=int, default=0,
                        help="WEB_THREADS for the gthread candidate (default: gunicorn_conf.py's)")
    parser.add_argument("--skip-short", action="store_true", help="only part 2")
    parser.add_argument("--skip-streams", action="store_true", help="only part 1")
    args = parser.parse_args(argv)
    candidates = [c for c in args.candidates.split(",") if c]
    unknown = set(candidates) - set(CANDIDATES)
    if unknown:
        parser.error(f"unknown candidates: {', '.join(sorted(unknown))}")
    print(f"# web_config  {machine_line()}  candidates {', '.join(candidates)}")
    if not args.skip_short:
        for database in (["sqlite", "postgres"] if args.db == "both" else [args.db]):
            short_requests(args, database, candidates)
    if not args.skip_streams:
        stream_part(args, candidates)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
