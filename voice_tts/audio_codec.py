"""Encode speech samples as WAV, FLAC, Ogg Opus, MP3 or raw PCM, with libsndfile (soundfile) and soxr.

Pure: numpy, soundfile and soxr only (no Django, no models), so both the clip routes and /v1/audio/speech use it.

Samples are mono, float32/float64 in [-1, 1] or int16; NaN and infinities become silence, the rest is clipped.

Sample rates:
- wav, flac: the source rate, unchanged.
- pcm: always 24 kHz 16-bit little-endian mono, no header (OpenAI's `pcm`).
- opus: the smallest rate Opus accepts (8/12/16/24/48 kHz) that is >= the source rate, so nothing the engine made is
  cut off and nothing is upsampled for no reason: espeak's 22.05 kHz -> 24 kHz, GPT-SoVITS' 32 kHz -> 48 kHz.
- mp3: the smallest MPEG rate >= the source rate, at most 24 kHz (MPEG-2 layer III, as OpenAI's mp3): 12 kHz of
  bandwidth is all of speech, and LAME at 32 kHz+ (MPEG-1) more than doubles the bit rate for nothing audible.

Empty input: wav and pcm hold zero samples; FLAC, Ogg and MP3 cannot hold no audio (libsndfile writes nothing or a file
it cannot read back), so they get 10 ms of silence instead and stay decodable.

Bit rates: Opus at libsndfile compression level 0.9 (about 24-32 kbit/s for mono speech), MP3 at constant bit rate,
level 0.8 (about 40 kbit/s at 24 kHz). MP3 is constant bit rate on purpose: a streamed MP3 cannot carry the Xing/LAME
header libsndfile writes at close in VBR mode, and without it a decoder (mpg123 in libsndfile) estimates the duration
from the first frame's bit rate, which is only right for CBR.

Streaming (`AudioStreamEncoder`), found by experiment with libsndfile 1.2.2 writing to a Python file object:
- wav: libsndfile seeks back to 0 at close to patch the RIFF and data sizes, so the stream writes its own 44-byte
  header with both sizes 0xFFFFFFFF ("until the end of the stream"), which libsndfile, ffmpeg and browsers read to EOF;
  then plain 16-bit PCM as it comes.
- pcm: raw 24 kHz samples as they come (resampled with one continuous soxr stream).
- opus: Ogg pages are written strictly forward (libsndfile never seeks back in Ogg), so every byte is sent as soon as
  libsndfile writes it. libsndfile closes an Ogg page once it holds about one second of audio, so up to ~1 s of a
  sentence may wait for the next `write()` or for `close()`.
- mp3: at constant bit rate LAME writes frames strictly forward and no Xing/LAME frame (in VBR mode libsndfile leaves
  a placeholder first frame and seeks back to fill it in at close, which a stream cannot follow), so the stream is
  byte-for-byte the same file as `audio_encode` makes. Frames are sent as LAME emits them.
- flac: libsndfile patches STREAMINFO at close (total samples, MD5, frame sizes), and libsndfile itself cannot read a
  FLAC whose STREAMINFO says "unknown length" (soundfile fails to read it), so a FLAC stream is held back and arrives
  whole, as one correct file, from `close()`. `write()` returns b"" for FLAC.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Final

import numpy as np
import soundfile as sf
import soxr


@dataclass(frozen=True)
class AudioFormat:
    name: str
    content_type: str
    extension: str


AUDIO_FORMATS: Final[dict[str, AudioFormat]] = {
    "wav": AudioFormat(name="wav", content_type="audio/wav", extension="wav"),
    "flac": AudioFormat(name="flac", content_type="audio/flac", extension="flac"),
    # RFC 7845: Ogg Opus is audio/ogg, files end in .opus.
    "opus": AudioFormat(name="opus", content_type="audio/ogg; codecs=opus", extension="opus"),
    "mp3": AudioFormat(name="mp3", content_type="audio/mpeg", extension="mp3"),
    # No registered type for headerless little-endian PCM (audio/L16 is big-endian); audio/pcm is what
    # OpenAI-compatible servers answer for response_format=pcm.
    "pcm": AudioFormat(name="pcm", content_type="audio/pcm", extension="pcm"),
}

PCM_SAMPLE_RATE: Final = 24000
OPUS_SAMPLE_RATES: Final = (8000, 12000, 16000, 24000, 48000)
MP3_SAMPLE_RATES: Final = (8000, 11025, 12000, 16000, 22050, 24000)
MIN_SAMPLE_RATE: Final = 8000
MAX_SAMPLE_RATE: Final = 192000
# libsndfile's Ogg writers (and LAME) are fed this much audio per call.
_BLOCK_SECONDS: Final = 0.5
_OPUS_COMPRESSION: Final = 0.9
_MP3_COMPRESSION: Final = 0.8
_EMPTY_SECONDS: Final = 0.01

# format -> (libsndfile major format, subtype, extra SoundFile kwargs)
_SNDFILE: Final[dict[str, tuple[str, str, dict[str, object]]]] = {
    "wav": ("WAV", "PCM_16", {}),
    "flac": ("FLAC", "PCM_16", {}),
    "opus": ("OGG", "OPUS", {"compression_level": _OPUS_COMPRESSION}),
    "mp3": ("MP3", "MPEG_LAYER_III", {"compression_level": _MP3_COMPRESSION, "bitrate_mode": "CONSTANT"}),
}


def _format(audio_format: str) -> AudioFormat:
    if not isinstance(audio_format, str) or audio_format not in AUDIO_FORMATS:
        raise ValueError(f"unknown audio format {str(audio_format)[:40]!r}; expected one of {sorted(AUDIO_FORMATS)}")
    return AUDIO_FORMATS[audio_format]


def _check_rate(sample_rate: int) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        raise ValueError("sample_rate must be an integer")
    if not MIN_SAMPLE_RATE <= int(sample_rate) <= MAX_SAMPLE_RATE:
        raise ValueError(f"sample_rate must be {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz, not {sample_rate}")
    return int(sample_rate)


def _mono_float32(samples: np.ndarray) -> np.ndarray:
    """Mono float32 in [-1, 1] from float or int16 samples; anything else is a ValueError."""
    array = np.asarray(samples)
    if array.ndim == 2 and 1 in array.shape:
        array = array.reshape(-1)
    if array.ndim != 1:
        raise ValueError(f"samples must be mono (1-D), not shape {array.shape}")
    if array.dtype == np.int16:
        return array.astype(np.float32) / np.float32(32768.0)
    if array.dtype not in (np.float32, np.float64):
        raise ValueError(f"samples must be float32/float64 or int16, not {array.dtype}")
    array = np.nan_to_num(array.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(array, -1.0, 1.0)


def _int16(samples: np.ndarray) -> bytes:
    return np.round(samples * np.float32(32767.0)).astype("<i2").tobytes()


def _target_rate(audio_format: str, source_rate: int) -> int:
    if audio_format == "pcm":
        return PCM_SAMPLE_RATE
    allowed = {"opus": OPUS_SAMPLE_RATES, "mp3": MP3_SAMPLE_RATES}.get(audio_format)
    if allowed is None:
        return source_rate
    return next((rate for rate in allowed if rate >= source_rate), allowed[-1])


def audio_encoded_rate(*, audio_format: str, sample_rate: int) -> int:
    """The rate `audio_encode` and `AudioStreamEncoder` write `audio_format` at, given samples at `sample_rate`:
    a caller can tell, without encoding, whether a stored encoding of a clip is at the rate it needs."""
    _format(audio_format)
    return _target_rate(audio_format, _check_rate(sample_rate))


def _wav_stream_header(sample_rate: int) -> bytes:
    """A 16-bit mono PCM WAV header whose RIFF and data sizes are 0xFFFFFFFF: read until the end of the stream."""
    unknown = 0xFFFFFFFF
    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", unknown)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + (b"data" + struct.pack("<I", unknown))
    )


class _Sink:
    """The file object libsndfile writes to: keeps every byte (so its seeks and patches work), hands out the new ones.

    `take()` returns what was written past the part already handed out. A patch into the handed-out part (MP3's
    Xing frame at close) changes only the kept copy, never the stream.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._position = 0
        self._taken = 0

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._buffer)}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def read(self, size: int = -1) -> bytes:
        end = len(self._buffer) if size is None or size < 0 else self._position + size
        data = bytes(self._buffer[self._position : end])
        self._position += len(data)
        return data

    def write(self, data: bytes) -> int:
        data = bytes(data)
        end = self._position + len(data)
        if end > len(self._buffer):
            self._buffer.extend(b"\0" * (end - len(self._buffer)))
        self._buffer[self._position : end] = data
        self._position = end
        return len(data)

    def take(self) -> bytes:
        new = bytes(self._buffer[self._taken :])
        self._taken = len(self._buffer)
        return new

    def getvalue(self) -> bytes:
        return bytes(self._buffer)


def _open_sndfile(sink: _Sink | io.BytesIO, audio_format: str, sample_rate: int) -> sf.SoundFile:
    major, subtype, extra = _SNDFILE[audio_format]
    return sf.SoundFile(
        sink,
        "w",
        samplerate=sample_rate,
        channels=1,
        format=major,
        subtype=subtype,
        **extra,  # type: ignore[arg-type]
    )


def _write_blocks(sound_file: sf.SoundFile, samples: np.ndarray, sample_rate: int) -> None:
    block = max(1, int(sample_rate * _BLOCK_SECONDS))
    for start in range(0, len(samples), block):
        sound_file.write(samples[start : start + block])


def audio_encode(*, samples: np.ndarray, sample_rate: int, audio_format: str) -> bytes:
    """The whole file in `audio_format` (see the module docstring for rates and bit rates)."""
    _format(audio_format)
    source_rate = _check_rate(sample_rate)
    mono = _mono_float32(samples)
    target_rate = _target_rate(audio_format, source_rate)
    if target_rate != source_rate and len(mono):
        mono = soxr.resample(mono, source_rate, target_rate, quality="HQ").astype(np.float32, copy=False)
        mono = np.clip(mono, -1.0, 1.0)
    if audio_format == "pcm":
        return _int16(mono)
    if not len(mono) and audio_format != "wav":
        mono = np.zeros(int(target_rate * _EMPTY_SECONDS), dtype=np.float32)
    sink = io.BytesIO()
    with _open_sndfile(sink, audio_format, target_rate) as sound_file:
        _write_blocks(sound_file, mono, target_rate)
    return sink.getvalue()


class AudioStreamEncoder:
    """One continuous encoded stream for a response, fed a sentence at a time.

    The concatenation of everything `write()` and `close()` return is one decodable file (one WAV/Ogg/MP3 stream,
    not one file per sentence). FLAC arrives whole from `close()`; see the module docstring.
    """

    def __init__(self, *, audio_format: str, sample_rate: int) -> None:
        self.audio_format = _format(audio_format)
        self.source_rate = _check_rate(sample_rate)
        self.sample_rate = _target_rate(audio_format, self.source_rate)
        self._resampler = (
            soxr.ResampleStream(self.source_rate, self.sample_rate, 1, dtype="float32", quality="HQ")
            if self.sample_rate != self.source_rate
            else None
        )
        self._closed = False
        self._written = 0
        self._pending = b""
        self._sink: _Sink | None = None
        self._sound_file: sf.SoundFile | None = None
        if audio_format == "wav":
            self._pending = _wav_stream_header(self.sample_rate)
        elif audio_format != "pcm":
            self._sink = _Sink()
            self._sound_file = _open_sndfile(self._sink, audio_format, self.sample_rate)

    def _encode(self, mono: np.ndarray) -> bytes:
        if self.audio_format.name in ("wav", "pcm"):
            out = self._pending + _int16(mono)
            self._pending = b""
            return out
        assert self._sound_file is not None and self._sink is not None
        self._written += len(mono)
        if len(mono):
            _write_blocks(self._sound_file, mono, self.sample_rate)
        if self.audio_format.name == "flac":
            return b""
        return self._sink.take()

    def write(self, samples: np.ndarray) -> bytes:
        """Encode more samples; returns the encoded bytes ready so far (may be b"")."""
        if self._closed:
            raise ValueError("the stream is closed")
        mono = _mono_float32(samples)
        if self._resampler is not None:
            mono = np.clip(self._resampler.resample_chunk(mono, last=False), -1.0, 1.0)
        return self._encode(mono)

    def close(self) -> bytes:
        """Finish the stream; returns the rest of it. Closing twice returns b"" the second time."""
        if self._closed:
            return b""
        self._closed = True
        tail = np.zeros(0, dtype=np.float32)
        if self._resampler is not None:
            tail = np.clip(self._resampler.resample_chunk(tail, last=True), -1.0, 1.0)
        if self._sound_file is not None and not self._written and not len(tail):
            tail = np.zeros(int(self.sample_rate * _EMPTY_SECONDS), dtype=np.float32)
        out = self._encode(tail)
        if self._sound_file is not None and self._sink is not None:
            self._sound_file.close()
            out += self._sink.getvalue() if self.audio_format.name == "flac" else self._sink.take()
        return out
