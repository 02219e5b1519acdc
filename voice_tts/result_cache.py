"""Results kept in Redis so that a cache hit and a poll run no SQL: the database stays the truth.

What is kept, per owner:
- `hit:voice:<owner>`: the active voice's id;
- `hit:clip:<owner>:<cache key>`: the clip's id and duration (the worker writes it when it
  stores a clip; a lookup that missed writes it from the database);
- `job:<id>`: a job's state (`JobState`), written when the job is created and after each
  state change, read by polling with the owner checked on every read;
and `clip_use:*`, the clips' use counts, flushed to the database in batches
(`services.clips.clip_uses_flush`).

Invalidation is by generation, not by deleting keys one by one: every entry carries the owner's
generation (`hit:gen:<owner>`) at the time its data was read from the database, and is only
believed while that generation is still current. Anything that changes the truth behind the
entries (a clip deleted or evicted, a voice created, deleted or (de)activated, a user deleted)
increments the generation, right away and again after its transaction commits. A reader that
filled an entry from data read before the change cannot resurrect it: it read the generation
first, so its entry carries the old number. A new model version needs nothing: it is part of
every cache key, and it is read from Redis on every request (`worker.status`).

Every function degrades to "not cached" when Redis is down; callers then use the database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from voice_tts.models import Job
from voice_tts.redis_client import REDIS_ERRORS, redis_client, redis_key
from voice_tts.worker.status import engine_version_key

logger = logging.getLogger(__name__)

# A job's state is kept this long after its last change. Finished jobs never change (but for
# a clip or voice deleted under them, which moves the generation), so this only bounds memory.
JOB_STATE_SECONDS = 600
# A state read from the database by a poll (not written by the job's own writer) is kept
# briefly unless the job is finished: a poll that read just before a state change and wrote
# just after it would otherwise hide the change for longer (the writer's SET wins otherwise).
JOB_STATE_FILL_SECONDS = 2
_ENTRY_SECONDS = 24 * 3600  # hit entries: memory bound only; validity is the generation's job


def _gen_key(owner_id: int) -> str:
    return redis_key("hit", "gen", str(owner_id))


def _voice_key(owner_id: int) -> str:
    return redis_key("hit", "voice", str(owner_id))


def _clip_key(owner_id: int, cache_key: str) -> str:
    return redis_key("hit", "clip", str(owner_id), cache_key)


def _job_key(job_id: Any) -> str:
    return redis_key("job", str(job_id))


def _use_keys() -> list[str]:
    return [redis_key("clip_use", "counts"), redis_key("clip_use", "last")]


def _hits_key() -> str:
    # Every use of a cached clip since Redis last lost its data (a Prometheus counter resets too).
    return redis_key("clip_use", "hits_total")


def _int(raw: bytes | None) -> int:  # a Redis counter, 0 while absent
    return int(raw) if raw else 0


# --- Generations ------------------------------------------------------------------------


def owner_entries_invalidate(*, owner_id: int) -> None:
    """Stop believing every entry of this owner: now, and once the caller's transaction commits
    (a reader between the two could have refilled from rows the transaction is replacing)."""
    _gen_bump(owner_id)
    transaction.on_commit(lambda: _gen_bump(owner_id))


def _gen_bump(owner_id: int) -> None:
    try:
        redis_client().incr(_gen_key(owner_id))
    except REDIS_ERRORS:
        # Entries written before stay believable until their TTL: say so loudly.
        logger.error("result cache: could not invalidate owner %s's entries", owner_id, exc_info=True)


def owner_generation(*, owner_id: int) -> int | None:
    """The owner's current generation (read it BEFORE the database rows an entry is made of),
    or None when Redis is down."""
    try:
        return _int(redis_client().get(_gen_key(owner_id)))
    except REDIS_ERRORS:
        return None


# --- What a cache hit needs -----------------------------------------------------------


@dataclass(frozen=True)
class HitContext:
    """One round trip's worth: the owner's generation, the active voice (if cached and
    current) and the engine's model version (None: unknown to Redis)."""

    generation: int | None  # None: Redis is down
    voice_id: uuid.UUID | None
    model_version: str | None


def hit_context(*, owner_id: int, engine: str) -> HitContext:
    try:
        gen_raw, voice_raw, version_raw = redis_client().mget(
            [_gen_key(owner_id), _voice_key(owner_id), engine_version_key(engine)]
        )
    except REDIS_ERRORS:
        logger.warning("result cache unavailable; answering from the database", exc_info=True)
        return HitContext(generation=None, voice_id=None, model_version=None)
    generation = _int(gen_raw)
    voice_id = None
    if voice_raw:
        entry_gen, _, value = voice_raw.decode().partition(":")
        if int(entry_gen) == generation:
            voice_id = uuid.UUID(value)
    return HitContext(generation=generation, voice_id=voice_id,
                      model_version=version_raw.decode() if version_raw else None)


def active_voice_remember(*, owner_id: int, voice_id: Any, generation: int | None) -> None:
    if generation is None:
        return
    try:
        redis_client().set(_voice_key(owner_id), f"{generation}:{voice_id}", ex=_ENTRY_SECONDS)
    except REDIS_ERRORS:
        logger.warning("result cache: could not keep the active voice", exc_info=True)


@dataclass(frozen=True)
class CachedClip:
    id: int
    cache_key: str
    duration_seconds: float


@dataclass(frozen=True)
class ClipHit:
    """A request answered from the clip cache: no job, no row written."""

    clip: CachedClip
    text: str
    language: str


# Look the clip up and, on a hit, count its use: one round trip, and only believed when the
# entry's generation is the owner's current one (checked inside Redis, atomically).
_CLIP_HIT = """
local entry = redis.call('GET', KEYS[2])
if not entry then return false end
local gen = redis.call('GET', KEYS[1]) or '0'
local sep = string.find(entry, ':', 1, true)
if string.sub(entry, 1, sep - 1) ~= gen then return false end
local rest = string.sub(entry, sep + 1)
local clip_id = string.sub(rest, 1, string.find(rest, ':', 1, true) - 1)
redis.call('HINCRBY', KEYS[3], clip_id, 1)
redis.call('HSET', KEYS[4], clip_id, ARGV[1])
redis.call('INCR', KEYS[5])
return rest
"""
_clip_hit_script: Any = None


def clip_hit_cached(*, owner_id: int, cache_key: str) -> CachedClip | None:
    """The owner's clip for `cache_key` from Redis, its use counted; None on a miss (or Redis down)."""
    global _clip_hit_script
    client = redis_client()
    try:
        if _clip_hit_script is None:
            _clip_hit_script = client.register_script(_CLIP_HIT)
        found = _clip_hit_script(keys=[_gen_key(owner_id), _clip_key(owner_id, cache_key), *_use_keys(), _hits_key()],
                                 args=[f"{time.time():.3f}"], client=client)
    except REDIS_ERRORS:
        return None
    if not found:
        return None
    clip_id, _, duration = found.decode().partition(":")
    return CachedClip(id=int(clip_id), cache_key=cache_key, duration_seconds=float(duration))


def clip_remember(*, owner_id: int, clip: CachedClip, generation: int | None) -> None:
    """Keep a clip's hit entry, tagged with the generation read before the clip's row was."""
    if generation is None:
        return
    try:
        redis_client().set(_clip_key(owner_id, clip.cache_key), f"{generation}:{clip.id}:{clip.duration_seconds!r}",
                           ex=_ENTRY_SECONDS)
    except REDIS_ERRORS:
        logger.warning("result cache: could not keep clip %s", clip.id, exc_info=True)


def clip_use_count(*, clip_id: int) -> bool:
    """Count one use of a clip in Redis; False when Redis is down (the caller counts in the database)."""
    counts, last = _use_keys()
    try:
        pipe = redis_client().pipeline(transaction=False)
        pipe.hincrby(counts, str(clip_id), 1)
        pipe.hset(last, str(clip_id), f"{time.time():.3f}")
        pipe.incr(_hits_key())
        pipe.execute()
    except REDIS_ERRORS:
        return False
    return True


def cache_hits_total() -> int:
    """Uses of cached clips counted since Redis last lost its data (raises when Redis is down)."""
    return _int(redis_client().get(_hits_key()))


# Move the live counters aside for flushing, unless an earlier flush left some there (it
# crashed before deleting them, after or before its commit): those are flushed first.
_USES_ROTATE = """
if redis.call('EXISTS', KEYS[3]) == 0 and redis.call('EXISTS', KEYS[4]) == 0 then
  if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('RENAME', KEYS[1], KEYS[3]) end
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('RENAME', KEYS[2], KEYS[4]) end
end
return {redis.call('HGETALL', KEYS[3]), redis.call('HGETALL', KEYS[4])}
"""


def _flushing_keys() -> list[str]:
    return [redis_key("clip_use", "flushing", "counts"), redis_key("clip_use", "flushing", "last")]


@contextlib.contextmanager
def clip_uses_flushing() -> Iterator[dict[int, tuple[int, dt.datetime | None]] | None]:
    """The counts to flush, {clip id: (uses, last use)}, or None when another flush is running
    (or Redis is down). When the block ends without an exception the counts are dropped from
    Redis; when it raises they stay and the next flush takes them again."""
    client = redis_client()
    try:
        lock = client.lock(redis_key("clip_use", "flush_lock"), timeout=120)
        if not lock.acquire(blocking=False):
            yield None
            return
    except REDIS_ERRORS:
        logger.warning("clip use counters unavailable", exc_info=True)
        yield None
        return
    try:
        try:
            counts_raw, last_raw = client.eval(_USES_ROTATE, 4, *_use_keys(), *_flushing_keys())
        except REDIS_ERRORS:
            logger.warning("clip use counters unavailable", exc_info=True)
            yield None
            return
        last = dict(zip(last_raw[::2], last_raw[1::2], strict=True))
        taken: dict[int, tuple[int, dt.datetime | None]] = {}
        for field, count in zip(counts_raw[::2], counts_raw[1::2], strict=True):
            seen = last.get(field)
            taken[int(field)] = (int(count), dt.datetime.fromtimestamp(float(seen), tz=dt.UTC) if seen else None)
        yield taken
        try:
            client.delete(*_flushing_keys())
        except REDIS_ERRORS:
            logger.error("clip uses flushed but not cleared: they will be counted again", exc_info=True)
    finally:
        try:
            lock.release()
        except REDIS_ERRORS:
            logger.warning("clip use flush lock expired or Redis is gone", exc_info=True)


# --- Job state --------------------------------------------------------------------------


@dataclass(frozen=True)
class JobState:
    """What a job is, as polling and webhooks show it: data, not JSON (the APIs render it)."""

    id: uuid.UUID
    owner_id: int
    status: str
    text: str
    language: str
    params: dict[str, Any]
    voice_id: uuid.UUID | None
    cache_hit: bool
    cache_key: str
    clip_id: int | None
    duration_seconds: float | None  # the clip's, when it has one
    processing_time_ms: int | None
    error_code: str
    error_message: str
    created_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    @property
    def finished(self) -> bool:
        return self.status in Job.FINISHED

    @property
    def has_audio(self) -> bool:
        return self.status == Job.Status.SUCCEEDED and self.clip_id is not None


# The columns a JobState is read from (one query; the clip's duration through the join).
JOB_STATE_COLUMNS = (
    "id", "owner_id", "status", "text", "language", "params", "voice_id", "cache_hit", "cache_key", "clip_id",
    "clip__duration_seconds", "processing_time_ms", "error_code", "error_message", "created_at", "started_at",
    "finished_at",
)
_DATES = ("created_at", "started_at", "finished_at")


def job_state_from_row(row: dict[str, Any]) -> JobState:
    values = dict(row)
    values["duration_seconds"] = values.pop("clip__duration_seconds")
    return JobState(**values)


def job_state_of(job: Job, *, duration_seconds: float | None = None) -> JobState:
    """The state of a job instance; its clip's duration is `duration_seconds` when given, else
    read from `job.clip` (a query unless it was loaded with the job)."""
    if duration_seconds is None and job.clip_id is not None:
        duration_seconds = job.clip.duration_seconds
    row = {name: getattr(job, name) for name in JOB_STATE_COLUMNS if name != "clip__duration_seconds"}
    row["clip__duration_seconds"] = duration_seconds
    return job_state_from_row(row)


def _job_state_dumps(state: JobState, generation: int) -> str:
    values = dict(vars(state))  # shallow: asdict() deep-copies, a third of a state write
    for name in ("id", "voice_id"):
        values[name] = str(values[name]) if values[name] else None
    for name in _DATES:
        values[name] = values[name].isoformat() if values[name] else None
    values["gen"] = generation
    return json.dumps(values, separators=(",", ":"))


def _job_state_loads(raw: bytes) -> tuple[JobState, int]:
    values = json.loads(raw)
    generation = values.pop("gen")
    values["id"] = uuid.UUID(values["id"])
    values["voice_id"] = uuid.UUID(values["voice_id"]) if values["voice_id"] else None
    for name in _DATES:
        values[name] = dt.datetime.fromisoformat(values[name]) if values[name] else None
    return JobState(**values), generation


def job_state_cached(*, owner_id: int, job_id: Any) -> tuple[JobState | None, bool, int | None]:
    """(state, found, generation): the owner's job from Redis. `found` with no state means the
    job is someone else's (never shown). `generation` is for the caller's database fill."""
    try:
        raw, gen_raw = redis_client().mget([_job_key(job_id), _gen_key(owner_id)])
    except REDIS_ERRORS:
        return None, False, None
    generation = _int(gen_raw)
    if raw is None:
        return None, False, generation
    state, entry_gen = _job_state_loads(raw)
    if state.owner_id != owner_id:
        return None, True, generation  # the owner check: another user's job id is a plain 404
    if entry_gen != generation:
        return None, False, generation
    return state, True, generation


def job_state_remember(state: JobState, *, generation: int | None, writer: bool) -> None:
    """Keep a job's state. The job's own writers (create, claim, finish) overwrite; a poll
    that read the row only fills a gap (NX), briefly unless the job is finished."""
    if generation is None:
        return
    try:
        if writer:
            redis_client().set(_job_key(state.id), _job_state_dumps(state, generation), ex=JOB_STATE_SECONDS)
        else:
            ttl = JOB_STATE_SECONDS if state.finished else JOB_STATE_FILL_SECONDS
            redis_client().set(_job_key(state.id), _job_state_dumps(state, generation), ex=ttl, nx=True)
    except REDIS_ERRORS:
        logger.warning("result cache: could not keep job %s", state.id, exc_info=True)


def job_state_forget(*, job_id: Any) -> None:
    try:
        redis_client().delete(_job_key(job_id))
    except REDIS_ERRORS:
        logger.error("result cache: could not drop job %s's state", job_id, exc_info=True)


# --- Waking whoever waits for a job -----------------------------------------------------
#
# A finished job's writer pushes one element onto `job:done:<id>` (after its state is kept). A waiter
# blocks on that list with BLMOVE from the list to itself: it returns at once when an element is there
# and leaves it there, so a push that came before the wait began is still seen, and every waiter of the
# job is woken, not only the first. The list expires with the job's state. A push can be lost (Redis
# restarted, a job finished by the sweeper, which does not push): the waiter's timeout is its fallback,
# after which it reads the state again (services/speech.py).

# Each blocking call stays under the client's socket timeout (redis_client: 2 s); longer waits loop.
_WAIT_SLICE_SECONDS = 1.0


def _done_key(job_id: Any) -> str:
    return redis_key("job", "done", str(job_id))


def job_finished_signal(*, job_id: Any) -> None:
    """Wake every waiter of this job (it has finished: its state is already kept)."""
    try:
        pipe = redis_client().pipeline(transaction=False)
        pipe.rpush(_done_key(job_id), b"1")
        pipe.expire(_done_key(job_id), JOB_STATE_SECONDS)
        pipe.execute()
    except REDIS_ERRORS:
        logger.warning("could not wake the waiters of job %s; they read its state after their fallback", job_id,
                       exc_info=True)


def job_finished_wait(*, job_id: Any, seconds: float) -> bool:
    """Block until the job's finish is signalled (True), or `seconds` pass (False). Never raises: with Redis
    down it sleeps a little and returns False, and the caller reads the state from the database."""
    deadline = time.monotonic() + seconds
    key = _done_key(job_id)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            if redis_client().blmove(key, key, min(left, _WAIT_SLICE_SECONDS), src="LEFT", dest="RIGHT") is not None:
                return True
        except REDIS_ERRORS:
            logger.warning("job wake-ups unavailable; waiting %.2f s before reading job %s again",
                           min(left, 0.25), job_id, exc_info=True)
            time.sleep(min(left, 0.25))
            return False
