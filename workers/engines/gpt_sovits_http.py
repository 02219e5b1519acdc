"""GPT-SoVITS through a separately running `api_v2` server (upstream `api_v2.py` or cpufast's
`gpt-sovits-api-v2` console script), for people who already run one.

The server reads the reference clip FROM ITS OWN DISK: `ref_audio_path` is a path, not an upload.
The worker sends the path of the voice's clip under MEDIA_ROOT as it sees it, so the server must
see the same file at the same path (same host, or MEDIA_ROOT mounted at the same path in both
containers). Never expose that server beyond the worker's host: its `/control` endpoint
(restart/exit) and `/set_*_weights` have no authentication.

Config: GPTSOVITS_API_URL (default http://127.0.0.1:9880), GPTSOVITS_API_TIMEOUT (seconds, default
300), GPTSOVITS_API_MODEL_VERSION (a label for the weights that server has loaded; we cannot
fingerprint them from here, so change it whenever you change the server's weights, or cached clips
made with the old weights keep being served).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import requests

from carepill_config import ConfigError, Env
from workers.engines.base import EngineError, EngineNotReady, EngineTransientError

DEFAULT_API_URL = "http://127.0.0.1:9880"
DEFAULT_TIMEOUT_S = 300.0


class GptSovitsHttpEngine:
    name: ClassVar[str] = "gpt_sovits_http"

    def __init__(self) -> None:
        self.model_version = ""
        self.device = "remote"
        self.base_url = ""
        self.timeout_s = DEFAULT_TIMEOUT_S
        self.load_count = 0
        self._session: requests.Session | None = None

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def load(self) -> None:
        env = Env()
        try:
            self.base_url = env.url("GPTSOVITS_API_URL", DEFAULT_API_URL, schemes=["http", "https"]).rstrip("/")
            self.timeout_s = env.float("GPTSOVITS_API_TIMEOUT", DEFAULT_TIMEOUT_S, minimum=0.001)
            model_version = env.str("GPTSOVITS_API_MODEL_VERSION", "")
        except ConfigError as exc:
            raise EngineNotReady("engine_bad_config", str(exc)) from None
        session = requests.Session()
        try:
            # FastAPI's schema page: answered without touching the model, so a cheap "is it up" probe
            # (a bare GET /tts answers 500 on api_v2).
            response = session.get(f"{self.base_url}/openapi.json", timeout=10)
        except requests.RequestException as exc:
            raise EngineNotReady(
                "engine_unavailable", f"GPT-SoVITS api_v2 server at {self.base_url} is not reachable: {exc}"
            ) from exc
        if response.status_code >= 500 or "/tts" not in response.text:
            raise EngineNotReady(
                "engine_unavailable",
                f"{self.base_url} does not look like a GPT-SoVITS api_v2 server "
                f"(GET /openapi.json answered {response.status_code})",
            )
        self.model_version = model_version or f"gpt_sovits_http:{self.base_url}"
        self._session = session
        self.load_count += 1

    def synthesize(
        self,
        text: str,
        language: str,
        reference: Path,
        transcript: str | None,
        params: dict[str, Any],
    ) -> tuple[np.ndarray, int]:
        if self._session is None:
            raise EngineNotReady("engine_not_loaded", "GPT-SoVITS HTTP engine used before load()")
        payload: dict[str, Any] = {
            "text": text,
            "text_lang": language,
            "ref_audio_path": str(reference),  # read by the server from its own disk
            "prompt_text": (transcript or "").strip(),
            # Required even when prompt_text is empty: without it the server answers 500.
            "prompt_lang": str(params.get("prompt_language") or language),
            "media_type": "wav",
            "streaming_mode": False,
            "text_split_method": "cut5",
            "batch_size": 1,
        }
        for ours, theirs, cast in (
            ("top_k", "top_k", int),
            ("top_p", "top_p", float),
            ("temperature", "temperature", float),
            ("speed", "speed_factor", float),
            ("seed", "seed", int),
        ):
            if params.get(ours) is not None:
                payload[theirs] = cast(params[ours])
        try:
            response = self._session.post(f"{self.base_url}/tts", json=payload, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise EngineTransientError(
                "engine_unavailable", f"GPT-SoVITS api_v2 server at {self.base_url} failed: {exc}"
            ) from exc
        if response.status_code >= 500:
            raise EngineTransientError(
                "engine_unavailable",
                f"GPT-SoVITS api_v2 server answered {response.status_code}: {_server_message(response)}",
            )
        if response.status_code == 400:
            raise EngineError("engine_bad_input", _server_message(response))
        if response.status_code != 200:
            raise EngineError(
                "engine_failed", f"GPT-SoVITS api_v2 answered {response.status_code}: {_server_message(response)}"
            )
        return _decode_wav(response.content)


def _server_message(response: requests.Response) -> str:
    """api_v2's errors are JSON {"message", "Exception"?}; fall back to the raw body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason
    if isinstance(body, dict):
        message = str(body.get("message") or "")
        detail = body.get("Exception")
        return f"{message}: {detail}" if detail else message or str(body)[:500]
    return str(body)[:500]


def _decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        samples, sample_rate = sf.read(io.BytesIO(data), dtype="int16", always_2d=False)
    except RuntimeError as exc:
        raise EngineError("engine_failed", f"GPT-SoVITS api_v2 returned undecodable audio: {exc}") from exc
    if samples.ndim > 1:
        samples = samples.mean(axis=1).astype(np.int16)
    # When synthesis fails inside the server after the response has started, api_v2 (which takes
    # only the first chunk of the generator) answers 200 with the pipeline's failure placeholder:
    # exactly 1 s of silence at 16 kHz. v2 models speak at 32 kHz, so this cannot be real output.
    if sample_rate == 16000 and samples.size == 16000 and not samples.any():
        raise EngineError("engine_failed", "GPT-SoVITS api_v2 synthesis failed (see the server's log)")
    return samples, int(sample_rate)
