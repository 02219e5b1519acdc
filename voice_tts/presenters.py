"""The JSON shape of a job, shared by the API and the webhook payload."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from voice_tts.models import Job


def job_audio_path(job_id: Any) -> str:
    return reverse("voice_tts:job-audio", kwargs={"job_id": job_id})


def job_representation(job: Job, *, base_url: str) -> dict[str, Any]:
    succeeded = job.status == Job.Status.SUCCEEDED and job.clip_id is not None
    error = {"code": job.error_code, "message": job.error_message} if job.status == Job.Status.FAILED else None
    return {
        "id": str(job.id),
        "status": job.status,
        "text": job.text,
        "language": job.language,
        "params": job.params,
        "voice_id": str(job.voice_id) if job.voice_id else None,
        "cache_hit": job.cache_hit,
        "cache_key": job.cache_key or None,
        "audio_url": base_url.rstrip("/") + job_audio_path(job.id) if succeeded else None,
        "duration_seconds": job.clip.duration_seconds if succeeded else None,
        "processing_time_ms": job.processing_time_ms,
        "error": error,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }
