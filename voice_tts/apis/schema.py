"""OpenAPI pieces shared by the API views: the error shape, the job shape, audio bodies.

The views answer with plain dicts (the job JSON is shared with the webhook payload in
`presenters.job_json`), so the serializers here only describe those dicts for
drf-spectacular; tests/test_api_schema_fuzz.py checks that the live answers match them.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from voice_tts.services.job_requests import JOB_STATUSES
from voice_tts.services.job_text import SUPPORTED_LANGUAGES


class ApiErrorSerializer(serializers.Serializer):
    """Every 4xx/5xx from the API: a stable machine code and a human message."""

    code = serializers.CharField(help_text="Stable machine-readable code, e.g. `text_too_long`, `not_found`.")
    message = serializers.CharField(help_text="Human-readable explanation.")

    class Meta:
        ref_name = "Error"

    def get_fields(self) -> dict[str, serializers.Field]:
        # `fields` cannot be a class attribute (it is Serializer.fields); validation errors
        # carry DRF's per-field detail under it.
        fields = super().get_fields()
        fields["fields"] = serializers.JSONField(
            required=False, help_text="Per-field validation detail (only with code `invalid_input`)."
        )
        return fields


class JobErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()

    class Meta:
        ref_name = "JobError"


class JobOutputSerializer(serializers.Serializer):
    """Describes `presenters.job_json` (the API's and the webhooks' job JSON)."""

    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=JOB_STATUSES)
    text = serializers.CharField()
    language = serializers.ChoiceField(choices=SUPPORTED_LANGUAGES)
    params = serializers.DictField(child=serializers.JSONField())
    voice_id = serializers.UUIDField(allow_null=True)
    cache_hit = serializers.BooleanField()
    cache_key = serializers.CharField(allow_null=True)
    audio_url = serializers.URLField(allow_null=True, help_text="Set once the job succeeded.")
    duration_seconds = serializers.FloatField(allow_null=True)
    processing_time_ms = serializers.IntegerField(allow_null=True)
    error = JobErrorSerializer(allow_null=True, help_text="Set when the job failed.")
    created_at = serializers.DateTimeField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "Job"


class ClipHitOutputSerializer(serializers.Serializer):
    """Describes `presenters.clip_hit_json`: a request answered from the clip cache, no job made."""

    id = serializers.CharField(allow_null=True, help_text="Always null: a cache hit makes no job.")
    status = serializers.ChoiceField(choices=["succeeded"])
    cache_hit = serializers.BooleanField()
    clip_id = serializers.IntegerField()
    cache_key = serializers.CharField()
    audio_url = serializers.URLField(help_text="The clip's own (owner-only) audio route.")
    duration_seconds = serializers.FloatField()
    text = serializers.CharField()
    language = serializers.ChoiceField(choices=SUPPORTED_LANGUAGES)

    class Meta:
        ref_name = "ClipHit"


_ERROR_DESCRIPTIONS = {
    400: "Invalid input: `{code, message}` (validation errors add `fields`).",
    401: "No or an invalid `Authorization: Token <key>` header.",
    404: "Not found, or owned by another user (existence is never revealed).",
    405: "Method not allowed.",
    403: "A device's token on a route devices may not use (`device_not_allowed`).",
    409: "Conflict: the audio is not ready yet (`audio_not_ready`).",
    410: "The audio file is gone from storage (`audio_missing`).",
    413: "The upload is larger than VOICE_MAX_UPLOAD_BYTES (`file_too_large`); refused before the body is read.",
    415: "Unsupported media type or audio (`unsupported_audio`, `unsupported_sample_rate`, ...).",
    429: "Too many requests for this user; see `Retry-After`.",
    503: "A backing service (Redis) is unavailable.",
}


def error_responses(*statuses: int, descriptions: dict[int, str] | None = None) -> dict[int, OpenApiResponse]:
    """`{status: the error shape}` for `@extend_schema(responses=...)`; 405 is always possible,
    and 403 wherever a token is needed (a device's token is refused most routes).
    `descriptions` replaces the generic text for an endpoint whose status means something else."""
    texts = {**_ERROR_DESCRIPTIONS, **(descriptions or {})}
    extra = (403, 405) if 401 in statuses else (405,)
    return {status: OpenApiResponse(ApiErrorSerializer, description=texts[status])
            for status in dict.fromkeys((*statuses, *extra))}


def audio_response(description: str) -> dict[Any, Any]:
    return {(200, "audio/wav"): OpenApiResponse(OpenApiTypes.BINARY, description=description)}


LOCATION_HEADER = OpenApiParameter(
    "Location",
    type=str,
    location=OpenApiParameter.HEADER,
    response=[202],
    description="Where to poll the job.",
)

RETRY_AFTER_HEADER = OpenApiParameter(
    "Retry-After",
    type=int,
    location=OpenApiParameter.HEADER,
    response=[429],
    description="Seconds to wait before trying again.",
)

ETAG_HEADER = OpenApiParameter(
    "ETag",
    type=str,
    location=OpenApiParameter.HEADER,
    response=[200, 304],
    required=True,
    description="Strong validator of the body; send it back as `If-None-Match`.",
)

IF_NONE_MATCH_HEADER = OpenApiParameter(
    "If-None-Match",
    type=str,
    location=OpenApiParameter.HEADER,
    required=False,
    description="An `ETag` from an earlier answer (weak tags and `*` match too): unchanged -> 304 without a body.",
)
