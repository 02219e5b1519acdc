"""Decode, validate and normalise an uploaded reference clip.

Whether a file is audio is decided by decoding it (libsndfile), never by its name or
declared content type. Limits are checked from the header before the samples are read,
so a tiny file that claims hours of audio is refused without allocating memory for it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pyloudnorm
import soundfile
import soxr
from django.conf import settings

from voice_tts.errors import ServiceError

_MAX_CHANNELS = 8
_MIN_INPUT_RATE = 8000
_MAX_INPUT_RATE = 192000
_FRAME_SECONDS = 0.02
# A frame is speech if it is within this many dB of the loudest frame...
_TRIM_RELATIVE_DB = 40.0
# ...and above this absolute level (dBFS); below it everything is silence.
_SILENCE_FLOOR_DBFS = -60.0
# Keep a little air around the speech so that onsets are not clipped.
_TRIM_PAD_SECONDS = 0.05
_PEAK_CEILING = 10 ** (-1.0 / 20)  # -1 dBFS
# Decoded-size budget, in samples over all channels, per second of VOICE_MAX_DECODE_SECONDS:
# 192 kHz stereo. A tiny FLAC of 8 channels at 192 kHz would otherwise pass the duration
# cap and still decode to ~360 MB of float32.
_MAX_DECODE_SAMPLES_PER_SECOND = 192000 * 2
# Decode in blocks and keep only the mono mix, so memory is bounded by the mono length.
_DECODE_BLOCK_FRAMES = 65536


@dataclass(frozen=True)
class ReferenceClip:
    samples: np.ndarray  # mono int16
    sample_rate: int

    @property
    def duration_seconds(self) -> float:
        return len(self.samples) / self.sample_rate

    def wav_bytes(self) -> bytes:
        buffer = io.BytesIO()
        soundfile.write(buffer, self.samples, self.sample_rate, format="WAV", subtype="PCM_16")
        return buffer.getvalue()


def reference_clip_decode(*, data: bytes) -> tuple[np.ndarray, int]:
    """Return float32 mono samples and the input rate, or refuse with a 415/400."""
    if not data:
        raise ServiceError("empty_file", "The uploaded file is empty.")
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as audio:
            rate, channels, frames = audio.samplerate, audio.channels, audio.frames
            if not (_MIN_INPUT_RATE <= rate <= _MAX_INPUT_RATE):
                raise ServiceError(
                    "unsupported_sample_rate",
                    f"Sample rate {rate} Hz is outside {_MIN_INPUT_RATE}-{_MAX_INPUT_RATE} Hz.",
                )
            if not (1 <= channels <= _MAX_CHANNELS):
                raise ServiceError("unsupported_channels", f"{channels} channels; at most {_MAX_CHANNELS}.")
            max_frames = int(settings.VOICE_MAX_DECODE_SECONDS * rate)
            if frames > max_frames:
                raise ServiceError(
                    "clip_too_long",
                    f"The recording is {frames / rate:.1f} s; a voice sample must be "
                    f"{settings.VOICE_MIN_SECONDS:g}-{settings.VOICE_MAX_SECONDS:g} s of speech.",
                )
            max_samples = int(settings.VOICE_MAX_DECODE_SECONDS * _MAX_DECODE_SAMPLES_PER_SECOND)
            if frames * channels > max_samples:
                raise ServiceError(
                    "audio_too_large",
                    f"The recording decodes to {frames * channels} samples ({channels} channels at {rate} Hz); "
                    f"at most {max_samples} are accepted.",
                )
            # Read at most max_frames even if the header lied about the length.
            mono = _read_mono(audio, max_frames=min(max_frames, max_samples // channels))
    except ServiceError:
        raise
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as exc:
        raise ServiceError(
            "unsupported_audio",
            "The file could not be decoded as audio (WAV, FLAC, OGG/Vorbis or MP3 expected).",
        ) from exc
    if mono.size == 0:
        raise ServiceError("empty_audio", "The file contains no audio samples.")
    if not np.isfinite(mono).all():
        raise ServiceError("invalid_audio", "The audio contains NaN or infinite samples.")
    return mono, rate


def _read_mono(audio: soundfile.SoundFile, *, max_frames: int) -> np.ndarray:
    blocks: list[np.ndarray] = []
    remaining = max_frames
    while remaining > 0:
        block = audio.read(frames=min(_DECODE_BLOCK_FRAMES, remaining), dtype="float32", always_2d=True)
        if len(block) == 0:
            break
        # A NaN/inf in any channel survives the mean, so the finiteness check still sees it.
        blocks.append(block.mean(axis=1, dtype=np.float32))
        remaining -= len(block)
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def _trim_silence(samples: np.ndarray, rate: int) -> np.ndarray:
    frame = max(1, int(rate * _FRAME_SECONDS))
    n_frames = len(samples) // frame
    if n_frames == 0:
        return samples[:0]
    frames = samples[: n_frames * frame].reshape(n_frames, frame)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    level_db = 20 * np.log10(np.maximum(rms, 1e-10))
    threshold = max(level_db.max() - _TRIM_RELATIVE_DB, _SILENCE_FLOOR_DBFS)
    voiced = np.flatnonzero(level_db > threshold)
    if voiced.size == 0:
        return samples[:0]
    pad = int(rate * _TRIM_PAD_SECONDS)
    start = max(0, voiced[0] * frame - pad)
    end = min(len(samples), (voiced[-1] + 1) * frame + pad)
    return samples[start:end]


def reference_clip_normalise(*, data: bytes) -> ReferenceClip:
    """Decode, trim silence, check 3-10 s, resample, loudness-normalise, to int16 mono."""
    samples, rate = reference_clip_decode(data=data)
    trimmed = _trim_silence(samples, rate)
    if trimmed.size == 0:
        raise ServiceError("silent_audio", "The recording is silent; please record the speaker talking.")
    duration = len(trimmed) / rate
    if duration < settings.VOICE_MIN_SECONDS:
        raise ServiceError(
            "clip_too_short",
            f"The recording has {duration:.1f} s of sound; a voice sample needs at least "
            f"{settings.VOICE_MIN_SECONDS:g} s (at most {settings.VOICE_MAX_SECONDS:g} s).",
        )
    if duration > settings.VOICE_MAX_SECONDS:
        raise ServiceError(
            "clip_too_long",
            f"The recording has {duration:.1f} s of sound; a voice sample must be at most "
            f"{settings.VOICE_MAX_SECONDS:g} s (at least {settings.VOICE_MIN_SECONDS:g} s).",
        )
    target_rate = settings.VOICE_SAMPLE_RATE
    if rate != target_rate:
        trimmed = soxr.resample(trimmed, rate, target_rate, quality="HQ").astype(np.float32)
    meter = pyloudnorm.Meter(target_rate)
    loudness = meter.integrated_loudness(trimmed.astype(np.float64))
    if np.isfinite(loudness):
        trimmed = trimmed * np.float32(10 ** ((settings.VOICE_TARGET_LUFS - loudness) / 20))
    peak = float(np.max(np.abs(trimmed)))
    if peak > _PEAK_CEILING:
        # Loudness gain must never clip: scale the peak down to -1 dBFS instead.
        trimmed = trimmed * np.float32(_PEAK_CEILING / peak)
    pcm = np.clip(np.round(trimmed * 32767), -32768, 32767).astype(np.int16)
    return ReferenceClip(samples=pcm, sample_rate=target_rate)
