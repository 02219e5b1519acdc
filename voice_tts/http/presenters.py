"""The job JSON and the cache-hit JSON as the API answers them: `voice_tts.presenters` plus the
audio URL under the request's base URL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from voice_tts import presenters
from voice_tts.audio_links import clip_audio_url, job_audio_url

if TYPE_CHECKING:  # annotations only: the data comes from the services
    from voice_tts.result_cache import ClipHit, JobState


def job_json(state: JobState, *, base_url: str) -> dict[str, Any]:
    audio_url = job_audio_url(state.id, base_url=base_url) if state.has_audio else None
    return presenters.job_json(state, audio_url=audio_url)


def clip_hit_json(hit: ClipHit, *, base_url: str) -> dict[str, Any]:
    return presenters.clip_hit_json(hit, audio_url=clip_audio_url(hit.clip.cache_key, base_url=base_url))
