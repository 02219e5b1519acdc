"""The paths of a job's and a clip's audio (`voice_tts:job-audio`, `voice_tts:clip-audio`).

The one module below the services that reverses a route: the HTTP layer links audio with it, and
the webhook sender, whose body carries the job's absolute `audio_url` (docs/api.md), is the one
service allowed to import it (pyproject.toml says why; any other service that builds a URL fails
`make lint`).
"""

from __future__ import annotations

import functools
from typing import Any
from uuid import UUID

from django.urls import reverse

_NIL = UUID(int=0)


@functools.cache
def _path_template(route: str, kwarg: str, sample: str) -> str:
    # reverse() once per route: on every poll it cost more than the rest of the JSON.
    return reverse(route, kwargs={kwarg: sample}).replace(sample, "{}")


def job_audio_path(job_id: Any) -> str:
    return _path_template("voice_tts:job-audio", "job_id", str(_NIL)).format(UUID(str(job_id)))


def clip_audio_path(cache_key: str) -> str:
    return _path_template("voice_tts:clip-audio", "cache_key", "0" * 64).format(cache_key)


def job_audio_url(job_id: Any, *, base_url: str) -> str:
    return base_url.rstrip("/") + job_audio_path(job_id)


def clip_audio_url(cache_key: str, *, base_url: str) -> str:
    return base_url.rstrip("/") + clip_audio_path(cache_key)
