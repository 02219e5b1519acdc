"""Speech for a long text, sentence by sentence (the OpenAI-compatible POST /v1/audio/speech).

The text is split into sentences (workers/speech_text/sentences.py) and every sentence goes
through the ordinary job path (`job_create`): each is its own clip in the cache, so a sentence
said before, in any request, is a hit; the others are queued, all up front and in order, in one
transaction (all or nothing; their messages leave once it commits). Then the sentences' audio
is read back in order, each as soon as its job has finished, for the caller to stream.

Waiting reads the job's state the way polling does (`job_state_get`: the Redis copy the
worker writes at each state change, else one query), with a short sleep between reads and never
inside a transaction; it gives up after SPEECH_SENTENCE_WAIT_SECONDS per sentence.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import soundfile
import soxr
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction

from voice_tts.errors import ServiceError
from voice_tts.models import Clip, Job, Voice
from voice_tts.result_cache import ClipHit
from voice_tts.services.job_text import job_text_normalise
from voice_tts.services.jobs import job_create, job_state_get
from workers.speech_text.sentences import sentence_language, sentences_split

# What OpenAI clients send as `model`; each one (and the engine's own name) means this deployment's engine.
OPENAI_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
# OpenAI's built-in voice names: each speaks with the caller's active voice.
OPENAI_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse",
                 "marin", "cedar")
SPEECH_INPUT_MAX_CHARS = 4096
# Every answer is 24 kHz mono (what OpenAI's `pcm` is), whatever rate the engine made.
SPEECH_SAMPLE_RATE = 24000
# The job parameters' range (apis/jobs.py JobParamsSerializer), which every engine honours.
SPEECH_SPEED_MIN = 0.5
SPEECH_SPEED_MAX = 2.0
_POLL_FIRST_SECONDS = 0.02
_POLL_MAX_SECONDS = 0.25


def speech_models() -> list[str]:
    return [*OPENAI_MODELS, settings.TTS_ENGINE]


@dataclass(frozen=True)
class SpeechSentence:
    text: str
    language: str
    clip_id: int | None  # a cache hit: the clip, no job
    job_id: uuid.UUID | None  # else the sentence's job


@dataclass(frozen=True)
class Speech:
    owner_id: int
    sentences: tuple[SpeechSentence, ...]
    characters: int  # of the input, for the usage figures


def speech_voice_resolve(*, owner_id: int, voice: str) -> uuid.UUID | None:
    """The owner's voice a request names: one of their voice ids, or an OpenAI built-in name
    (None: the active voice). Anything else, another user's voice id included, is a 404."""
    if voice.lower() in OPENAI_VOICES:
        return None
    try:
        voice_id = uuid.UUID(voice)
    except ValueError:
        voice_id = None
    if voice_id is None or not Voice.objects.filter(id=voice_id, owner_id=owner_id).exists():
        raise ServiceError("voice_not_found", f"No voice {voice!r}: use one of GET /v1/audio/voices, or a built-in "
                           f"name ({', '.join(OPENAI_VOICES)}) for your active voice.", status=404)
    return voice_id


def speech_create(*, owner_id: int, text: str, voice: str, speed: float = 1.0) -> Speech:
    """Check the whole request, then answer each sentence from the cache or queue its job."""
    if not SPEECH_SPEED_MIN <= speed <= SPEECH_SPEED_MAX:
        raise ServiceError("speed_unsupported", f"speed must be between {SPEECH_SPEED_MIN} and {SPEECH_SPEED_MAX} "
                           f"with this engine; got {speed}.")
    if len(text) > SPEECH_INPUT_MAX_CHARS:
        raise ServiceError("text_too_long", f"input has {len(text)} characters; at most {SPEECH_INPUT_MAX_CHARS}.")
    voice_id = speech_voice_resolve(owner_id=owner_id, voice=voice)
    pieces = sentences_split(text, max_chars=settings.JOB_TEXT_MAX_CHARS)
    if not pieces and not text.strip():
        raise ServiceError("text_empty", "input is empty; send 1 or more characters to speak.")
    if not pieces:
        raise ServiceError("text_unspeakable", "input has no letters or digits to speak.")
    # Every sentence is checked before anything is queued.
    texts = [job_text_normalise(text=piece) for piece in pieces]
    # 1.0 is the engines' default: leaving it out shares clips with requests that never said it.
    params = {} if speed == 1.0 else {"speed": speed}
    sentences = []
    with transaction.atomic():
        for sentence in texts:
            language = sentence_language(sentence)
            result = job_create(owner_id=owner_id, text=sentence, language=language, params=params,
                                voice_id=voice_id)
            if isinstance(result, ClipHit):
                sentences.append(SpeechSentence(text=sentence, language=language, clip_id=result.clip.id, job_id=None))
            else:
                sentences.append(SpeechSentence(text=sentence, language=language, clip_id=None, job_id=result.id))
    return Speech(owner_id=owner_id, sentences=tuple(sentences), characters=len(text))


def _sentence_clip_id(*, speech: Speech, sentence: SpeechSentence, wait_seconds: float) -> int:
    if sentence.clip_id is not None:
        return sentence.clip_id
    deadline = time.monotonic() + wait_seconds
    delay = _POLL_FIRST_SECONDS
    while True:
        state = job_state_get(owner_id=speech.owner_id, job_id=sentence.job_id)
        if state is None:
            raise ServiceError("job_gone", f"The job for {sentence.text[:60]!r} was deleted.", status=500)
        if state.status == Job.Status.SUCCEEDED and state.clip_id is not None:
            return state.clip_id
        if state.finished:
            raise ServiceError(state.error_code or "synthesis_failed",
                               f"Synthesis failed for {sentence.text[:60]!r}: {state.error_message}", status=500)
        if time.monotonic() >= deadline:
            raise ServiceError("speech_timeout", f"The sentence {sentence.text[:60]!r} was not ready after "
                               f"{wait_seconds:g} s (job {sentence.job_id} is {state.status}).", status=504)
        time.sleep(delay)
        delay = min(delay * 1.5, _POLL_MAX_SECONDS)


def _clip_samples(*, owner_id: int, clip_id: int) -> np.ndarray:
    """The clip's audio as float32 mono at SPEECH_SAMPLE_RATE."""
    name = Clip.objects.filter(id=clip_id, owner_id=owner_id).values_list("audio", flat=True).first()
    if name is None:
        raise ServiceError("audio_missing", "A sentence's clip was deleted before it could be read.", status=500)
    try:
        with default_storage.open(name, "rb") as file:
            samples, rate = soundfile.read(file, dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise ServiceError("audio_missing", "A sentence's audio file is gone from storage.", status=500) from None
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if rate != SPEECH_SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SPEECH_SAMPLE_RATE)
    return np.ascontiguousarray(mono, dtype=np.float32)


def speech_samples(*, speech: Speech, wait_seconds: float | None = None) -> Iterator[np.ndarray]:
    """Each sentence's audio, in order, as soon as it is ready (float32 mono, SPEECH_SAMPLE_RATE).

    Raises ServiceError when a sentence's job failed (500, the job's error code), was not ready in
    time (504 `speech_timeout`) or its clip is gone (500 `audio_missing`)."""
    wait = settings.SPEECH_SENTENCE_WAIT_SECONDS if wait_seconds is None else wait_seconds
    for sentence in speech.sentences:
        clip_id = _sentence_clip_id(speech=speech, sentence=sentence, wait_seconds=wait)
        yield _clip_samples(owner_id=speech.owner_id, clip_id=clip_id)
