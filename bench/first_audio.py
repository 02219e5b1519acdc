"""Time to first audio: our /v1/audio/speech stream, our joined answer, and api_v2's streaming mode.

One run, one machine, the same tiny random-weight GPT-SoVITS v2 model (built on the fly, CPU) and
the same reference clip (the one our upload stored, handed to api_v2 as a server path):
  (a) ours, streamed: POST /v1/audio/speech with `stream_format: audio`; the web splits the text
      into sentences, queues one job per sentence, and writes each sentence's audio as it is ready;
  (b) ours, joined: the same request without streaming (the whole answer at once);
  (c) api_v2 `POST /tts` with `streaming_mode: true` (it cuts the text itself, `cut5`) and
      `media_type: wav`, the engine's own streaming.
For each: time from sending the request to the first audio byte and to the last byte, over
`--rounds` rounds of a 5-sentence Korean text. Every round uses new sentences (a cache hit would
make ours look better than it is), and the three are run in turn within a round.

Then, on the same web (gthread, see medicine_project/gunicorn_conf.py):
  - bytes per second of speech for each response format, on real speech (the embedded Kokoro voice);
  - concurrent streams, with the `tone` engine taking `--sentence-seconds` per sentence in 8 worker
    processes that sleep (a GPU's pace without using the web's cores): N clients each stream a
    5-sentence text while a probe GETs /api/tts/health/ every 20 ms; N grows until health p99
    passes 50 ms (the figure is the largest N that stayed under).

    .venv-gpu/bin/python bench/first_audio.py               # all three parts
    .venv/bin/python bench/first_audio.py --skip-api-v2     # without the GPU venv: (a), (b), formats, streams
"""

from __future__ import annotations

import argparse
import io
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

SEED = 1234
SUBJECTS = ["혈압약", "당뇨약", "비타민", "관절약", "위장약", "심장약", "철분제", "갑상선약", "진통제", "수면제"]
WHEN = ["아침 식사 후에", "점심 식사 전에", "저녁 식사 후에", "주무시기 전에", "오후 세 시에"]


def korean_text(round_no: int, salt: str = "") -> str:
    """Five sentences, new ones each round (and per salt), so nothing is a cache hit."""
    sentences = []
    for i in range(5):
        what = SUBJECTS[(round_no * 5 + i) % len(SUBJECTS)]
        when = WHEN[(round_no + i) % len(WHEN)]
        sentences.append(f"{when} {what}을 {round_no * 5 + i + 1}번째로 드세요{salt}.")
    return " ".join(sentences)


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


def seconds_of(audio: bytes, response_format: str) -> float:
    import numpy as np
    import soundfile

    if response_format == "pcm":
        return len(np.frombuffer(audio, dtype="<i2")) / 24000
    data, rate = soundfile.read(io.BytesIO(audio))
    return len(data) / rate


def line(label: str, firsts: list[float], lasts: list[float]) -> str:
    f, last = percentiles(firsts, (50,)), percentiles(lasts, (50,))
    return (f"  {label:<22} first byte p50 {f['p50']:6.2f} s (min {min(firsts):5.2f}, max {max(firsts):5.2f})   "
            f"last byte p50 {last['p50']:6.2f} s (min {min(lasts):5.2f}, max {max(lasts):5.2f})")


def first_audio(args: argparse.Namespace) -> None:
    import subprocess
    import tempfile

    from bench.vs_api_v2 import ApiV2Server, api_v2_body

    work = Path(tempfile.mkdtemp(prefix="bench-first-audio-"))
    model = work / "model"
    if not args.skip_api_v2 or args.engine == "gpt_sovits":
        subprocess.run([sys.executable, "-m", "tests.gpu_stack.tiny_model", str(model)], check=True, cwd=ROOT,
                       capture_output=True)
    env = {"GPTSOVITS_MODEL_PATH": str(model), "GPTSOVITS_DEVICE": "cpu", "THROTTLE_SPEECH_RATE": "100000/s"}
    print(f"\n1. time to first audio, {args.rounds} rounds of a 5-sentence Korean text, engine {args.engine}")
    with BenchStack(database="sqlite", engine=args.engine, env=env) as stack:
        client = stack.client()
        headers = {"Authorization": f"Bearer {client.token}"}
        url = stack.base_url + "/v1/audio/speech"
        session = requests.Session()
        reference = next((stack.tmp / "media" / "voices").rglob("*.wav"))
        api = None if args.skip_api_v2 else ApiV2Server(model, work)
        try:
            # Warm-up (first use builds the Korean front end and the reference's prompt cache).
            timed_post(session, url, speech_body(korean_text(99, "!"), stream=False), headers)
            if api:
                timed_post(session, api.url + "/tts", api_v2_body("준비 운동 문장입니다.", reference), {})
            results: dict[str, tuple[list[float], list[float]]] = {
                "ours, streamed": ([], []), "ours, joined": ([], []), "api_v2 streaming_mode": ([], [])}
            for round_no in range(args.rounds):
                runs = [("ours, streamed", url, speech_body(korean_text(round_no, "a"), stream=True), headers),
                        ("ours, joined", url, speech_body(korean_text(round_no, "b"), stream=False), headers)]
                if api:
                    body = {**api_v2_body(korean_text(round_no, "c"), reference), "streaming_mode": True}
                    runs.append(("api_v2 streaming_mode", api.url + "/tts", body, {}))
                for label, target, body, hdrs in runs:
                    first, last, _ = timed_post(session, target, body, hdrs)
                    results[label][0].append(first)
                    results[label][1].append(last)
            for label, (firsts, lasts) in results.items():
                if firsts:
                    print(line(label, firsts, lasts))
        finally:
            if api:
                api.stop()


def formats(stack: BenchStack, token: str) -> None:
    print("\n2. bytes per second of speech, per response_format (a 5-sentence Korean text)")
    headers = {"Authorization": f"Bearer {token}"}
    session = requests.Session()
    text = korean_text(50, "f")
    for response_format in ("wav", "pcm", "flac", "mp3", "opus"):
        _, _, audio = timed_post(session, stack.base_url + "/v1/audio/speech",
                                 speech_body(text, response_format=response_format, stream=False), headers)
        seconds = seconds_of(audio, response_format)
        print(f"  {response_format:<5} {len(audio):8d} bytes for {seconds:5.2f} s of speech: "
              f"{len(audio) / seconds / 1000:7.1f} kB/s")


class HealthProbe:
    def __init__(self, url: str, interval: float = 0.02) -> None:
        self.url, self.interval = url, interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            start = time.perf_counter()
            try:
                session.get(self.url, timeout=30)
            except requests.RequestException:
                pass
            self.samples.append(time.perf_counter() - start)
            self._stop.wait(self.interval)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def concurrent_streams(stack: BenchStack, token: str, levels: list[int]) -> None:
    print("\n3. concurrent streams while /api/tts/health/ is probed every 20 ms (target: health p99 < 50 ms)")
    headers = {"Authorization": f"Bearer {token}"}
    url = stack.base_url + "/v1/audio/speech"
    best = 0
    for level_no, clients in enumerate(levels):
        def one(i: int, level_no: int = level_no) -> tuple[float, float, bytes]:
            body = speech_body(korean_text(1000 + level_no * 100 + i, "s"), response_format="mp3", stream=True)
            return timed_post(requests.Session(), url, body, headers)

        with HealthProbe(stack.base_url + "/api/tts/health/") as probe:
            start = time.perf_counter()
            with ThreadPoolExecutor(max_workers=clients) as pool:
                outcomes = list(pool.map(lambda i: _guard(one, i), range(clients)))
            wall = time.perf_counter() - start
        errors = [o for o in outcomes if isinstance(o, str)]
        pct = percentiles(probe.samples)
        ok = pct["p99"] < 0.050 and not errors
        best = clients if ok else best
        lasts = [o[1] for o in outcomes if not isinstance(o, str)]
        print(f"  {clients:3d} streams: wall {wall:6.2f} s, last byte p50 "
              f"{percentiles(lasts, (50,))['p50'] if lasts else float('nan'):6.2f} s, errors {len(errors)}"
              f"{' ' + errors[0][:120] if errors else ''}; health n={len(probe.samples)} p50 "
              f"{pct['p50'] * 1000:6.1f} ms p99 {pct['p99'] * 1000:6.1f} ms  {'ok' if ok else 'OVER'}")
        if not ok:
            break
    print(f"  concurrent streams with health p99 < 50 ms: {best}"
          f"{' (the largest level tried; more may fit)' if best == levels[-1] else ''}")


def _guard(fn: Any, i: int) -> tuple[float, float, bytes] | str:
    try:
        return fn(i)
    except (requests.RequestException, RuntimeError) as exc:
        return f"{type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of part 1 (default 3)")
    parser.add_argument("--engine", default="gpt_sovits", help="our engine for part 1 (default gpt_sovits, tiny)")
    parser.add_argument("--skip-api-v2", action="store_true", help="part 1 without api_v2 (no GPU venv needed)")
    parser.add_argument("--skip-first-audio", action="store_true", help="only parts 2 and 3")
    parser.add_argument("--sentence-seconds", type=float, default=0.5,
                        help="part 3: seconds each sentence takes in the worker (default 0.5)")
    parser.add_argument("--streams", default="4,8,16,24,32,48,64",
                        help="concurrent-stream levels for part 3 (default 4,8,16,24,32,48,64)")
    args = parser.parse_args(argv)
    print(f"# first_audio  {machine_line()}")
    if not args.skip_first_audio:
        first_audio(args)
    # Real speech (the embedded Kokoro voice): a tone or the tiny model's noise would compress unlike speech.
    with BenchStack(database="sqlite", engine="neural_cpu", env={"THROTTLE_SPEECH_RATE": "100000/s"}) as stack:
        formats(stack, stack.client().token)
    # Streams that stay open: each sentence takes TONE_DELAY_SECONDS in one of 8 sleeping worker
    # processes (a GPU's pace, without taking the web's CPU), so the web holds every stream for seconds.
    with BenchStack(database="sqlite", engine="tone", worker_concurrency=8,
                    env={"THROTTLE_SPEECH_RATE": "100000/s", "TONE_DELAY_SECONDS": str(args.sentence_seconds)}
                    ) as stack:
        concurrent_streams(stack, stack.client().token, [int(n) for n in args.streams.split(",")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
