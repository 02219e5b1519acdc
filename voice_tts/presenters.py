"""The public JSON of a job and of a cache hit, shared by the API and the webhook payload.

Services return data (`JobState`, `ClipHit`); this module is the one place that turns it into
the documented JSON (`apis/schema.py` describes the same shapes for the OpenAPI schema).
"""

from __future__ import annotations

import functools
from typing import Any
from uuid import UUID

from django.urls import reverse

from voice_tts.result_cache import ClipHit, JobState

_NIL = UUID(int=0)


@functools.cache
def _path_template(route: str, kwarg: str, sample: str) -> str:
    # reverse() once per route: on every poll it cost more than the rest of the JSON.
    return reverse(route, kwargs={kwarg: sample}).replace(sample, "{}")


def job_audio_path(job_id: Any) -> str:
    return _path_template("voice_tts:job-audio", "job_id", str(_NIL)).format(UUID(str(job_id)))


def clip_audio_path(cache_key: str) -> str:
    return _path_template("voice_tts:clip-audio", "cache_key", "0" * 64).format(cache_key)


def job_json(state: JobState, *, base_url: str) -> dict[str, Any]:
    has_audio = state.has_audio
    error = {"code": state.error_code, "message": state.error_message} if state.status == "failed" else None
    return {
        "id": str(state.id),
        "status": state.status,
        "text": state.text,
        "language": state.language,
        "params": state.params,
        "voice_id": str(state.voice_id) if state.voice_id else None,
        "cache_hit": state.cache_hit,
        "cache_key": state.cache_key or None,
        "audio_url": base_url.rstrip("/") + job_audio_path(state.id) if has_audio else None,
        "duration_seconds": state.duration_seconds if has_audio else None,
        "processing_time_ms": state.processing_time_ms,
        "error": error,
        "created_at": state.created_at.isoformat() if state.created_at else None,
        "started_at": state.started_at.isoformat() if state.started_at else None,
        "finished_at": state.finished_at.isoformat() if state.finished_at else None,
    }


def clip_hit_json(hit: ClipHit, *, base_url: str) -> dict[str, Any]:
    """A request answered from the clip cache: no job was made (`id` is null)."""
    return {
        "id": None,
        "status": "succeeded",
        "cache_hit": True,
        "clip_id": hit.clip.id,
        "cache_key": hit.clip.cache_key,
        "audio_url": base_url.rstrip("/") + clip_audio_path(hit.clip.cache_key),
        "duration_seconds": hit.clip.duration_seconds,
        "text": hit.text,
        "language": hit.language,
    }
