"""/v1/audio/speech sends a sentence's stored encoding (services/clip_formats.py) where it is what the answer needs.

A live stack as in tests/test_openai_speech.py, with the tone engine at 24 kHz (TONE_SAMPLE_RATE), the rate every
/v1 answer is in, so that each format's stored encoding of a clip is at that rate. What is proved is the order of
events, never a timing: the ClipEncoding rows the first request made (and their files, with their mtimes) are the
ones the second request sends, and it makes none; the body is those files' bytes.
"""

from __future__ import annotations

import base64
import io
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import requests
import soundfile
from django.core.files.storage import default_storage

from tests.audio_samples import assert_one_file, wav_bytes
from tests.stack import ServiceStack, speech_user_enrol
from voice_tts.models import Clip, ClipEncoding
from voice_tts.services.clips import clip_store
from voice_tts.services.speech import SPEECH_SAMPLE_RATE, Speech, SpeechSentence, speech_audio
from voice_tts.services.voices import voice_create

pytestmark = pytest.mark.worker

TONE_SECONDS = 0.25


@pytest.fixture(scope="module")
def stack(django_db_setup: Any, django_db_blocker: Any) -> Iterator[ServiceStack]:
    with django_db_blocker.unblock():
        stack = ServiceStack(engine="tone", env={
            "GUNICORN_CMD_ARGS": "--worker-class gthread --threads 8",
            "THROTTLE_SPEECH_RATE": "100000/min",
            "TONE_SAMPLE_RATE": str(SPEECH_SAMPLE_RATE),
        })
        try:
            yield stack.start()
        finally:
            stack.shutdown()


@pytest.fixture
def enrolled(stack: ServiceStack, transactional_db: Any, make_user: Any) -> Any:
    return speech_user_enrol(stack, make_user, "s")


def _encodings(owner_id: int, audio_format: str) -> dict[int, tuple[int, str, str, int]]:
    """clip id -> (row id, file name, sha256, file mtime in ns) of the owner's stored encodings in the format."""
    return {
        encoding.clip_id: (encoding.id, encoding.audio.name, encoding.sha256,
                           os.stat(default_storage.path(encoding.audio.name)).st_mtime_ns)
        for encoding in ClipEncoding.objects.filter(clip__owner_id=owner_id, audio_format=audio_format)
    }


def _stored(name: str) -> bytes:
    with default_storage.open(name, "rb") as file:
        return file.read()


def _decoded(data: bytes) -> np.ndarray:
    samples, rate = soundfile.read(io.BytesIO(data), dtype="float32")
    assert rate == SPEECH_SAMPLE_RATE
    assert np.abs(samples).max() > 0.1
    return samples


def _streamed(user: Any, **params: Any) -> bytes:
    """The SDK's streaming example (no stream_format)."""
    with user.sdk.audio.speech.with_streaming_response.create(model="tts-1", voice="alloy", **params) as response:
        assert "content-length" not in response.headers
        return b"".join(response.iter_bytes())


def test_mp3_sentences_are_their_stored_encodings_made_once(stack, enrolled):
    tag = uuid.uuid4().hex[:6]
    sentences = [f"Alpha {tag}.", f"Beta {tag}.", f"Gamma {tag}."]
    first = enrolled.sdk.audio.speech.create(model="tts-1", voice="alloy", input=" ".join(sentences)).content
    clips = [Clip.objects.get(owner_id=enrolled.id, text=sentence) for sentence in sentences]
    made = _encodings(enrolled.id, "mp3")
    # The first request stored one MP3 per sentence through clip_formats, and its body is those files, in order.
    assert sorted(made) == sorted(clip.id for clip in clips)
    files = [_stored(made[clip.id][1]) for clip in clips]
    assert first == b"".join(files)
    assert_one_file(first, "mp3")
    # One MP3 stream: it decodes to each sentence's file, one after the other, sample for sample in length. The
    # decoder's overlap from one file's last frame into the next one's first leaves differences at the joins
    # (seen up to about 1e-3, depending on the audio), so the values are compared with a margin above that.
    joined = np.concatenate([_decoded(file) for file in files])
    assert len(_decoded(first)) == len(joined)
    np.testing.assert_allclose(_decoded(first), joined, atol=1e-2)

    # The second identical request (the streaming example this time) encodes nothing: the same rows, the same files,
    # untouched, the same bytes.
    second = _streamed(enrolled, input=" ".join(sentences))
    assert _encodings(enrolled.id, "mp3") == made
    assert ClipEncoding.objects.filter(clip__owner_id=enrolled.id).count() == 3
    assert second == first

    # Our own clip route serves the encoding /v1 stored: its ETag names that row's bytes, and it makes no other.
    answer = requests.get(f"{stack.base_url}/api/tts/cache/{clips[1].cache_key}/audio/?format=mp3", timeout=30,
                          headers={"Authorization": f"Token {enrolled.token}"})
    assert answer.status_code == 200
    assert answer.headers["ETag"] == f'"mp3-{made[clips[1].id][2][:32]}"'
    assert answer.content == files[1]
    assert _encodings(enrolled.id, "mp3") == made


@pytest.mark.parametrize("response_format", ["opus", "flac", "mp3", "wav"])
def test_a_single_sentence_is_its_stored_file(enrolled, response_format):
    text = f"Only this one {uuid.uuid4().hex[:6]}."
    first = enrolled.sdk.audio.speech.create(model="tts-1", voice="alloy", input=text,
                                             response_format=response_format).content
    clip = Clip.objects.get(owner_id=enrolled.id, text=text)
    made = _encodings(enrolled.id, response_format)
    if response_format == "wav":  # the clip's own WAV (24 kHz 16-bit mono) is the answer: nothing to encode
        assert made == {}
        assert first == _stored(clip.audio.name)
    else:
        assert list(made) == [clip.id]
        assert first == _stored(made[clip.id][1])
    assert_one_file(first, response_format)
    assert abs(len(_decoded(first)) / SPEECH_SAMPLE_RATE - TONE_SECONDS) < 0.08

    # Again: no encoding made, the stored file untouched, the same bytes (an Ogg Opus encoding has a random stream
    # serial, so equal bytes are the stored file, not a second encoding).
    second = _streamed(enrolled, input=text, response_format=response_format)
    assert _encodings(enrolled.id, response_format) == made
    assert second == first
    # SSE carries the same file in its deltas.
    events = requests.post(f"{enrolled.sdk.base_url}audio/speech", timeout=60,
                           headers={"Authorization": f"Bearer {enrolled.token}"},
                           json={"model": "tts-1", "voice": "alloy", "input": text,
                                 "response_format": response_format, "stream_format": "sse"}).text
    payloads = [json.loads(line.removeprefix("data: ")) for line in events.splitlines() if line]
    assert payloads[-1]["type"] == "speech.audio.done"
    assert b"".join(base64.b64decode(event["audio"]) for event in payloads[:-1]) == first
    assert _encodings(enrolled.id, response_format) == made


@pytest.mark.parametrize("response_format", ["opus", "flac", "wav", "pcm"])
def test_longer_texts_in_formats_that_do_not_concatenate_are_one_continuous_stream(enrolled, response_format):
    """Per-sentence Ogg/FLAC/WAV files one after another are not one file: these are encoded as one stream, and
    nothing is stored for them."""
    tag = uuid.uuid4().hex[:6]
    text = f"One {tag}. Two {tag}. Three {tag}."
    body = enrolled.sdk.audio.speech.create(model="tts-1", voice="alloy", input=text,
                                            response_format=response_format).content
    assert_one_file(body, response_format)
    if response_format == "pcm":
        seconds = len(body) / 2 / SPEECH_SAMPLE_RATE
    else:
        seconds = len(_decoded(body)) / SPEECH_SAMPLE_RATE
    assert abs(seconds - 3 * TONE_SECONDS) < 0.08
    assert not ClipEncoding.objects.filter(clip__owner_id=enrolled.id).exists()


def _tone_clip(voice: Any, text: str, rate: int) -> Clip:
    t = np.arange(int(rate * TONE_SECONDS)) / rate
    return clip_store(voice=voice, cache_key=uuid.uuid4().hex * 2, text=text, language="en", params={},
                      engine="tone", model_version="t", samples=(0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
                      sample_rate=rate)


def _answer(owner_id: int, clips: list[Clip], audio_format: str) -> bytes:
    """speech_audio over clips that are all cache hits (the service, in this process, no stack)."""
    sentences = tuple(SpeechSentence(text=clip.text, language="en", clip_id=clip.id, job_id=None) for clip in clips)
    return b"".join(speech_audio(speech=Speech(owner_id=owner_id, sentences=sentences, characters=1),
                                 audio_format=audio_format))


def test_mp3_clips_at_other_rates_stay_one_stream(transactional_db, alice):
    """The first sentence decides: its stored MP3 is at 24 kHz, so every sentence is a whole MP3 file, stored where
    its stored encoding is at 24 kHz (a 32 kHz clip's is) and encoded here, not stored, where it is not (16 kHz)."""
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    clips = [_tone_clip(voice, "a", 24000), _tone_clip(voice, "b", 16000), _tone_clip(voice, "c", 32000)]
    body = _answer(alice.id, clips, "mp3")
    made = {encoding.clip_id: encoding for encoding in ClipEncoding.objects.filter(audio_format="mp3")}
    assert sorted(made) == [clips[0].id, clips[2].id]
    first, last = _stored(made[clips[0].id].audio.name), _stored(made[clips[2].id].audio.name)
    assert body.startswith(first) and body.endswith(last) and len(body) > len(first) + len(last)
    assert_one_file(body, "mp3")
    parts = [first, body[len(first):-len(last)], last]
    assert len(_decoded(body)) == sum(len(_decoded(part)) for part in parts)

    # A 16 kHz first sentence: one continuous stream encoded here, nothing stored.
    ClipEncoding.objects.all().delete()
    body = _answer(alice.id, [clips[1], clips[0]], "mp3")
    assert not ClipEncoding.objects.exists()
    assert_one_file(body, "mp3")
    assert abs(len(_decoded(body)) / SPEECH_SAMPLE_RATE - 2 * TONE_SECONDS) < 0.08


@pytest.mark.parametrize("response_format", ["opus", "flac", "wav"])
def test_a_single_sentence_at_another_rate_is_encoded_not_stored(transactional_db, alice, response_format):
    voice = voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    clip = _tone_clip(voice, "only", 32000)  # its stored opus would be 48 kHz, its flac and wav 32 kHz
    body = _answer(alice.id, [clip], response_format)
    assert not ClipEncoding.objects.exists()
    assert_one_file(body, response_format)
    assert abs(len(_decoded(body)) / SPEECH_SAMPLE_RATE - TONE_SECONDS) < 0.08
