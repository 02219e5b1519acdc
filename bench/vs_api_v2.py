"""Our service vs the GPT-SoVITS `api_v2` server, side by side, same tiny model, same machine, one run.

Both serve the tiny random-weight GPT-SoVITS v2 model (built on the fly, CPU) with the same
reference clip (the one our upload stored, normalised, handed to api_v2 as a server path) and the
same run() parameters and seed:
  (a) our service: gunicorn + one `gpt_sovits` worker process (-c 1, the GPU worker's shape);
      each client POSTs a job, polls it and downloads its audio;
  (b) api_v2 (`gpt-sovits-api-v2`): each client POSTs /tts and gets the WAV back.
Runs, each with C concurrent clients (default 8):
  1. 50 distinct phrases, cold cache;
  2. 50 requests over 25 phrases, each twice (50% repeats), shuffled; new phrases, cold cache.
Reported: wall time, per-request latency percentiles, errors, and mix-ups: after the concurrent
runs every phrase is synthesised again one at a time (ours with use_cache=false) and the audio
compared byte for byte: with a fixed seed each phrase's audio is deterministic, so a concurrent
answer that differs from the sequential one carried someone else's audio.
While the distinct run is going, a probe measures our /api/tts/health/ and a job poll, and an
api_v2 route (GET /tts without text, answered 400), every 50 ms.

Targets (issue 7): never worse wall time on distinct phrases, >= 1.8x faster with 50% repeats,
zero mix-ups; our health and polling under 20 ms p99 while the worker is busy.

    .venv-gpu/bin/python bench/vs_api_v2.py
    .venv-gpu/bin/python bench/vs_api_v2.py --clients 16 --phrases 100
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import BenchClient, BenchStack, free_port, machine_line, percentiles  # noqa: E402

SEED = 1234
WORKER_MS: list[float] = []  # claimed -> finished of each synthesised job (list.append is thread-safe)
TIMES = ["아침 식사 후에", "점심 식사 전에", "저녁 식사 후에", "주무시기 전에", "오후 세 시에",
         "오전 열 시에", "산책을 다녀오신 후에", "일어나시자마자", "목욕하신 후에", "간식 드신 후에"]
MEDS = ["혈압약을", "당뇨약을", "비타민을", "관절약을", "위장약을", "수면제를", "심장약을", "진통제를",
        "갑상선약을", "철분제를"]


def phrases(count: int, offset: int = 0) -> list[str]:
    combos = list(itertools.product(TIMES, MEDS, ["드세요.", "챙겨 드세요.", "잊지 말고 드세요."]))
    random.Random(offset).shuffle(combos)
    return [f"{when} {what} {how}" for when, what, how in combos[offset:offset + count]]


# The run() parameters our engine sends (workers/engines/gpt_sovits.py), sent to api_v2 as well.
def api_v2_body(text: str, reference: Path) -> dict[str, Any]:
    return {"text": text, "text_lang": "ko", "ref_audio_path": str(reference), "prompt_text": "",
            "prompt_lang": "ko", "top_k": 15, "top_p": 1.0, "temperature": 1.0, "speed_factor": 1.0,
            "seed": SEED, "text_split_method": "cut5", "batch_size": 1, "parallel_infer": True,
            "repetition_penalty": 1.35, "media_type": "wav", "streaming_mode": False}


class ApiV2Server:
    def __init__(self, model: Path, work: Path) -> None:
        from workers.engines.gpt_sovits import BERT_DIR, HUBERT_DIR, V2_GPT, V2_SOVITS

        self.work = work
        self.port = free_port()
        config = work / "tts_infer.yaml"
        config.write_text(yaml.safe_dump({"custom": {
            "device": "cpu", "is_half": False, "version": "v2",
            "t2s_weights_path": str(model / V2_GPT), "vits_weights_path": str(model / V2_SOVITS),
            "cnhuhbert_base_path": str(model / HUBERT_DIR), "bert_base_path": str(model / BERT_DIR)}}))
        script = Path(sys.executable).with_name("gpt-sovits-api-v2")
        log = (work / "api_v2.log").open("wb")
        self.proc = subprocess.Popen([str(script), "-a", "127.0.0.1", "-p", str(self.port), "-c", str(config)],
                                     cwd=work, env={**os.environ, "GPT_SOVITS_DATA_DIR": str(work)},
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 180
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("api_v2 exited:\n" + (work / "api_v2.log").read_text()[-3000:])
            try:
                requests.get(self.url + "/tts", timeout=2)
                return
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError("api_v2 did not start") from None
                time.sleep(0.5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def ours_one(client: BenchClient, text: str, *, use_cache: bool = True) -> tuple[float, bytes | None, str]:
    start = time.perf_counter()
    response = client.post_job(text, language="ko", params={"seed": SEED}, use_cache=use_cache)
    if response.status_code not in (200, 202):
        return time.perf_counter() - start, None, f"HTTP {response.status_code}"
    body = response.json()
    if body["status"] not in ("succeeded", "failed"):
        # A considerate client (like clients/pi): 50 ms, growing 1.5x, at most 500 ms. Polling every
        # 20 ms from 8 clients took CPU from the model on this 2-core box.
        body = client.wait(body["id"], timeout=600, interval=0.05, backoff=1.5, max_interval=0.5)
    if body.get("processing_time_ms") is not None and not body["cache_hit"]:
        WORKER_MS.append(body["processing_time_ms"])
    if body["status"] != "succeeded":
        return time.perf_counter() - start, None, str(body["error"])
    if body["text"] != text:
        return time.perf_counter() - start, None, "job text differs"
    audio = client.session.get(body["audio_url"], timeout=60)
    return time.perf_counter() - start, audio.content if audio.ok else None, "" if audio.ok else "audio"


def api_one(session: requests.Session, url: str, text: str, reference: Path) -> tuple[float, bytes | None, str]:
    start = time.perf_counter()
    try:
        response = session.post(url + "/tts", json=api_v2_body(text, reference), timeout=600)
    except requests.RequestException as exc:
        return time.perf_counter() - start, None, type(exc).__name__
    ok = response.status_code == 200
    return time.perf_counter() - start, response.content if ok else None, "" if ok else f"HTTP {response.status_code}"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pcm_digest(wav: bytes) -> str:
    """Digest of the samples (headers may differ between the two servers' WAV writers)."""
    import io

    import soundfile

    data, rate = soundfile.read(io.BytesIO(wav), dtype="int16")
    return hashlib.sha256(data.tobytes() + str(rate).encode()).hexdigest()


def run_concurrent(fn: Any, texts: list[str], clients: int) -> tuple[float, list[tuple[str, float, bytes | None, str]]]:
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(lambda t: (t, *fn(t)), texts))
    return time.perf_counter() - start, results


class Probe:
    """GETs `urls` in turn every `interval` s from its own thread; latencies per URL."""

    def __init__(self, urls: dict[str, str], headers: dict[str, str] | None = None, interval: float = 0.05) -> None:
        self.urls, self.headers, self.interval = urls, headers or {}, interval
        self.samples: dict[str, list[float]] = {name: [] for name in urls}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            for name, url in self.urls.items():
                start = time.perf_counter()
                try:
                    session.get(url, headers=self.headers, timeout=30)
                except requests.RequestException:
                    pass
                self.samples[name].append(time.perf_counter() - start)
            self._stop.wait(self.interval)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def report(label: str, wall: float, results: list[tuple[str, float, bytes | None, str]]) -> None:
    latencies = [r[1] for r in results]
    errors = [r[3] for r in results if r[3]]
    pct = percentiles(latencies)
    print(f"  {label:<8} wall {wall:6.2f} s  p50 {pct['p50']:6.2f} s  p95 {pct['p95']:6.2f} s  "
          f"p99 {pct['p99']:6.2f} s  errors {len(errors)}{' ' + str(sorted(set(errors))) if errors else ''}")


def mixups(results: list[tuple[str, float, bytes | None, str]], reference: dict[str, str]) -> int:
    return sum(1 for text, _, audio, _ in results if audio is not None and pcm_digest(audio) != reference[text])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--phrases", type=int, default=50, help="requests per run (default 50)")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--no-mixup-check", action="store_true", help="skip the sequential reference passes")
    parser.add_argument("--worker-processes", type=int, default=1,
                        help="our worker's processes (-c; default 1, the GPU worker's shape; the CPU worker "
                             "of compose.yaml runs one per core)")
    parser.add_argument("--worker-threads", type=int, default=None,
                        help="GPTSOVITS_TORCH_THREADS for each of our worker processes (default: the "
                             "engine's, 1 on CPU); api_v2 keeps torch's default (one per core)")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-vs-api-v2-"))
    model = work / "model"
    subprocess.run([sys.executable, "-m", "tests.gpu_stack.tiny_model", str(model)], check=True, cwd=ROOT,
                   capture_output=True)
    print(f"# vs_api_v2  {machine_line()}  {args.clients} clients, tiny GPT-SoVITS v2 on CPU, db={args.db}, "
          f"our worker -c {args.worker_processes} x {args.worker_threads or 'default'} torch threads")
    env = {"GPTSOVITS_MODEL_PATH": str(model), "GPTSOVITS_DEVICE": "cpu", "CELERY_WORKER_MAX_TASKS_PER_CHILD": "100000"}
    if args.worker_threads:
        env["GPTSOVITS_TORCH_THREADS"] = str(args.worker_threads)
    distinct = phrases(args.phrases, offset=0)
    half = phrases(args.phrases // 2, offset=args.phrases)
    repeated = half * 2
    random.Random(7).shuffle(repeated)
    with BenchStack(database=args.db, engine="gpt_sovits", env=env, worker_concurrency=args.worker_processes) as stack:
        client = stack.client()
        reference = next((stack.tmp / "media" / "voices").rglob("*.wav"))
        api = ApiV2Server(model, work)
        try:
            session = requests.Session()
            # Warm both (first use builds the Korean front end and the reference's prompt cache).
            ours_one(client, "준비 운동 문장입니다.")
            api_one(session, api.url, "준비 운동 문장입니다.", reference)

            def ours(text: str) -> tuple[float, bytes | None, str]:
                return ours_one(BenchClient(stack.base_url, client.token), text)

            def theirs(text: str) -> tuple[float, bytes | None, str]:
                return api_one(requests.Session(), api.url, text, reference)

            worker_pids = [int(w["pid"]) for w in stack.workers() if w.get("ready")]
            rss_start = {"ours (workers)": sum(map(rss_mb, worker_pids)), "api_v2": rss_mb(api.proc.pid)}
            probe_job = client.post_job("준비 운동 문장입니다.", language="ko", params={"seed": SEED}).json()["id"]
            print(f"\n1. {len(distinct)} distinct phrases")
            with Probe({"health": stack.base_url + "/api/tts/health/",
                        "poll": f"{stack.base_url}/api/tts/jobs/{probe_job}/"},
                       headers={"Authorization": f"Token {client.token}"}) as ours_probe:
                ours_wall, ours_res = run_concurrent(ours, distinct, args.clients)
            report("ours", ours_wall, ours_res)
            print(f"  ours: worker time per synthesis (claimed -> finished) median "
                  f"{sorted(WORKER_MS)[len(WORKER_MS) // 2] / 1000:.2f} s over {len(WORKER_MS)} jobs")
            with Probe({"other route": api.url + "/tts"}) as api_probe:
                api_wall, api_res = run_concurrent(theirs, distinct, args.clients)
            report("api_v2", api_wall, api_res)
            print(f"  wall ratio api_v2/ours {api_wall / ours_wall:.2f}x (target >= 1.0: never worse)")
            for name, values in {**ours_probe.samples, **{"api_v2 " + k: v for k, v in api_probe.samples.items()}
                                 }.items():
                pct = percentiles(values)
                print(f"  while synthesising, {name:<18} n={len(values):4d}  p50 {pct['p50'] * 1000:7.1f} ms  "
                      f"p99 {pct['p99'] * 1000:7.1f} ms")

            print(f"\n2. {len(repeated)} requests, {len(half)} phrases each twice (50% repeats)")
            ours_wall2, ours_res2 = run_concurrent(ours, repeated, args.clients)
            report("ours", ours_wall2, ours_res2)
            api_wall2, api_res2 = run_concurrent(theirs, repeated, args.clients)
            report("api_v2", api_wall2, api_res2)
            print(f"  wall ratio api_v2/ours {api_wall2 / ours_wall2:.2f}x (target >= 1.8)")

            rss_end = {"ours (workers)": sum(map(rss_mb, worker_pids)), "api_v2": rss_mb(api.proc.pid)}
            print("\nRSS of the process holding the model, after warm-up -> after both runs (same inputs):")
            for name in rss_start:
                print(f"  {name:<14} {rss_start[name]:7.1f} -> {rss_end[name]:7.1f} MB "
                      f"({rss_end[name] - rss_start[name]:+.1f} MB)")

            if not args.no_mixup_check:
                texts = sorted(set(distinct) | set(half))
                # The two sequential reference passes are not timed: run them side by side.
                with ThreadPoolExecutor(max_workers=2) as pool:
                    ours_pass = pool.submit(
                        lambda: {t: pcm_digest(ours_one(client, t, use_cache=False)[1]) for t in texts})
                    api_pass = pool.submit(
                        lambda: {t: pcm_digest(api_one(session, api.url, t, reference)[1]) for t in texts})
                    ours_ref, api_ref = ours_pass.result(), api_pass.result()
                same = sum(ours_ref[t] == api_ref[t] for t in texts)
                print(f"\nmix-ups (concurrent answer != sequential answer for the same phrase): "
                      f"ours {mixups(ours_res, ours_ref) + mixups(ours_res2, ours_ref)}, "
                      f"api_v2 {mixups(api_res, api_ref) + mixups(api_res2, api_ref)} "
                      f"(of {len(ours_res) + len(ours_res2)} each); identical audio from both servers for "
                      f"{same}/{len(texts)} phrases")
        finally:
            api.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
