"""Speech for a long text, sentence by sentence (the OpenAI-compatible POST /v1/audio/speech).

The text is split into sentences (workers/speech_text/sentences.py) and every sentence goes
through the ordinary job path (`job_create`): each is its own clip in the cache, so a sentence
said before, in any request, is a hit; the others are queued, all up front and in order, in one
transaction (all or nothing; their messages leave once it commits). Then the sentences' audio
is read back in order, each as soon as its job has finished, for the caller to stream.

The first sentence, when it is long, is cut at its first clause boundary (`speech_first_clause`:
"할머니, 아침 식사 후에 ..." gives "할머니," and the rest), so that first audio waits for one clause's
synthesis, not a whole sentence's; the same text always gives the same pieces, so a repeat is all
cache hits. The work of one request is bounded (`speech_segments`): a text of more than
SPEECH_MAX_SEGMENTS pieces keeps its first piece alone (first audio comes after one clause or
sentence) and merges the rest, in order, into SPEECH_MAX_SEGMENTS - 1 segments. In the same transaction the new jobs are
checked against the owner's unfinished-job cap (`jobs_pending_admit`) and counted, by the caller,
against the per-user jobs throttle (`syntheses_admit`): a refusal queues nothing.

Waiting reads the job's state the way polling does (`job_state_get`: the Redis copy the
worker writes at each state change, else one query), never inside a transaction, and between two
reads blocks until the worker's push says the job finished (result_cache.job_finished_wait), or
SPEECH_WAKE_FALLBACK_SECONDS pass without one (a lost push then costs that, never a hang); it gives
up after SPEECH_SENTENCE_WAIT_SECONDS per sentence, and after SPEECH_DEADLINE_SECONDS for the whole
answer.

`speech_audio` encodes the answer. Every body it makes is one file in the asked format at
SPEECH_SAMPLE_RATE, whether a client reads it whole or plays it as it comes. Where a clip's
stored encoding (services/clip_formats.py, the one our own clip routes serve) is exactly what the
answer needs, it is sent as it is, and made and stored through that service when missing, so the
next request for the sentence encodes nothing:
- mp3: every sentence, as its own stored MP3 file. MPEG frames concatenate into one valid stream
  (no Xing/Info frame: constant bit rate). Each file carries its encoder delay and padding, so a
  sentence boundary gains about 60 ms of silence (at 24 kHz), against a continuous stream.
- opus, flac, wav: a single-sentence text is that one file. Per-sentence files of these do not
  concatenate into one file (a second RIFF header, a second FLAC STREAMINFO whose frames number
  their samples from 0 again, a second Ogg logical stream that most decoders never read), so for a
  longer text opus and flac are one continuous stream encoded here (AudioStreamEncoder), as before,
  and wav is one header followed by each WAV's samples (below).
- wav (a longer text) and pcm: a streaming WAV header (wav only), then each sentence's samples. Where the
  clip's own WAV is 16-bit mono at SPEECH_SAMPLE_RATE, those are its data chunk's bytes, sent as stored;
  others are resampled and converted here.
A stored encoding is used only at SPEECH_SAMPLE_RATE (24 kHz): clip_formats encodes at the
engine's rate (audio_codec: wav/flac unchanged, opus >= it, mp3 <= 24 kHz), so mp3 is stored
here for engines above 22.05 kHz, opus for engines above 16 kHz up to 24 kHz, flac and wav only
for a 24 kHz engine (neural_cpu: all four; GPT-SoVITS, 32 kHz: mp3; espeak, 22.05 kHz: opus).
The rule is per request for mp3: the first sentence decides between stored files and a
continuous stream (frames of a continuous LAME stream may borrow bits from the frame before
them, so a whole file must never be spliced into one).
"""

from __future__ import annotations

import io
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import soundfile
import soxr
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from voice_tts.audio_codec import AudioStreamEncoder, audio_encode, audio_encoded_rate
from voice_tts.errors import ServiceError
from voice_tts.models import Clip, Job, Voice
from voice_tts.result_cache import ClipHit, job_finished_signal, job_finished_wait
from voice_tts.services.clip_formats import clip_audio_encoded
from voice_tts.services.job_text import job_text_normalise
from voice_tts.services.jobs import job_create, job_state_get, job_state_refresh, jobs_pending_admit
from voice_tts.services.turns import jobs_release
from workers.speech_text.sentences import sentence_language, sentences_split

logger = logging.getLogger(__name__)

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
                           f"name ({', '.join(OPENAI_VOICES)}) for your active voice.")
    return voice_id


def _segments_pack(sentences: list[str], *, limit: int, by_language: bool) -> list[str]:
    """Consecutive sentences joined (by a space) while a segment stays within `limit` characters and, when
    `by_language`, within one language. Greedy from the start: for contiguous pieces in order, no packing
    within `limit` makes fewer segments, and a larger `limit` never makes more."""
    segments: list[str] = []
    current: list[str] = []
    length = 0
    language = ""
    for sentence in sentences:
        sentence_lang = sentence_language(sentence) if by_language else ""
        if current and (length + 1 + len(sentence) > limit or sentence_lang != language):
            segments.append(" ".join(current))
            current = []
        if current:
            length += 1 + len(sentence)
        else:
            length, language = len(sentence), sentence_lang
        current.append(sentence)
    if current:
        segments.append(" ".join(current))
    return segments


# The first sentence is cut at its first clause boundary (a comma, `;`, `:`, `、` and their full-width forms, then
# a space) when it is longer than FIRST_CLAUSE_SENTENCE_CHARS and the clause before the mark has at least
# FIRST_CLAUSE_MIN_CHARS characters, so that first audio waits for the synthesis of that clause only (api_v2 cuts
# every sentence on every punctuation mark, `cut5`; ours cuts the first sentence only, the others stay whole).
FIRST_CLAUSE_SENTENCE_CHARS = 16
FIRST_CLAUSE_MIN_CHARS = 3
_CLAUSE_MARKS = ",;:、，；："


def speech_first_clause(sentence: str) -> tuple[str, str] | None:
    """(the first clause with its mark, the rest) of a long sentence, else None. Cut only where the mark is
    followed by a space, so that the two pieces joined by a space are the sentence again."""
    if len(sentence) <= FIRST_CLAUSE_SENTENCE_CHARS:
        return None
    for index, char in enumerate(sentence[:-1]):
        if char in _CLAUSE_MARKS and sentence[index + 1] == " " and index >= FIRST_CLAUSE_MIN_CHARS:
            head, rest = sentence[: index + 1], sentence[index + 2:].strip()
            if any(ch.isalnum() for ch in head) and any(ch.isalnum() for ch in rest):
                return head, rest
    return None


def speech_segments(sentences: list[str], *, max_segments: int, max_chars: int) -> list[str] | None:
    """What one speech request synthesises (`_sentences_segments`), with the first sentence cut at its first
    clause boundary when it is long (speech_first_clause): first audio comes after one clause. If the cut
    would make the text not fit (one segment more), the first sentence stays whole."""
    cut = speech_first_clause(sentences[0]) if sentences else None
    if cut is not None:
        segments = _sentences_segments([*cut, *sentences[1:]], max_segments=max_segments, max_chars=max_chars)
        if segments is not None:
            return segments
    return _sentences_segments(sentences, max_segments=max_segments, max_chars=max_chars)


def _sentences_segments(sentences: list[str], *, max_segments: int, max_chars: int) -> list[str] | None:
    """What one speech request synthesises: at most `max_segments` texts of at most `max_chars` characters
    (sentences as sentences_split cuts them, each within `max_chars`); None when they do not fit.

    Up to `max_segments` sentences: each alone, as before (each its own clip, shared with the same sentence
    in any request; the first audio after one sentence). More: the first sentence stays alone, for first audio,
    and the rest are merged into `max_segments - 1` segments, packed with the smallest length limit that fits
    (segments of even length, so that each arrives while the one before plays), never merging sentences of
    two languages unless that is the only way to fit (then the segment's language is its letters': any Hangul,
    Korean). The same text always gives the same segments, so a repeated request is all cache hits."""
    if len(sentences) <= max_segments:
        return list(sentences)
    first, rest = sentences[0], sentences[1:]
    budget = max_segments - 1
    for by_language in (True, False):
        if len(_segments_pack(rest, limit=max_chars, by_language=by_language)) > budget:
            continue
        low, high = max(len(sentence) for sentence in rest), max_chars  # `high` fits, `low` may not
        while low < high:
            middle = (low + high) // 2
            if len(_segments_pack(rest, limit=middle, by_language=by_language)) <= budget:
                high = middle
            else:
                low = middle + 1
        return [first, *_segments_pack(rest, limit=high, by_language=by_language)]
    return None


def speech_create(
    *, owner_id: int, text: str, voice: str, speed: float = 1.0,
    syntheses_admit: Callable[[int], None] | None = None,
) -> Speech:
    """Check the whole request, then answer each segment from the cache or queue its job.

    `syntheses_admit(n)` is called inside the transaction, with the number of syntheses about to be queued
    (cache hits not counted), once they have passed the unfinished-job cap; it raises to refuse them all (the
    API's jobs throttle). Nothing is queued unless everything passed."""
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
    segments = speech_segments(texts, max_segments=settings.SPEECH_MAX_SEGMENTS, max_chars=settings.JOB_TEXT_MAX_CHARS)
    if segments is None:  # only with a JOB_TEXT_MAX_CHARS or SPEECH_MAX_SEGMENTS lowered far below the defaults
        raise ServiceError("text_too_many_segments", f"input needs more than {settings.SPEECH_MAX_SEGMENTS} "
                           f"segments of at most {settings.JOB_TEXT_MAX_CHARS} characters; send it in parts.")
    # 1.0 is the engines' default: leaving it out shares clips with requests that never said it.
    params = {} if speed == 1.0 else {"speed": speed}
    sentences = []
    with transaction.atomic():
        for segment in segments:
            language = sentence_language(segment)
            result = job_create(owner_id=owner_id, text=segment, language=language, params=params,
                                voice_id=voice_id, pending_check=False, release=False)
            if isinstance(result, ClipHit):
                sentences.append(SpeechSentence(text=segment, language=language, clip_id=result.clip.id, job_id=None))
            else:
                sentences.append(SpeechSentence(text=segment, language=language, clip_id=None, job_id=result.id))
        queued = sum(1 for sentence in sentences if sentence.job_id is not None)
        if queued:
            jobs_pending_admit(owner_id=owner_id)
            # One release pass for all the request's jobs (in order: a stream's segments go out first to last),
            # in this transaction (one commit less before the first segment's message leaves); its messages
            # leave after the commit, once the job states are kept (each job's on_commit, registered first), and
            # a refusal below rolls it back with the rows.
            jobs_release(owner_id=owner_id)
            if syntheses_admit is not None:
                syntheses_admit(queued)  # last: the throttle's units are not given back by a rollback
    return Speech(owner_id=owner_id, sentences=tuple(sentences), characters=len(text))


class _SpeechAbandoned(Exception):
    """The client has gone: the answer ends here, quietly."""


def _sentence_clip_id(*, speech: Speech, sentence: SpeechSentence, wait_seconds: float, answer_deadline: float,
                      client_gone: Callable[[], bool] | None = None) -> int:
    if sentence.clip_id is not None:
        return sentence.clip_id
    deadline = min(time.monotonic() + wait_seconds, answer_deadline)
    while True:
        state = job_state_get(owner_id=speech.owner_id, job_id=sentence.job_id)
        if state is None:
            raise ServiceError("job_gone", f"The job for {sentence.text[:60]!r} was deleted.")
        if state.status == Job.Status.SUCCEEDED and state.clip_id is not None:
            return state.clip_id
        if state.finished:
            raise ServiceError(state.error_code or "synthesis_failed",
                               f"Synthesis failed for {sentence.text[:60]!r}: {state.error_message}")
        if time.monotonic() >= answer_deadline:
            raise ServiceError("speech_timeout", f"The answer was not ready within SPEECH_DEADLINE_SECONDS "
                               f"({settings.SPEECH_DEADLINE_SECONDS} s): the sentence {sentence.text[:60]!r} is "
                               f"{state.status} (job {sentence.job_id}). Its sentences already with a worker go "
                               f"on: a retry finds those made by then in the cache.")
        left = deadline - time.monotonic()
        if left <= 0:
            raise ServiceError("speech_timeout", f"The sentence {sentence.text[:60]!r} was not ready after "
                               f"{wait_seconds:g} s (job {sentence.job_id} is {state.status}).")
        if client_gone is not None and client_gone():
            raise _SpeechAbandoned
        # A stream holds no database connection while it waits (the web has one per thread, and each open
        # stream is a thread): a PostgreSQL server's connections are not spent on sleeping streams.
        if not transaction.get_connection().in_atomic_block:
            transaction.get_connection().close()
        # Woken by the worker's push as the job finishes, or by `speech_wake` as the client hangs up; without
        # either (a lost push), the state is read again anyway.
        job_finished_wait(job_id=sentence.job_id, seconds=min(left, settings.SPEECH_WAKE_FALLBACK_SECONDS))
        if client_gone is not None and client_gone():
            raise _SpeechAbandoned


def speech_wake(*, speech: Speech) -> None:
    """End the wait of a stream of this speech at once (its client has gone: it then sees `client_gone`).

    It pushes onto the wake-up list of each of the speech's jobs, the one the worker pushes onto when the job
    finishes: a spurious wake only makes the waiter read the job's state again."""
    for sentence in speech.sentences:
        if sentence.job_id is not None:
            job_finished_signal(job_id=sentence.job_id)


SPEECH_ABANDONED = "speech_abandoned"


def speech_jobs_cancel(*, speech: Speech) -> int:
    """Fail the speech's jobs that are still held in their owner's turn (services.turns: no worker has them), so
    that an answer nobody reads any more is not synthesised; returns how many. Jobs already sent to a worker are
    left to finish: their work is under way, at most JOBS_IN_FLIGHT_PER_USER of them, and each becomes a cached
    clip that a retry of the same text is answered from. Each cancel is a conditional UPDATE on `held`, so a
    release pass that took the job first wins, and the job then runs."""
    job_ids = [sentence.job_id for sentence in speech.sentences if sentence.job_id is not None]
    if not job_ids:
        return 0
    cancelled = list(Job.objects.filter(id__in=job_ids, status=Job.Status.QUEUED, held=True)
                     .values_list("id", flat=True))
    count = 0
    for job_id in cancelled:
        if Job.objects.filter(id=job_id, status=Job.Status.QUEUED, held=True).update(
                status=Job.Status.FAILED, held=False, finished_at=timezone.now(), error_code=SPEECH_ABANDONED,
                error_message="The answer's client went away before this sentence was made, so it was not made."):
            count += 1
            job_state_refresh(job_id=job_id, owner_id=speech.owner_id)  # only a job this call changed
    return count


def _audio_missing(what: str) -> ServiceError:
    return ServiceError("audio_missing", f"A sentence's {what} is gone from storage.")


def _sentence_clips(*, speech: Speech, wait_seconds: float, answer_deadline: float,
                    client_gone: Callable[[], bool] | None = None) -> Iterator[Clip]:
    """Each sentence's clip, in order, as soon as it is ready."""
    for sentence in speech.sentences:
        clip_id = _sentence_clip_id(speech=speech, sentence=sentence, wait_seconds=wait_seconds,
                                    answer_deadline=answer_deadline, client_gone=client_gone)
        clip = Clip.objects.filter(id=clip_id, owner_id=speech.owner_id).first()
        if clip is None:
            raise ServiceError("audio_missing", "A sentence's clip was deleted before it could be read.")
        yield clip


def _clip_samples(clip: Clip) -> np.ndarray:
    """The clip's audio as float32 mono at SPEECH_SAMPLE_RATE."""
    try:
        with default_storage.open(clip.audio.name, "rb") as file:
            samples, rate = soundfile.read(file, dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise _audio_missing("audio file") from None
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if rate != SPEECH_SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SPEECH_SAMPLE_RATE)
    return np.ascontiguousarray(mono, dtype=np.float32)


def _read(name: str, what: str) -> bytes:
    try:
        with default_storage.open(name, "rb") as file:
            return file.read()
    except FileNotFoundError:
        raise _audio_missing(what) from None


def speech_clip_stored(*, clip: Clip, audio_format: str) -> bytes | None:
    """The clip's stored file in `audio_format` if it is what /v1 answers (that format at SPEECH_SAMPLE_RATE),
    made and stored now (clip_formats) if it is not there yet; None if the stored one would be at another rate
    (or, for wav, is not 16-bit mono), and for pcm, which is never stored."""
    if audio_format == "pcm":
        return None
    try:
        stored_rate = audio_encoded_rate(audio_format=audio_format, sample_rate=clip.sample_rate)
    except ValueError:  # a rate the codec refuses (an odd imported clip): decoded and resampled instead
        return None
    if stored_rate != SPEECH_SAMPLE_RATE:
        return None
    if audio_format == "wav":  # the clip's own WAV, unless it is not what a 24 kHz 16-bit mono answer is
        data = _read(clip.audio.name, "audio file")
        try:
            info = soundfile.info(io.BytesIO(data))
        except soundfile.LibsndfileError:
            return None
        ok = (info.format, info.subtype, info.channels, info.samplerate) == ("WAV", "PCM_16", 1, SPEECH_SAMPLE_RATE)
        return data if ok else None
    try:
        stored = clip_audio_encoded(clip=clip, audio_format=audio_format)
    except ServiceError as exc:
        if exc.code in ("audio_missing", "not_found"):  # the WAV or the clip went meanwhile
            raise _audio_missing("audio file") from None
        raise
    return _read(stored.name, "stored encoding")


def _wav_pcm16_data(data: bytes) -> bytes | None:
    """The samples of a WAV file that is 16-bit PCM mono at SPEECH_SAMPLE_RATE, as the little-endian bytes a wav or
    pcm answer carries (its `data` chunk, read by libsndfile: no conversion). None for any other WAV (or a malformed
    one): the caller then converts the clip's samples itself."""
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as file:
            if (file.format, file.subtype, file.channels, file.samplerate) != ("WAV", "PCM_16", 1, SPEECH_SAMPLE_RATE):
                return None
            return file.read(dtype="int16").astype("<i2", copy=False).tobytes()
    except soundfile.LibsndfileError:
        return None


def _pcm_stream(clips: Iterable[Clip], audio_format: str) -> Iterator[bytes]:
    """wav (a streaming header, then samples) or pcm: a clip whose stored WAV is already 16-bit mono at
    SPEECH_SAMPLE_RATE goes out as that file's own sample bytes, decoded and encoded by nobody; another is
    resampled and converted here."""
    encoder = AudioStreamEncoder(audio_format=audio_format, sample_rate=SPEECH_SAMPLE_RATE)
    for clip in clips:
        stored = _wav_pcm16_data(_read(clip.audio.name, "audio file")) if clip.sample_rate == SPEECH_SAMPLE_RATE \
            else None
        if stored is None:
            yield encoder.write(_clip_samples(clip))
        else:  # writing no samples hands out the WAV header once, before the first sentence's bytes
            yield encoder.write(np.zeros(0, dtype=np.float32)) + stored
    yield encoder.close()


def _encoded_stream(clips: Iterable[Clip], audio_format: str) -> Iterator[bytes]:
    encoder = AudioStreamEncoder(audio_format=audio_format, sample_rate=SPEECH_SAMPLE_RATE)
    for clip in clips:
        yield encoder.write(_clip_samples(clip))
    yield encoder.close()


def speech_audio(*, speech: Speech, audio_format: str, wait_seconds: float | None = None,
                 client_gone: Callable[[], bool] | None = None) -> Iterator[bytes]:
    """The answer in `audio_format`: one item per sentence, in order, as soon as that sentence is ready, then
    possibly a last one. An item may be b"" (an encoder holding bytes back: FLAC until the end, Ogg up to a
    page). Everything it yields, joined, is one file (see the module docstring for which parts are stored
    encodings). The first item is the first sentence's: a failure before any audio raises from the first
    `next()`. Raises ServiceError when a sentence's job failed (500, the job's error code), was not ready in time
    (504 `speech_timeout`: SPEECH_SENTENCE_WAIT_SECONDS for the sentence, or SPEECH_DEADLINE_SECONDS since the
    first `next()` for the whole answer) or its clip or file is gone (500 `audio_missing`).

    `client_gone()` True (checked before and after each wait; `speech_wake` ends a wait at once) ends the answer
    there, without an error. However the answer ends early (the client gone, an error, the caller closing it), the
    request's jobs still held in its owner's turn are cancelled (`speech_jobs_cancel`)."""
    wait = settings.SPEECH_SENTENCE_WAIT_SECONDS if wait_seconds is None else wait_seconds
    answer_deadline = time.monotonic() + settings.SPEECH_DEADLINE_SECONDS
    clips = _sentence_clips(speech=speech, wait_seconds=wait, answer_deadline=answer_deadline,
                            client_gone=client_gone)
    finished = False
    try:
        yield from _speech_audio_encoded(clips, speech=speech, audio_format=audio_format)
        finished = True
    except _SpeechAbandoned:
        logger.info("speech for owner %s: the client hung up; its held sentences are cancelled", speech.owner_id)
    finally:
        if not finished:
            speech_jobs_cancel(speech=speech)


def _speech_audio_encoded(clips: Iterator[Clip], *, speech: Speech, audio_format: str) -> Iterator[bytes]:
    if audio_format == "mp3" or (len(speech.sentences) == 1 and audio_format != "pcm"):
        first = next(clips)
        stored = speech_clip_stored(clip=first, audio_format=audio_format)
        if stored is not None:
            yield stored
            for clip in clips:  # mp3 only: each sentence its own whole file
                data = speech_clip_stored(clip=clip, audio_format=audio_format)
                if data is None:  # a clip at another rate than the first: a whole file of its own all the same
                    data = audio_encode(samples=_clip_samples(clip), sample_rate=SPEECH_SAMPLE_RATE,
                                        audio_format=audio_format)
                yield data
            return
        clips = itertools.chain([first], clips)
    if audio_format in ("wav", "pcm"):
        yield from _pcm_stream(clips, audio_format)
        return
    yield from _encoded_stream(clips, audio_format)
