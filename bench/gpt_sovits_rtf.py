"""Real-time factor and peak GPU memory of the in-process GPT-SoVITS engine on fixed phrases.

RTF = synthesis wall time / duration of the audio produced (lower is faster; < 1 is faster than
real time). Uses the weights under GPTSOVITS_MODEL_PATH (default models/gpt-sovits-v2/); when they
are missing it builds the tiny random-weight test model in a temp dir (its RTF says nothing about
real weights, only that the pipeline runs) and says so.

    .venv-gpu/bin/python bench/gpt_sovits_rtf.py                      # cuda if available
    GPTSOVITS_DEVICE=cpu .venv-gpu/bin/python bench/gpt_sovits_rtf.py --rounds 1
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PHRASES: list[tuple[str, str]] = [
    ("ko", "아침 식사 후에 혈압약 한 알을 드세요."),
    ("ko", "오늘 저녁 여덟 시에 당뇨약을 드실 시간입니다. 물과 함께 드세요."),
    ("ko", "약을 드셨으면 확인 버튼을 눌러 주세요."),
    ("en", "It is time to take your blood pressure medicine."),
    ("en", "Please take two tablets with a full glass of water after dinner."),
]
TRANSCRIPT = "참고 음성 문장입니다."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, help="3-10 s reference WAV (default: a synthetic 4 s tone)")
    parser.add_argument("--transcript", default=TRANSCRIPT, help="reference transcript ('' = reference-free)")
    parser.add_argument("--rounds", type=int, default=2, help="timed passes over the phrases (default 2)")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args(argv)

    from tests.gpu_stack.tiny_model import build_tiny_model, write_reference_wav
    from workers.engines.base import EngineNotReady
    from workers.engines.gpt_sovits import GptSovitsEngine

    tmp = Path(tempfile.mkdtemp(prefix="gsv-bench-"))
    reference = args.reference or write_reference_wav(tmp / "reference.wav")
    engine = GptSovitsEngine()
    t0 = time.perf_counter()
    try:
        engine.load()
        weights = "real weights"
    except EngineNotReady as exc:
        if exc.code != "engine_weights_missing":
            raise
        print(f"note: {exc.message}\nnote: using the TINY random-weight model (RTF not meaningful)")
        os.environ["GPTSOVITS_MODEL_PATH"] = str(build_tiny_model(tmp / "tiny"))
        engine = GptSovitsEngine()
        t0 = time.perf_counter()
        engine.load()
        weights = "tiny random weights"
    load_s = time.perf_counter() - t0

    import torch

    cuda = engine.device.startswith("cuda")
    transcript = args.transcript or None
    # One untimed pass: first use builds the language front ends and the reference's prompt cache.
    for lang, text in PHRASES[:2]:
        engine.synthesize(text, lang, reference, transcript, {"seed": args.seed})
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()

    total_wall = total_audio = 0.0
    print(f"{'lang':<4} {'audio s':>8} {'wall s':>8} {'RTF':>7}  text")
    for _ in range(args.rounds):
        for lang, text in PHRASES:
            start = time.perf_counter()
            samples, sr = engine.synthesize(text, lang, reference, transcript, {"seed": args.seed})
            if cuda:
                torch.cuda.synchronize()
            wall = time.perf_counter() - start
            audio = samples.size / sr
            total_wall += wall
            total_audio += audio
            print(f"{lang:<4} {audio:8.2f} {wall:8.3f} {wall / audio:7.3f}  {text[:40]}")
    peak = f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if cuda else "n/a"
    print(
        f"\nmodel {engine.model_version} ({weights}) on {engine.device}, load {load_s:.1f} s\n"
        f"RTF {total_wall / total_audio:.3f} over {total_audio:.1f} s of audio "
        f"({args.rounds} x {len(PHRASES)} phrases); peak GPU memory {peak}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
