"""Hostile voice uploads: oversized bodies, decompression bombs, polyglots, lying headers,
odd names. Every refusal is a 4xx with a code and leaves no row and no file; every
acceptance stores a clean WAV under a generated name."""

from __future__ import annotations

import io
import os
import re
import socket
import struct
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pytest
import soundfile
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.audio_samples import voice_like, wav_bytes
from voice_tts.models import Voice

UPLOAD_PATHS = ["/api/tts/voices/", "/api/tts/upload-voice/"]
HTML = b"<html><body><script>alert(document.cookie)</script></body></html>"


def _stored_files() -> list[Path]:
    media = Path(settings.MEDIA_ROOT)
    return sorted(p for p in media.rglob("*") if p.is_file()) if media.exists() else []


def _upload(client: Any, data: bytes, name: str = "sample.wav", path: str = "/api/tts/voices/",
            content_type: str = "audio/wav") -> Any:
    upload = SimpleUploadedFile(name, data, content_type=content_type)
    return client.post(path, {"voice_file": upload}, format="multipart")


def _assert_refused(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response.json()["code"] == code, response.json()
    assert Voice.objects.count() == 0
    assert _stored_files() == []


def _riff_chunks(data: bytes) -> list[bytes]:
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
    chunks, pos = [], 12
    while pos < len(data):
        chunk_id, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        chunks.append(chunk_id)
        pos += 8 + size + (size & 1)
    assert pos == len(data)
    return chunks


def _stream_bytes(seconds: float, *, rate: int, channels: int, fmt: str, subtype: str | None = None) -> bytes:
    """Silence written block by block: a tiny file whose decoded length is huge."""
    buffer = io.BytesIO()
    block = np.zeros((rate, channels), np.float32)
    with soundfile.SoundFile(buffer, "w", samplerate=rate, channels=channels, format=fmt, subtype=subtype) as out:
        for _ in range(int(seconds)):
            out.write(block)
    return buffer.getvalue()


# --- Size cap before the body is read, over real HTTP --------------------------------


def _raw_post_head(live_server: Any, token: str, path: str, declared: int, first: bytes) -> tuple[int, bytes]:
    """Send the headers and only the first bytes of a body of `declared` bytes, then read
    the answer. If the server waited for the rest of the body this would hang until the
    socket timeout and fail: answering proves the cap is checked before the body is read."""
    url = urlparse(live_server.url)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Token {token}\r\n"
        f"Content-Type: multipart/form-data; boundary=hostile\r\nContent-Length: {declared}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((url.hostname, url.port), timeout=60) as sock:
        sock.sendall(head + first)
        received = b""
        while b"\r\n\r\n" not in received or len(received) < received.index(b"\r\n\r\n") + 4 + 2:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    status = int(received.split(b" ", 2)[1])
    return status, received


@pytest.mark.parametrize("path", UPLOAD_PATHS)
def test_oversized_body_is_413_before_it_is_read(live_server: Any, alice: Any, path: str) -> None:
    declared = settings.VOICE_MAX_UPLOAD_BYTES * 3
    first = b'--hostile\r\nContent-Disposition: form-data; name="voice_file"; filename="a.wav"\r\n\r\n'
    first += wav_bytes(1.0)[:32768]
    status, raw = _raw_post_head(live_server, alice.token, path, declared, first)
    assert status == 413, raw[:500]
    assert b"file_too_large" in raw
    assert Voice.objects.count() == 0
    assert _stored_files() == []


def test_file_over_the_cap_inside_an_allowed_body_is_413(alice_api: Any, settings: Any) -> None:
    # The second layer: Content-Length within cap + multipart slack, but the file itself is over.
    settings.VOICE_MAX_UPLOAD_BYTES = 50_000
    _assert_refused(_upload(alice_api, os.urandom(60_000)), 413, "file_too_large")


# --- Decompression bombs --------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "subtype", "seconds", "rate", "channels", "status", "code"),
    [
        # One hour of 8 kHz silence in ~90 KB of FLAC: refused from the header, never decoded.
        ("FLAC", None, 3600, 8000, 1, 400, "clip_too_long"),
        ("OGG", "VORBIS", 600, 8000, 1, 400, "clip_too_long"),
        # Under the duration cap, but 8 channels x 192 kHz: ~180 MB of float32 decoded.
        ("FLAC", None, 30, 192000, 8, 413, "audio_too_large"),
    ],
    ids=["flac-1h", "ogg-10min", "flac-8ch-192k"],
)
def test_decompression_bombs_are_refused(alice_api: Any, fmt: str, subtype: str | None, seconds: int, rate: int,
                                         channels: int, status: int, code: str) -> None:
    data = _stream_bytes(seconds, rate=rate, channels=channels, fmt=fmt, subtype=subtype)
    assert len(data) < 1_000_000  # tiny on the wire
    _assert_refused(_upload(alice_api, data, name=f"bomb.{fmt.lower()}"), status, code)


def test_header_claiming_gigabytes_of_data_is_decoded_bounded(alice_api: Any) -> None:
    data = bytearray(wav_bytes(4.0, rate=16000))
    data[4:8] = struct.pack("<I", 0xFFFFFFF0)  # RIFF size
    data[40:44] = struct.pack("<I", 0xFFFFFFF0)  # data chunk size (canonical 44-byte header)
    response = _upload(alice_api, bytes(data))
    # libsndfile clamps the length to the bytes that exist: the real 4 s are accepted.
    assert response.status_code == 201, response.content
    assert 3.5 < response.json()["duration_seconds"] < 4.5


# --- Polyglots --------------------------------------------------------------------------


def _zip_bytes(inner: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.html", HTML)
        archive.writestr("sample.wav", inner)
    return buffer.getvalue()


def _wav_with_chunk_before_data(chunk_id: bytes, payload: bytes) -> bytes:
    wav = wav_bytes(4.0, rate=16000)
    assert wav[36:40] == b"data"
    if len(payload) % 2:
        payload += b"\0"
    body = wav[12:36] + chunk_id + struct.pack("<I", len(payload)) + payload + wav[36:]
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


@pytest.mark.parametrize(
    "data",
    [
        wav_bytes(4.0) + HTML,
        wav_bytes(4.0) + _zip_bytes(HTML),
        _wav_with_chunk_before_data(b"html", HTML),
        _wav_with_chunk_before_data(b"LIST", b"INFOICMT" + struct.pack("<I", len(HTML)) + HTML),
    ],
    ids=["html-appended", "zip-appended", "html-chunk", "html-in-LIST-INFO"],
)
def test_polyglot_is_stored_as_a_clean_reencoded_wav(alice_api: Any, data: bytes) -> None:
    response = _upload(alice_api, data)
    assert response.status_code == 201, response.content
    [stored] = _stored_files()
    clean = stored.read_bytes()
    assert b"<script" not in clean and b"<html" not in clean and b"PK\x03\x04" not in clean
    # Nothing but the format and the samples: the upload's own chunks never survive.
    assert _riff_chunks(clean) == [b"fmt ", b"data"]
    info = soundfile.info(io.BytesIO(clean))
    assert (info.channels, info.samplerate, info.subtype) == (1, settings.VOICE_SAMPLE_RATE, "PCM_16")


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (_zip_bytes(wav_bytes(4.0)), "sample.wav"),  # an archive holding a WAV is not a WAV
        (HTML, "sample.wav"),
        (b"GIF89a" + wav_bytes(4.0), "sample.wav"),
        (b"%PDF-1.4\n" + wav_bytes(4.0), "sample.wav"),
        (b"\x7fELF" + os.urandom(4000), "sample.wav"),
    ],
    ids=["zip-with-wav", "html", "gif-header", "pdf-header", "elf"],
)
def test_non_audio_is_415_whatever_its_name(alice_api: Any, data: bytes, name: str) -> None:
    _assert_refused(_upload(alice_api, data, name=name), 415, "unsupported_audio")


# --- Names and extensions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("voice.mp3", "audio/mpeg"),
        ("voice.exe", "application/octet-stream"),
        ("voice", "text/html"),
        ("voice.wav.php", "application/x-php"),
    ],
)
def test_extension_and_declared_type_are_ignored(alice_api: Any, name: str, content_type: str) -> None:
    response = _upload(alice_api, wav_bytes(4.0), name=name, content_type=content_type)
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("path", UPLOAD_PATHS)
@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd.wav", "/etc/passwd.wav", "..\\..\\windows\\win.wav", "x" * 400 + ".wav",
     "%2e%2e%2fpasswd.wav", "voice\u202egnp.wav"],
    ids=["dotdot", "absolute", "backslash", "long", "encoded", "bidi"],
)
def test_stored_name_is_generated_never_the_uploaders(alice_api: Any, alice: Any, name: str, path: str) -> None:
    response = _upload(alice_api, wav_bytes(4.0), name=name, path=path)
    assert response.status_code == 201, response.content
    voice = Voice.objects.get(owner=alice)
    assert re.fullmatch(rf"voices/{alice.id}/{voice.id}\.wav", voice.audio.name)
    assert _stored_files() == [Path(settings.MEDIA_ROOT) / voice.audio.name]
    tmp = Path(os.environ["CAREPILL_TEST_TMP"])
    assert not [p for p in tmp.rglob("*") if "passwd" in p.name or "win.wav" in p.name]


# --- Empty, rates, channels, non-finite samples ---------------------------------------


def _float_wav(samples: np.ndarray, rate: int = 16000, subtype: str = "FLOAT") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def _with_rate_in_header(data: bytes, rate: int) -> bytes:
    patched = bytearray(data)
    patched[24:28] = struct.pack("<I", rate)
    return bytes(patched)


def _speech_with(value: float, subtype: str = "FLOAT") -> bytes:
    samples = voice_like(4.0, rate=16000)
    samples[len(samples) // 2] = value
    return _float_wav(samples, subtype=subtype)


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"", 400, "empty_file"),
        (wav_bytes(4.0, rate=384000), 415, "unsupported_sample_rate"),
        (wav_bytes(4.0, rate=4000), 415, "unsupported_sample_rate"),
        (_with_rate_in_header(wav_bytes(4.0, rate=16000), 0x7FFFFFFF), 415, "unsupported_sample_rate"),
        (_float_wav(np.zeros((16000, 64), np.float32)), 415, "unsupported_channels"),
        (_float_wav(np.tile(voice_like(4.0, rate=16000)[:, None], (1, 9))), 415, "unsupported_channels"),
        (_speech_with(np.nan), 400, "invalid_audio"),
        (_speech_with(np.inf), 400, "invalid_audio"),
        (_speech_with(-np.inf), 400, "invalid_audio"),
        (_speech_with(np.nan, subtype="DOUBLE"), 400, "invalid_audio"),
    ],
    ids=["zero-length", "384kHz", "4kHz", "rate-2G-in-header", "64-channels", "9-channels", "nan", "inf",
         "minus-inf", "nan-double"],
)
def test_hostile_audio_is_refused_with_a_code(alice_api: Any, data: bytes, status: int, code: str) -> None:
    _assert_refused(_upload(alice_api, data), status, code)


def test_eight_channels_is_the_most_accepted(alice_api: Any) -> None:
    response = _upload(alice_api, wav_bytes(4.0, channels=8))
    assert response.status_code == 201, response.content
