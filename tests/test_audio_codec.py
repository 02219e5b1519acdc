"""voice_tts.audio_codec: every format decodes with soundfile (libsndfile) to the right length, streams concatenate
into one decodable file, Opus is much smaller than WAV, and hostile input is refused or made harmless."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile
import soxr

from tests.audio_samples import voice_like
from voice_tts.audio_codec import (
    AUDIO_FORMATS,
    PCM_SAMPLE_RATE,
    AudioStreamEncoder,
    audio_encode,
)

ENCODED = ["wav", "flac", "opus", "mp3"]
# Codec padding: MP3 frames are 576 samples at MPEG-2 rates, plus LAME's encoder delay and the streamed MP3's
# silent first frame; Opus and FLAC come back sample-exact through libsndfile.
SLACK_SECONDS = {"wav": 0.0, "flac": 0.0, "opus": 0.001, "mp3": 0.12, "pcm": 0.001}
EXPECTED_TYPE = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "opus": ("OGG", "OPUS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}


def decoded(data: bytes) -> tuple[np.ndarray, int, soundfile._SoundFileInfo]:
    info = soundfile.info(io.BytesIO(data))
    samples, rate = soundfile.read(io.BytesIO(data), dtype="float32")
    return samples, rate, info


def seconds_of(data: bytes, audio_format: str) -> float:
    if audio_format == "pcm":
        assert len(data) % 2 == 0
        return len(data) / 2 / PCM_SAMPLE_RATE
    samples, rate, _ = decoded(data)
    return len(samples) / rate


def correlation_at_best_lag(a: np.ndarray, b: np.ndarray, max_lag: int) -> float:
    """Peak normalised correlation of b against a over lags 0..max_lag (codecs delay or pad the start)."""
    n = min(len(a), len(b)) - max_lag
    best = 0.0
    for lag in range(0, max_lag + 1, 4):
        x, y = a[:n], b[lag : lag + n]
        denom = float(np.linalg.norm(x) * np.linalg.norm(y)) or 1.0
        best = max(best, float(np.dot(x, y)) / denom)
    return best


@pytest.fixture(scope="module")
def speech_24k() -> np.ndarray:
    return voice_like(3.0, rate=24000)


def test_format_table_is_complete() -> None:
    assert set(AUDIO_FORMATS) == {"wav", "flac", "opus", "mp3", "pcm"}
    for name, audio_format in AUDIO_FORMATS.items():
        assert audio_format.name == name
        assert audio_format.content_type.startswith("audio/")
        assert audio_format.extension.isalnum()
    assert AUDIO_FORMATS["opus"].content_type.split(";")[0] == "audio/ogg"
    assert AUDIO_FORMATS["mp3"].content_type == "audio/mpeg"


@pytest.mark.parametrize("rate", [22050, 24000, 32000])
@pytest.mark.parametrize("audio_format", ENCODED)
def test_whole_file_decodes_to_the_right_length_and_sound(audio_format: str, rate: int) -> None:
    speech = voice_like(2.0, rate=rate)
    data = audio_encode(samples=speech, sample_rate=rate, audio_format=audio_format)
    samples, out_rate, info = decoded(data)
    assert (info.format, info.subtype) == EXPECTED_TYPE[audio_format]
    assert info.channels == 1
    assert abs(len(samples) / out_rate - 2.0) <= SLACK_SECONDS[audio_format] + 1e-6
    if audio_format == "opus":
        assert out_rate in (8000, 12000, 16000, 24000, 48000) and out_rate >= rate
    elif audio_format == "mp3":
        assert out_rate == min(rate, 24000)
    else:
        assert out_rate == rate
    # The sound itself survives (not just a file of the right length): compare at the output rate.
    if out_rate == rate:
        reference = speech
    else:
        reference = soxr.resample(speech, rate, out_rate)
    assert correlation_at_best_lag(reference, samples, max_lag=int(0.06 * out_rate)) > 0.9


def test_pcm_is_raw_24k_little_endian_int16(speech_24k: np.ndarray) -> None:
    data = audio_encode(samples=speech_24k, sample_rate=24000, audio_format="pcm")
    assert len(data) == 2 * len(speech_24k)
    values = np.frombuffer(data, dtype="<i2")
    expected = np.round(np.clip(speech_24k, -1, 1) * 32767).astype(np.int16)
    assert np.array_equal(values, expected)
    # From another rate it is resampled to 24 kHz: 2 s at 32 kHz -> 48000 samples.
    resampled = audio_encode(samples=voice_like(2.0, rate=32000), sample_rate=32000, audio_format="pcm")
    assert abs(len(resampled) / 2 - 48000) <= 1


def test_opus_and_mp3_are_much_smaller_than_wav(speech_24k: np.ndarray) -> None:
    sizes = {f: len(audio_encode(samples=speech_24k, sample_rate=24000, audio_format=f)) for f in ENCODED}
    assert sizes["opus"] * 8 < sizes["wav"], sizes
    assert sizes["mp3"] * 5 < sizes["wav"], sizes
    assert sizes["flac"] < sizes["wav"], sizes


@pytest.mark.parametrize("rate", [22050, 32000])
@pytest.mark.parametrize("audio_format", [*ENCODED, "pcm"])
def test_stream_chunks_concatenate_to_one_decodable_file(audio_format: str, rate: int) -> None:
    sentences = [voice_like(s, rate=rate, seed=i) for i, s in enumerate([1.3, 0.7, 2.1, 0.05, 1.0])]
    encoder = AudioStreamEncoder(audio_format=audio_format, sample_rate=rate)
    chunks = [encoder.write(sentence) for sentence in sentences]
    chunks.append(encoder.close())
    assert encoder.close() == b""
    stream = b"".join(chunks)
    total = sum(len(s) for s in sentences) / rate
    assert abs(seconds_of(stream, audio_format) - total) <= SLACK_SECONDS[audio_format] + 0.002
    if audio_format == "flac":
        # libsndfile patches STREAMINFO at close and cannot read an unpatched FLAC: the file arrives at close.
        assert chunks[:-1] == [b""] * len(sentences)
        assert stream == audio_encode(samples=np.concatenate(sentences), sample_rate=rate, audio_format="flac")
    else:
        # The stream really streams: the first sentence's bytes come out of the first write.
        assert len(chunks[0]) > 0
        assert sum(len(c) for c in chunks[:-1]) > len(stream) / 2
    if audio_format not in ("pcm", "flac"):
        samples, out_rate, info = decoded(stream)
        assert (info.format, info.subtype) == EXPECTED_TYPE[audio_format]


def test_wav_stream_header_is_unknown_length_and_reads_to_the_end(speech_24k: np.ndarray) -> None:
    encoder = AudioStreamEncoder(audio_format="wav", sample_rate=24000)
    first = encoder.write(speech_24k[:12000])
    stream = first + encoder.write(speech_24k[12000:]) + encoder.close()
    assert first[:4] == b"RIFF" and first[8:12] == b"WAVE"
    assert struct.unpack("<I", first[4:8])[0] == 0xFFFFFFFF
    assert first[36:40] == b"data" and struct.unpack("<I", first[40:44])[0] == 0xFFFFFFFF
    samples, rate, _ = decoded(stream)
    assert rate == 24000 and len(samples) == len(speech_24k)


def test_mp3_stream_is_cbr_and_byte_identical_to_the_whole_file(speech_24k: np.ndarray) -> None:
    encoder = AudioStreamEncoder(audio_format="mp3", sample_rate=24000)
    stream = encoder.write(speech_24k[:36000]) + encoder.write(speech_24k[36000:]) + encoder.close()
    whole = audio_encode(samples=speech_24k, sample_rate=24000, audio_format="mp3")
    # At constant bit rate LAME writes no Xing/LAME frame, so nothing is patched at close: the stream is the file.
    assert stream == whole
    assert b"Xing" not in whole[:2000] and b"Info" not in whole[:2000]
    assert abs(seconds_of(stream, "mp3") - 3.0) <= SLACK_SECONDS["mp3"]


def test_int16_input_is_accepted(speech_24k: np.ndarray) -> None:
    as_int16 = (speech_24k * 32767).astype(np.int16)
    for audio_format in [*ENCODED, "pcm"]:
        data = audio_encode(samples=as_int16, sample_rate=24000, audio_format=audio_format)
        assert abs(seconds_of(data, audio_format) - 3.0) <= SLACK_SECONDS[audio_format] + 1e-6
    pcm = np.frombuffer(audio_encode(samples=as_int16, sample_rate=24000, audio_format="pcm"), dtype="<i2")
    assert np.max(np.abs(pcm.astype(int) - as_int16.astype(int))) <= 1


@pytest.mark.parametrize("audio_format", [*ENCODED, "pcm"])
def test_nan_inf_and_out_of_range_samples_are_made_harmless(audio_format: str) -> None:
    hostile = np.array([np.nan, np.inf, -np.inf, 5.0, -5.0] * 4800, dtype=np.float32)
    data = audio_encode(samples=hostile, sample_rate=24000, audio_format=audio_format)
    if audio_format == "pcm":
        values = np.frombuffer(data, dtype="<i2")
        assert values.size and np.isfinite(values).all()
        return
    samples, _, _ = decoded(data)
    assert np.isfinite(samples).all()
    # Lossless formats hold the clipped values exactly; lossy ones ring around a full-scale square wave (Gibbs),
    # but the 5.0s were clipped before encoding.
    assert np.max(np.abs(samples)) <= (1.0 + 1e-6 if audio_format in ("wav", "flac") else 2.0)


@pytest.mark.parametrize("audio_format", [*ENCODED, "pcm"])
def test_empty_input_still_gives_a_decodable_file(audio_format: str) -> None:
    empty = np.zeros(0, dtype=np.float32)
    whole = audio_encode(samples=empty, sample_rate=24000, audio_format=audio_format)
    encoder = AudioStreamEncoder(audio_format=audio_format, sample_rate=24000)
    streamed = encoder.write(empty) + encoder.close()
    for data in (whole, streamed):
        assert seconds_of(data, audio_format) <= SLACK_SECONDS[audio_format] + 0.08


@pytest.mark.parametrize(
    "audio_format", ["", "WAV", "ogg", "aac", "../wav", "wav\x00", "mp3 ", "x" * 10_000, None, 3, b"wav"]
)
def test_unknown_formats_are_a_value_error(audio_format: object) -> None:
    with pytest.raises(ValueError, match="unknown audio format"):
        audio_encode(samples=np.zeros(10, np.float32), sample_rate=24000, audio_format=audio_format)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown audio format"):
        AudioStreamEncoder(audio_format=audio_format, sample_rate=24000)  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", [0, -24000, 7999, 10**9, 24000.0, True, "24000"])
def test_bad_sample_rates_are_a_value_error(rate: object) -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        audio_encode(samples=np.zeros(10, np.float32), sample_rate=rate, audio_format="opus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sample_rate"):
        AudioStreamEncoder(audio_format="mp3", sample_rate=rate)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "samples",
    [
        np.zeros((100, 2), np.float32),  # stereo
        np.zeros((2, 2, 2), np.float32),
        np.zeros(100, np.int32),
        np.zeros(100, np.complex64),
        np.array(["a", "b"]),
        np.array(0.5, np.float32),  # 0-d
    ],
)
def test_wrong_shapes_and_dtypes_are_a_value_error(samples: np.ndarray) -> None:
    with pytest.raises(ValueError, match="samples must be"):
        audio_encode(samples=samples, sample_rate=24000, audio_format="wav")
    encoder = AudioStreamEncoder(audio_format="opus", sample_rate=24000)
    with pytest.raises(ValueError, match="samples must be"):
        encoder.write(samples)
    encoder.close()


def test_column_vector_is_treated_as_mono(speech_24k: np.ndarray) -> None:
    data = audio_encode(samples=speech_24k.reshape(-1, 1), sample_rate=24000, audio_format="flac")
    samples, _, info = decoded(data)
    assert info.channels == 1 and len(samples) == len(speech_24k)


def test_write_after_close_is_refused(speech_24k: np.ndarray) -> None:
    encoder = AudioStreamEncoder(audio_format="opus", sample_rate=24000)
    encoder.write(speech_24k[:2400])
    encoder.close()
    with pytest.raises(ValueError, match="closed"):
        encoder.write(speech_24k[:2400])
