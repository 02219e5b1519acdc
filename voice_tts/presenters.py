"""The public JSON of a job and of a cache hit: data in, a dict out, no URLs.

Shared by the API (`voice_tts/http/presenters.py` adds the audio URL) and the webhook payload
(`services/webhooks.py`); `apis/schema.py` describes the same shapes for the OpenAPI schema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the data comes from the services
    from voice_tts.result_cache import ClipHit, JobState


def job_json(state: JobState, *, audio_url: str | None) -> dict[str, Any]:
    """`audio_url` is shown only when the job has audio."""
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
        "audio_url": audio_url if has_audio else None,
        "duration_seconds": state.duration_seconds if has_audio else None,
        "processing_time_ms": state.processing_time_ms,
        "error": error,
        "created_at": state.created_at.isoformat() if state.created_at else None,
        "started_at": state.started_at.isoformat() if state.started_at else None,
        "finished_at": state.finished_at.isoformat() if state.finished_at else None,
    }


def clip_hit_json(hit: ClipHit, *, audio_url: str) -> dict[str, Any]:
    """A request answered from the clip cache: no job was made (`id` is null)."""
    return {
        "id": None,
        "status": "succeeded",
        "cache_hit": True,
        "clip_id": hit.clip.id,
        "cache_key": hit.clip.cache_key,
        "audio_url": audio_url,
        "duration_seconds": hit.clip.duration_seconds,
        "text": hit.text,
        "language": hit.language,
    }
