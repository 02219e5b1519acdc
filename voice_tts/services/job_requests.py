"""A request for speech as the HTTP routes answer it: a hit, or the job's state, and the job's audio.

`job_create` returns a `ClipHit` or a `Job` row; the routes show a job as its `JobState` (the same
snapshot a poll reads from Redis). These functions give them that data, so the API layer never
reaches the models or the result cache itself (`make lint`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voice_tts.errors import ServiceError
from voice_tts.models import Clip, Job
from voice_tts.result_cache import ClipHit, JobState, job_state_of
from voice_tts.services.jobs import job_create, job_wait

# What a job's `status` may be, for the API's schema.
JOB_STATUSES: list[tuple[str, str]] = Job.Status.choices


@dataclass(frozen=True)
class JobAnswer:
    """Exactly one of `hit` (answered from the clip cache: no job made) and `job` with its `state`."""

    hit: ClipHit | None = None
    job: Job | None = None
    state: JobState | None = None


def job_request(*, owner_id: int, **fields: Any) -> JobAnswer:
    """`job_create`, answered as the routes show it: the hit, or the new job and its state (taken
    from the row in hand: no second read)."""
    result = job_create(owner_id=owner_id, **fields)
    if isinstance(result, ClipHit):
        return JobAnswer(hit=result)
    return JobAnswer(job=result, state=job_state_of(result))


def job_request_wait(*, answer: JobAnswer, seconds: float) -> JobAnswer:
    """The job of `answer` once it finishes or `seconds` pass (legacy /generate); a hit, a finished
    job or no time to wait is answered as it is, without reading the row again."""
    if answer.job is None or answer.state is None or answer.state.finished or seconds <= 0:
        return answer
    job = job_wait(job_id=answer.job.id, seconds=seconds)
    return JobAnswer(job=job, state=job_state_of(job))


def job_audio_clip(*, owner_id: int, job_id: Any) -> tuple[Job, Clip]:
    """The owner's job and its clip; `not_found` for another user's job (existence is not revealed),
    `audio_not_ready` until it has succeeded."""
    job = Job.objects.select_related("clip").filter(id=job_id, owner_id=owner_id).first()
    if job is None:
        raise ServiceError("not_found", "Not found.")
    if job.status != Job.Status.SUCCEEDED or job.clip is None:
        raise ServiceError("audio_not_ready", f"The job is {job.status}; no audio yet.")
    return job, job.clip
