"""/v1 answers in wav (more than one sentence) and pcm carry each clip's stored WAV samples as they are.

In this process, through the service (`speech_audio`) over clips that are cache hits, stored by `clip_store` as the
worker stores them. The proof is byte identity: the answer is the streaming WAV header followed by the stored files'
own data chunks (read back from storage, parsed here with the standard library's `wave`), so nothing was decoded or
encoded for them; a clip at another rate is converted, and the whole is still one file.
"""

from __future__ import annotations

import io
import uuid
import wave
from typing import Any

import numpy as np
import pytest
from django.core.files.storage import default_storage

from tests.audio_samples import assert_one_file, decode, wav_bytes
from voice_tts.models import Clip, ClipEncoding
from voice_tts.services.clips import clip_store
from voice_tts.services.speech import SPEECH_SAMPLE_RATE, Speech, SpeechSentence, speech_audio
from voice_tts.services.voices import voice_create

SECONDS = 0.25


def _clip(voice: Any, rate: int, f0: float) -> Clip:
    # Loud (0.9): decoding to float and converting back would change the loudest samples by one step, so only
    # the stored bytes themselves make the answers below.
    t = np.arange(int(rate * SECONDS)) / rate
    return clip_store(voice=voice, cache_key=uuid.uuid4().hex * 2, text=f"tone {f0}", language="en", params={},
                      engine="tone", model_version="t", samples=(0.9 * np.sin(2 * np.pi * f0 * t)).astype(np.float32),
                      sample_rate=rate)


def _answer(owner_id: int, clips: list[Clip], audio_format: str) -> bytes:
    sentences = tuple(SpeechSentence(text=clip.text, language="en", clip_id=clip.id, job_id=None) for clip in clips)
    return b"".join(speech_audio(speech=Speech(owner_id=owner_id, sentences=sentences, characters=1),
                                 audio_format=audio_format))


def _stored_samples(clip: Clip) -> bytes:
    with default_storage.open(clip.audio.name, "rb") as file, wave.open(io.BytesIO(file.read())) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, clip.sample_rate)
        return wav.readframes(wav.getnframes())


@pytest.fixture
def voice(db: Any, alice: Any) -> Any:
    return voice_create(owner_id=alice.id, data=wav_bytes(4.0))


@pytest.mark.parametrize("audio_format", ["wav", "pcm"])
def test_sentences_at_the_answer_rate_are_their_stored_samples(voice, alice, audio_format):
    clips = [_clip(voice, SPEECH_SAMPLE_RATE, f0) for f0 in (330.0, 440.0, 550.0)]
    body = _answer(alice.id, clips, audio_format)
    stored = b"".join(_stored_samples(clip) for clip in clips)
    assert body.endswith(stored)
    if audio_format == "pcm":
        assert body == stored
    else:
        header = body[:-len(stored)]
        assert header[:4] == b"RIFF" and header[8:12] == b"WAVE" and header.endswith(b"data\xff\xff\xff\xff")
        assert_one_file(body, "wav")
        samples, rate, _ = decode(body)
        assert rate == SPEECH_SAMPLE_RATE and len(samples) == 3 * int(SPEECH_SAMPLE_RATE * SECONDS)
    assert not ClipEncoding.objects.exists()  # the WAVs themselves: nothing made or stored


def test_a_clip_at_another_rate_is_converted_and_the_answer_stays_one_file(voice, alice):
    first, other, last = _clip(voice, SPEECH_SAMPLE_RATE, 330.0), _clip(voice, 16000, 440.0), \
        _clip(voice, SPEECH_SAMPLE_RATE, 550.0)
    body = _answer(alice.id, [first, other, last], "wav")
    head, tail = _stored_samples(first), _stored_samples(last)
    assert body.endswith(tail) and head in body[:200 + len(head)]
    assert_one_file(body, "wav")
    samples, rate, _ = decode(body)
    assert rate == SPEECH_SAMPLE_RATE
    assert abs(len(samples) / SPEECH_SAMPLE_RATE - 3 * SECONDS) < 0.01
