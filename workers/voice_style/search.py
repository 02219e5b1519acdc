"""A random walk over an offset added to every row of a Kokoro style table, scored by a speaker encoder.

After KVoiceWalk: no training, one synthesis per step. The walk starts at the stock voice or blend
that today's matching picks for the speaker (NeuralCpuEngine.voice_for_reference), so it can only
end closer to the speaker by the encoder than where it began. A step draws a 256-value offset
around the best one so far (scaled per dimension by how much the stock voices differ there, so a
step moves along directions voices actually vary in), synthesises the fixed probe sentences with
it, and keeps it if the encoder's cosine to the reference is higher AND the clarity check passes.

The state is a plain dict of numpy arrays, saved as .npz by the caller between slices; every
random draw is seeded by (seed, step), so a slice that is cut short and run again takes the same
steps: resuming is exact.

Trust region (walk-2): the walk must not leave the neighbourhood of real voices. The benchmark showed
the walk-1 search fooling its own encoder: on a real female speaker its d-vector score kept rising
while an independent encoder (resemblyzer) rose, then collapsed below the start voice by step 60,
with Korean CER +0.10 and MOS 3.5, and no candidate failed the clarity check. Every candidate offset
is therefore projected, before it is synthesised, into (1) the per-dimension box the stock voices
span (their mean rows' min..max, widened by half a stock spread), and (2) a ball of radius
`radius` (default 1.0) in units of the stock spread: about as far as a stock voice lies from the
blend of the others. A style vector outside that region is a voice no recording produced; what the
encoder likes there is more likely a flaw of the encoder than the speaker. Projection (not
rejection) keeps every step's synthesis useful: the walk slides along the boundary.

Agreement (walk-3): the trust region did not stop the walk fooling its encoder (on slt its own score
rose from 0.33 to 0.68 while the independent encoder fell from 0.64 to 0.55). A candidate is now kept
only if (1) the encoder's score of what the engine will really speak (Kokoro's output after the
engine's matching, `post`) rose, (2) an encoder-free measure (timbre.py: mel-cepstral statistics)
says it did not move away from the speaker, and (3) Whisper-base (asr.py) understands the probe at
least as well as the start voice's rendering. A walk whose candidates never win every judge stays at
its start (`accepted` 0), and the service then keeps today's matching for the voice ("unchanged").

Clarity (Korean intelligibility) is guarded in the worker by a cheap check against the start
voice's own rendering of the same sentences: a candidate whose duration, voiced share or number
of syllable nuclei drifts far from it is rejected, whatever its score (a style vector that fools the
encoder usually slurs, drops or drags syllables first). The benchmark measures the real CER.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Protocol

import numpy as np

from workers.voice_style.asr import hangul_errors
from workers.voice_style.encoder import SpeakerEncoder, cosine
from workers.voice_style.timbre import timbre_distance, timbre_profile

SEARCH_VERSION = "walk-3"
# Two short reminder sentences: one synthesis (~3.5 s of audio) per step.
PROBE_TEXT = "약 드실 시간입니다. 물 한 컵과 함께 드세요."
PROBE_LANGUAGE = "ko"
_SIGMA_START, _SIGMA_MIN, _SIGMA_MAX = 0.35, 0.05, 1.0
# Clarity bounds against the start voice's rendering of the probe.
_DURATION_RATIO = (0.8, 1.25)
_VOICED_DROP_MAX = 0.15
_NUCLEI_RATIO = (0.75, 1.33)
# Trust region (see the module's docstring): the offset's RMS in stock-spread units, and the margin
# (in the same units) by which a dimension may leave the stock voices' range.
TRUST_RADIUS = 1.0
_BOX_MARGIN = 0.5


class StyleEngine(Protocol):
    def style_render(self, *, text: str, language: str, style: np.ndarray, speed: float = 1.0) -> np.ndarray: ...

    def style_of(self, voice: str) -> np.ndarray: ...

    def style_match(self, audio: np.ndarray, *, reference: Any, own: Any) -> np.ndarray: ...


class ProbeHearer(Protocol):
    def hear(self, audio: np.ndarray, sample_rate: int, *, language: str) -> str: ...


class StyleSearchError(RuntimeError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def clarity_measure(audio: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Duration, voiced share of the loud frames (WORLD DIO) and the count of syllable nuclei
    (peaks of the 50 ms-smoothed loudness at least 6 dB above their surroundings)."""
    from workers.voice_match import _as_world_input, _f0

    x = _as_world_input(audio)
    if x.size < sample_rate // 4:
        return {"duration_s": x.size / sample_rate, "voiced": 0.0, "nuclei": 0.0}
    hop = sample_rate // 200  # 5 ms, the F0 track's frame period
    frames = x[: x.size // hop * hop].reshape(-1, hop)
    level_db = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-10)
    loud = level_db > level_db.max() - 35.0
    f0, _ = _f0(x, sample_rate)
    n = min(f0.size, loud.size)
    voiced = float(np.mean(f0[:n][loud[:n]] > 0)) if loud[:n].any() else 0.0
    kernel = np.hanning(11)
    smooth = 10.0 * np.log10(np.convolve(np.mean(frames**2, axis=1), kernel / kernel.sum(), mode="same") + 1e-10)
    nuclei = 0
    for i in range(1, smooth.size - 1):
        if smooth[i] >= smooth[i - 1] and smooth[i] > smooth[i + 1] and smooth[i] > smooth.max() - 30.0:
            lo = smooth[max(0, i - 40) : i].min(initial=smooth[i])
            hi = smooth[i + 1 : i + 41].min(initial=smooth[i])
            if smooth[i] - max(lo, hi) >= 6.0:
                nuclei += 1
    return {"duration_s": x.size / sample_rate, "voiced": voiced, "nuclei": float(nuclei)}


def clarity_problem(measure: dict[str, float], baseline: dict[str, float]) -> str | None:
    """Why a candidate's rendering is less clear than the start voice's, or None."""
    ratio = measure["duration_s"] / max(baseline["duration_s"], 1e-6)
    if not _DURATION_RATIO[0] <= ratio <= _DURATION_RATIO[1]:
        return f"duration x{ratio:.2f}"
    if measure["voiced"] < baseline["voiced"] - _VOICED_DROP_MAX:
        return f"voiced {measure['voiced']:.2f} < {baseline['voiced']:.2f}"
    if baseline["nuclei"] > 0:
        nuclei_ratio = measure["nuclei"] / baseline["nuclei"]
        if not _NUCLEI_RATIO[0] <= nuclei_ratio <= _NUCLEI_RATIO[1]:
            return f"syllable nuclei x{nuclei_ratio:.2f}"
    return None


def matching_post(*, engine: StyleEngine, reference: Any, sample_rate: int) -> Callable[[np.ndarray], np.ndarray]:
    """Kokoro's raw output -> what the engine will really speak for this reference (its matching,
    judged on the candidate's own WORLD analysis): the search scores that, as the listener hears it."""
    from workers.voice_match import voice_analyse

    def post(audio: np.ndarray) -> np.ndarray:
        return engine.style_match(audio, reference=reference, own=voice_analyse(audio, sample_rate))

    return post


def style_search_start(
    *,
    engine: StyleEngine,
    encoder: SpeakerEncoder,
    start_voice: str,
    stock_voices: list[str],
    reference: np.ndarray,
    reference_rate: int,
    steps_total: int,
    seed: int,
    sample_rate: int,
    post: Callable[[np.ndarray], np.ndarray] | None = None,
    radius: float = TRUST_RADIUS,
    hearer: ProbeHearer | None = None,
) -> dict[str, Any]:
    """The search's first state: the start voice's table, the target d-vector, the baseline.

    `post`, when given, turns Kokoro's raw output into what the engine will really speak (its
    matching: envelope filter or WORLD) before it is scored; clarity is judged on the raw output.
    Pass the same `post` to every step. `radius`: the trust region's radius (module docstring); 0 or
    less turns the trust region off (the walk-1 behaviour, for the benchmark's comparison).
    `hearer`: the speech recogniser of the intelligibility check (asr.py); pass the same to every step
    (None: no such check, as in walk-2)."""
    if steps_total < 1:
        raise StyleSearchError("bad_budget", "steps_total must be >= 1")
    if not math.isfinite(radius):
        raise StyleSearchError("bad_budget", "radius must be finite")
    base = engine.style_of(start_voice)
    stock = np.stack([engine.style_of(v).reshape(-1, base.shape[-1]) for v in stock_voices])
    # Per-dimension spread between the stock voices (over every row): the walk's step scale.
    scale = stock.std(axis=0).mean(axis=0).astype(np.float32) + 1e-4
    # The box the stock voices span, as bounds on the offset (added to every row of base).
    means = stock.mean(axis=1)
    base_mean = base.reshape(-1, base.shape[-1]).mean(axis=0)
    low = (means.min(axis=0) - _BOX_MARGIN * scale - base_mean).astype(np.float32)
    high = (means.max(axis=0) + _BOX_MARGIN * scale - base_mean).astype(np.float32)
    target = encoder.embed(reference, reference_rate)
    try:
        target_timbre = timbre_profile(reference, reference_rate)
    except ValueError as exc:
        raise StyleSearchError("reference_unusable", f"reference: {exc}") from exc
    audio = engine.style_render(text=PROBE_TEXT, language=PROBE_LANGUAGE, style=base)
    if audio.size < sample_rate // 2:
        raise StyleSearchError("probe_silent", "the start voice rendered no audio")
    baseline = clarity_measure(audio, sample_rate)
    score = cosine(encoder.embed(post(audio) if post else audio, sample_rate), target)
    # -1: no recogniser, the check is off for the whole search.
    errors = hangul_errors(PROBE_TEXT, hearer.hear(audio, sample_rate, language=PROBE_LANGUAGE)) if hearer else -1
    timbre = timbre_distance(timbre_profile(audio, sample_rate), target_timbre)
    return {
        "version": np.array(SEARCH_VERSION),
        "start_voice": np.array(start_voice),
        "base": base.astype(np.float32),
        "scale": scale,
        "offset_low": np.minimum(low, 0.0).astype(np.float32),
        "offset_high": np.maximum(high, 0.0).astype(np.float32),
        "radius": np.float64(radius),
        "projected": np.int64(0),
        "target": target,
        "target_timbre": target_timbre,
        "start_timbre": np.float64(timbre),
        "best_timbre": np.float64(timbre),
        "baseline_errors": np.int64(errors),
        "rejected_timbre": np.int64(0),
        "rejected_asr": np.int64(0),
        "best_offset": np.zeros(base.shape[-1], np.float32),
        "start_score": np.float64(score),
        "best_score": np.float64(score),
        "sigma": np.float64(_SIGMA_START),
        "step": np.int64(0),
        "steps_total": np.int64(steps_total),
        "seed": np.int64(seed),
        "accepted": np.int64(0),
        "rejected_clarity": np.int64(0),
        "baseline": np.array([baseline["duration_s"], baseline["voiced"], baseline["nuclei"]], np.float64),
    }


def trust_region_project(offset: np.ndarray, state: dict[str, Any]) -> tuple[np.ndarray, bool]:
    """The offset moved into the trust region (box, then ball), and whether it had to move."""
    radius = float(state["radius"])
    if radius <= 0:
        return offset, False
    inside = np.clip(offset, state["offset_low"], state["offset_high"])
    z_rms = float(np.sqrt(np.mean((inside / state["scale"]) ** 2)))
    if z_rms > radius:
        inside = inside * (radius / z_rms)
    moved = not np.array_equal(inside, offset)
    return inside.astype(np.float32), moved


def trust_distance(offset: np.ndarray, state: dict[str, Any]) -> float:
    """The offset's RMS in stock-spread units (the trust region's radius is in the same units)."""
    return float(np.sqrt(np.mean((np.asarray(offset) / state["scale"]) ** 2)))


def style_search_step(
    *,
    engine: StyleEngine,
    encoder: SpeakerEncoder,
    state: dict[str, Any],
    sample_rate: int,
    post: Callable[[np.ndarray], np.ndarray] | None = None,
    hearer: ProbeHearer | None = None,
) -> None:
    """One candidate: draw, synthesise, score, check, keep or drop. Mutates `state`.

    Kept only if the encoder's score rose, the timbre distance did not, the cheap clarity checks
    pass and (with a hearer) the probe is heard with no more errors than the start voice's."""
    step = int(state["step"])
    if step >= int(state["steps_total"]):
        return
    rng = np.random.default_rng([int(state["seed"]), step])
    sigma = float(state["sigma"])
    candidate = (state["best_offset"] + sigma * state["scale"] * rng.standard_normal(state["scale"].shape)).astype(
        np.float32
    )
    candidate, moved = trust_region_project(candidate, state)
    if moved:
        state["projected"] = np.int64(int(state["projected"]) + 1)
    style = state["base"] + candidate
    audio = engine.style_render(text=PROBE_TEXT, language=PROBE_LANGUAGE, style=style)
    accepted = False
    if audio.size >= sample_rate // 2:
        score = cosine(encoder.embed(post(audio) if post else audio, sample_rate), state["target"])
        if score > float(state["best_score"]):
            # The cheapest disagreement first: timbre (numpy), then clarity (WORLD), then the recogniser.
            timbre = timbre_distance(timbre_profile(audio, sample_rate), state["target_timbre"])
            duration, voiced, nuclei = (float(v) for v in state["baseline"])
            if timbre > float(state["best_timbre"]):
                _count(state, "rejected_timbre")
            elif clarity_problem(clarity_measure(audio, sample_rate),
                                 {"duration_s": duration, "voiced": voiced, "nuclei": nuclei}) is not None:
                _count(state, "rejected_clarity")
            elif (hearer is not None and int(state["baseline_errors"]) >= 0
                  and hangul_errors(PROBE_TEXT, hearer.hear(audio, sample_rate, language=PROBE_LANGUAGE))
                  > int(state["baseline_errors"])):
                _count(state, "rejected_asr")
            else:
                state["best_offset"] = candidate
                state["best_score"] = np.float64(score)
                state["best_timbre"] = np.float64(timbre)
                _count(state, "accepted")
                accepted = True
    # Widen after a success, narrow after a failure (a 1/5th-success-rule flavour).
    sigma = sigma * (1.5 if accepted else 0.92)
    state["sigma"] = np.float64(min(_SIGMA_MAX, max(_SIGMA_MIN, sigma)))
    state["step"] = np.int64(step + 1)


def _count(state: dict[str, Any], key: str) -> None:
    state[key] = np.int64(int(state[key]) + 1)


def style_search_done(state: dict[str, Any]) -> bool:
    return int(state["step"]) >= int(state["steps_total"])


def style_search_progress(state: dict[str, Any]) -> float:
    return min(1.0, int(state["step"]) / max(1, int(state["steps_total"])))


def style_search_result(*, engine: StyleEngine, state: dict[str, Any], sample_rate: int) -> tuple[np.ndarray, dict]:
    """The best table and the WORLD analysis of its rendering (the engine's envelope filter needs it)."""
    from workers.voice_match import voice_analyse

    style = (state["base"] + state["best_offset"]).astype(np.float32)
    audio = engine.style_render(text=PROBE_TEXT, language=PROBE_LANGUAGE, style=style)
    return style, asdict(voice_analyse(audio, sample_rate))


def style_search_dumps(state: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **state)
    return buf.getvalue()


def style_search_loads(data: bytes) -> dict[str, Any]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            state = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise StyleSearchError("state_unreadable", f"search state unreadable: {exc}") from exc
    if str(state.get("version")) != SEARCH_VERSION:
        raise StyleSearchError("state_version", f"search state version {state.get('version')!s}")
    for key in ("base", "best_offset", "scale", "target", "target_timbre", "offset_low", "offset_high"):
        if not np.all(np.isfinite(state[key])):
            raise StyleSearchError("state_unreadable", f"search state {key} not finite")
    return state


def style_search_summary(state: dict[str, Any]) -> dict[str, Any]:
    return {
        "start_voice": str(state["start_voice"]),
        "start_score": round(float(state["start_score"]), 4),
        "best_score": round(float(state["best_score"]), 4),
        "steps": int(state["step"]),
        "accepted": int(state["accepted"]),
        "rejected_clarity": int(state["rejected_clarity"]),
        "rejected_timbre": int(state["rejected_timbre"]),
        "rejected_asr": int(state["rejected_asr"]),
        "start_timbre": round(float(state["start_timbre"]), 4),
        "best_timbre": round(float(state["best_timbre"]), 4),
        "probe_errors_start": int(state["baseline_errors"]),
        "projected": int(state["projected"]),
        "radius": round(float(state["radius"]), 3),
        "distance": round(trust_distance(state["best_offset"], state), 3),
        "sigma": round(float(state["sigma"]), 4) if math.isfinite(float(state["sigma"])) else None,
    }
