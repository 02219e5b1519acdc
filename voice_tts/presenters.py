"""The JSON shape of a job, shared by the API and the webhook payload."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from django.urls import reverse

from voice_tts.models import Job

# The columns job_representation_values() reads: what a `.values()` query on the polling hot
# path selects (a clip's duration through the join), so that path builds no model instances.
JOB_VALUES_FIELDS = (
    "id", "status", "text", "language", "params", "voice_id", "cache_hit", "cache_key", "clip_id",
    "clip__duration_seconds", "processing_time_ms", "error_code", "error_message", "created_at", "started_at",
    "finished_at",
)


_NIL = UUID(int=0)


@functools.cache
def _job_audio_path_template() -> str:
    # reverse() once: it took longer than the rest of the job JSON on the polling hot path.
    return reverse("voice_tts:job-audio", kwargs={"job_id": _NIL}).replace(str(_NIL), "{}")


def job_audio_path(job_id: Any) -> str:
    return _job_audio_path_template().format(UUID(str(job_id)))


def job_representation_values(row: Mapping[str, Any], *, base_url: str) -> dict[str, Any]:
    """The job JSON from a mapping with JOB_VALUES_FIELDS (a `.values()` row)."""
    status = row["status"]
    succeeded = status == Job.Status.SUCCEEDED and row["clip_id"] is not None
    error = {"code": row["error_code"], "message": row["error_message"]} if status == Job.Status.FAILED else None
    created_at, started_at, finished_at = row["created_at"], row["started_at"], row["finished_at"]
    return {
        "id": str(row["id"]),
        "status": status,
        "text": row["text"],
        "language": row["language"],
        "params": row["params"],
        "voice_id": str(row["voice_id"]) if row["voice_id"] else None,
        "cache_hit": row["cache_hit"],
        "cache_key": row["cache_key"] or None,
        "audio_url": base_url.rstrip("/") + job_audio_path(row["id"]) if succeeded else None,
        "duration_seconds": row["clip__duration_seconds"] if succeeded else None,
        "processing_time_ms": row["processing_time_ms"],
        "error": error,
        "created_at": created_at.isoformat() if created_at else None,
        "started_at": started_at.isoformat() if started_at else None,
        "finished_at": finished_at.isoformat() if finished_at else None,
    }


def job_representation(job: Job, *, base_url: str) -> dict[str, Any]:
    succeeded = job.status == Job.Status.SUCCEEDED and job.clip_id is not None
    row = {name: getattr(job, name) for name in JOB_VALUES_FIELDS if name != "clip__duration_seconds"}
    # Only a finished job with a clip shows its duration; don't load the clip otherwise.
    row["clip__duration_seconds"] = job.clip.duration_seconds if succeeded else None
    return job_representation_values(row, base_url=base_url)
