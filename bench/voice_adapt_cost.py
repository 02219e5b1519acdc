"""What one voice's style search costs on this box: seconds per step and peak memory, alone.

Runs the service's search (workers/voice_style, the code the batch-queue slices run) in a plain
process of the service's venv (no torch, no benchmark models), so its peak RSS is the worker's cost:
  python -m bench.voice_adapt_cost --reference my.wav --steps 10
Prints the load average before and after: on a shared box the seconds are upper bounds.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import soundfile as sf

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))

from workers.engines.neural_cpu import SAMPLE_RATE  # noqa: E402
from workers.engines.registry import engine_build  # noqa: E402
from workers.voice_match import reference_analysis  # noqa: E402
from workers.voice_style import search  # noqa: E402
from workers.voice_style.asr import ProbeRecogniser  # noqa: E402
from workers.voice_style.encoder import SpeakerEncoder  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, help="reference WAV (3-10 s)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--budget-s", type=float, default=600.0, help="the per-voice budget to size steps for")
    args = parser.parse_args(argv)
    os.environ.setdefault("CAREPILL_DATA_DIR", str(PROJECT_DIR / "var"))
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    engine = engine_build("neural_cpu")
    engine.load()
    encoder = SpeakerEncoder(threads=1)
    hearer = ProbeRecogniser(threads=1)
    loaded_s = time.perf_counter() - start
    samples, rate = sf.read(args.reference, dtype="float32", always_2d=False)
    start = time.perf_counter()
    analysis = reference_analysis(Path(args.reference))
    # As a slice does: scored after the engine's matching, the probe heard by the recogniser.
    post = search.matching_post(engine=engine, reference=analysis, sample_rate=SAMPLE_RATE)
    state = search.style_search_start(
        engine=engine, encoder=encoder, start_voice=engine.voice_for_reference(analysis),
        stock_voices=engine.candidate_voices, reference=samples, reference_rate=int(rate), steps_total=args.steps,
        seed=1, sample_rate=SAMPLE_RATE, post=post, hearer=hearer)
    search.style_search_result(engine=engine, state=state, sample_rate=SAMPLE_RATE)  # the end's cost, once
    fixed_s = time.perf_counter() - start
    start = time.perf_counter()
    while not search.style_search_done(state):
        search.style_search_step(engine=engine, encoder=encoder, state=state, sample_rate=SAMPLE_RATE, post=post,
                                 hearer=hearer)
    per_step = (time.perf_counter() - start) / args.steps
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    fits = int((args.budget_s - fixed_s) / per_step)
    print(f"engine+encoder+recogniser load {loaded_s:.1f} s (once per worker); start+result {fixed_s:.1f} s; "
          f"{per_step:.2f} s/step ({1 / per_step:.3f} steps/s) over {args.steps} steps; peak RSS {rss_mb:.0f} MB; "
          f"steps that fit {args.budget_s:.0f} s: {fits}; load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}; "
          f"{os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
