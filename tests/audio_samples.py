"""Synthetic recordings for tests: made here, never downloaded."""

from __future__ import annotations

import io
import struct

import numpy as np
import soundfile


def voice_like(seconds: float, *, rate: int = 44100, f0: float = 160.0, seed: int = 0) -> np.ndarray:
    """A harmonic, syllable-modulated signal with a little noise: speech-like levels."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    vibrato = f0 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(vibrato) / rate
    signal = sum(np.sin(k * phase) / k for k in range(1, 8))
    syllables = 0.55 + 0.45 * np.sin(2 * np.pi * 3.5 * t) ** 2
    return (0.2 * signal * syllables + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


def wav_bytes(
    seconds: float,
    *,
    rate: int = 44100,
    channels: int = 1,
    lead_silence: float = 0.0,
    tail_silence: float = 0.0,
    fmt: str = "WAV",
    subtype: str | None = None,
) -> bytes:
    speech = voice_like(seconds, rate=rate)
    audio = np.concatenate([np.zeros(int(lead_silence * rate), np.float32), speech,
                            np.zeros(int(tail_silence * rate), np.float32)])
    if channels > 1:
        audio = np.stack([audio * (1 - 0.1 * c) for c in range(channels)], axis=1)
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def silence_bytes(seconds: float, *, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(int(seconds * rate), np.float32), rate, format="WAV")
    return buffer.getvalue()


def decode(data: bytes) -> tuple[np.ndarray, int, soundfile._SoundFileInfo]:
    info = soundfile.info(io.BytesIO(data))
    samples, rate = soundfile.read(io.BytesIO(data), dtype="int16")
    return samples, rate, info


def ogg_pages(data: bytes) -> list[tuple[int, int]]:
    """(header type, stream serial) of each Ogg page, walking the pages by their own lengths; the bytes must be
    nothing but whole pages."""
    pages, at = [], 0
    while at < len(data):
        assert data[at:at + 4] == b"OggS", f"no Ogg page at byte {at}"
        segments = data[at + 26]
        body = sum(data[at + 27:at + 27 + segments])
        pages.append((data[at + 5], struct.unpack_from("<I", data, at + 14)[0]))
        at += 27 + segments + body
    assert at == len(data), "the last Ogg page is cut off"
    return pages


def assert_one_file(data: bytes, audio_format: str) -> None:
    """`data` is one file of `audio_format`, not files one after another: one RIFF header, one FLAC stream, one
    Ogg logical stream (first page BOS, last page EOS, one serial), MP3 frames from the first byte. Whether the
    audio in it decodes, and to how much, is the caller's check."""
    if audio_format == "wav":
        assert data[:4] == b"RIFF" and data[8:12] == b"WAVE" and data.count(b"WAVEfmt ") == 1
    elif audio_format == "flac":
        assert data[:4] == b"fLaC" and data.count(b"fLaC") == 1
    elif audio_format == "opus":
        pages = ogg_pages(data)
        assert len({serial for _, serial in pages}) == 1, "more than one Ogg logical stream"
        assert [kind & 0x02 for kind, _ in pages] == [0x02] + [0] * (len(pages) - 1), "BOS not only on page 1"
        assert [kind & 0x04 for kind, _ in pages] == [0] * (len(pages) - 1) + [0x04], "EOS not only on the last"
        assert data.count(b"OpusHead") == 1
    elif audio_format == "mp3":
        assert data[0] == 0xFF and data[1] & 0xE0 == 0xE0, "not an MPEG frame at byte 0"
        assert b"Xing" not in data and b"Info" not in data, "a VBR/Info frame would claim the first file's length"
    else:
        assert audio_format == "pcm" and len(data) % 2 == 0
