"""Reminder phrases (CRUD, owner only) and the Pi's daily bundle (with ETag/304)."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from django.utils.http import parse_etags
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from voice_tts.apis.jobs import JobTextField
from voice_tts.apis.schema import ETAG_HEADER, IF_NONE_MATCH_HEADER, error_responses
from voice_tts.audio_links import clip_audio_url
from voice_tts.http.audio import FORMAT_ERRORS, audio_format_requested
from voice_tts.services.clip_formats import CLIP_AUDIO_DEFAULT, CLIP_AUDIO_FORMATS, phrase_bundle_formatted
from voice_tts.services.device_formats import device_audio_format_record
from voice_tts.services.job_text import SUPPORTED_LANGUAGES
from voice_tts.services.phrases import (
    PHRASE_MAX_TIMES,
    PhraseBundle,
    phrase_create,
    phrase_delete,
    phrase_get,
    phrase_update,
    phrases_of,
)

if TYPE_CHECKING:  # annotations only: the API gets its models from the services (pyproject.toml)
    from voice_tts.models import ReminderPhrase

DAYS_HELP = "ISO weekdays, 1 = Monday … 7 = Sunday; empty: every day."


class PhraseOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    text = serializers.CharField()
    language = serializers.CharField()
    times = serializers.ListField(child=serializers.CharField())
    days = serializers.ListField(child=serializers.IntegerField(), help_text=DAYS_HELP)
    daily = serializers.SerializerMethodField()
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    class Meta:
        ref_name = "Phrase"

    # `phrase` is a ReminderPhrase; not annotated as one, since drf-spectacular evaluates the hints at
    # runtime and the API imports no model (pyproject.toml).
    def get_daily(self, phrase: Any) -> bool:
        return not phrase.times


@extend_schema_field({
    "type": "string",
    # What the formats below accept (not OpenAPI's `time`, which wants an offset: "08:00:00Z").
    "pattern": "^([01]?[0-9]|2[0-3]):[0-5]?[0-9](:[0-5]?[0-9])?$",
    "example": "08:00",
})
class PhraseTimeField(serializers.TimeField):
    """A local time of day, "HH:MM" (or "HH:MM:SS"; the seconds are dropped)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(input_formats=["%H:%M", "%H:%M:%S"], **kwargs)


class PhraseInputSerializer(serializers.Serializer):
    # Whitespace and emptiness are judged by the service (same codes as jobs).
    text = JobTextField(allow_blank=True, trim_whitespace=False, max_length=20000)
    language = serializers.ChoiceField(choices=SUPPORTED_LANGUAGES, default="ko")
    # Local times of day ("08:00"); empty or absent: daily, no fixed time.
    times = serializers.ListField(child=PhraseTimeField(), default=list, max_length=PHRASE_MAX_TIMES)
    # ISO weekdays the times apply on (1 = Monday … 7 = Sunday); empty or absent: every day.
    # Integers only: the service judges the range (`invalid_day`).
    days = serializers.ListField(child=serializers.IntegerField(), default=list, max_length=7 * 4)
    is_active = serializers.BooleanField(default=True)

    class Meta:
        ref_name = "PhraseInput"


class PhraseBundleEntrySerializer(serializers.Serializer):
    """One phrase of `services.phrases.phrase_bundle`; the clip fields are null while `pending`."""

    id = serializers.IntegerField()
    text = serializers.CharField()
    language = serializers.ChoiceField(choices=SUPPORTED_LANGUAGES)
    times = serializers.ListField(child=serializers.CharField(), help_text='Local "HH:MM"; empty: daily.')
    days = serializers.ListField(child=serializers.IntegerField(), help_text=DAYS_HELP)
    status = serializers.ChoiceField(
        choices=["ready", "stale", "pending"],
        help_text="`ready`: clip of the current voice and model; `stale`: of the current voice from older "
        "weights; `pending`: no clip yet (speak the local fallback).",
    )
    cache_key = serializers.CharField(allow_null=True)
    audio_url = serializers.URLField(allow_null=True)
    sha256 = serializers.CharField(
        allow_null=True, help_text="Hex sha256 of the file at `audio_url` (the WAV, or the `format` asked for)."
    )
    duration_seconds = serializers.FloatField(allow_null=True)
    size_bytes = serializers.IntegerField(
        allow_null=True, required=False, help_text="Size of the file at `audio_url`; only with `?format=` other "
        "than wav."
    )

    class Meta:
        ref_name = "PhraseBundleEntry"


class PhraseBundleSerializer(serializers.Serializer):
    """Describes `services.phrases.phrase_bundle`'s body."""

    voice_id = serializers.UUIDField(allow_null=True, help_text="The active voice; null before one is enrolled.")
    engine = serializers.CharField()
    model_version = serializers.CharField(allow_null=True, help_text="Null until a worker has loaded the engine.")
    timezone = serializers.CharField(help_text="The household's zone, which `times` are local to (set on the pages, "
                                     "else the one the Pi reports, else the server's).")
    dose_alert_minutes = serializers.IntegerField(
        help_text="How long after its time a reminder may be confirmed; then the caregiver is alerted.")
    phrases = PhraseBundleEntrySerializer(many=True, help_text="Active phrases only, oldest first.")
    audio_format = serializers.ChoiceField(
        choices=list(CLIP_AUDIO_FORMATS), required=False,
        help_text="The entries' audio format; only with `?format=` other than wav (absent: WAV).",
    )

    class Meta:
        ref_name = "PhraseBundle"


_PHRASE_WRITE_ERROR_TEXTS = {
    400: "Invalid input: `text_empty`, `text_too_long`, `text_invalid_characters`, `text_unspeakable`, "
    "`invalid_day` (a weekday outside 1-7), or `invalid_input` with `fields` (e.g. an unknown `language`, a bad or "
    "25th time in `times`, a day that is not an integer).",
    409: "You already have a phrase with this text and language (`phrase_exists`).",
    415: "Unsupported `Content-Type` (`unsupported_media_type`); send JSON.",
}


def owned_phrase(request: Request, phrase_id: int) -> ReminderPhrase:
    # 404 (never 403) for other users' phrases: existence is not revealed.
    return phrase_get(owner_id=request.user.id, phrase_id=phrase_id)


class PhraseCollectionApi(APIView):
    @extend_schema(
        operation_id="phrases_list",
        responses={
            200: inline_serializer("PhraseList", {"results": PhraseOutputSerializer(many=True)}),
            **error_responses(401),
        },
    )
    def get(self, request: Request) -> Response:
        phrases = phrases_of(owner_id=request.user.id)
        return Response({"results": PhraseOutputSerializer(phrases, many=True).data})

    @extend_schema(
        operation_id="phrases_create",
        request={"application/json": PhraseInputSerializer},
        responses={
            201: PhraseOutputSerializer,
            **error_responses(400, 401, 409, 415, descriptions=_PHRASE_WRITE_ERROR_TEXTS),
        },
    )
    def post(self, request: Request) -> Response:
        data = PhraseInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        phrase = phrase_create(owner_id=request.user.id, **data.validated_data)
        return Response(PhraseOutputSerializer(phrase).data, status=201)


class PhraseDetailApi(APIView):
    @extend_schema(
        operation_id="phrases_retrieve", responses={200: PhraseOutputSerializer, **error_responses(401, 404)}
    )
    def get(self, request: Request, phrase_id: int) -> Response:
        return Response(PhraseOutputSerializer(owned_phrase(request, phrase_id)).data)

    @extend_schema(
        operation_id="phrases_partial_update",
        request={"application/json": PhraseInputSerializer},
        responses={
            200: PhraseOutputSerializer,
            **error_responses(400, 401, 404, 409, 415, descriptions=_PHRASE_WRITE_ERROR_TEXTS),
        },
    )
    def patch(self, request: Request, phrase_id: int) -> Response:
        phrase = owned_phrase(request, phrase_id)
        data = PhraseInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        phrase = phrase_update(phrase=phrase, **data.validated_data)
        return Response(PhraseOutputSerializer(phrase).data)

    @extend_schema(
        operation_id="phrases_destroy",
        responses={
            204: OpenApiResponse(description="Deleted; its clip stays in the cache."),
            **error_responses(401, 404),
        },
    )
    def delete(self, request: Request, phrase_id: int) -> Response:
        phrase_delete(phrase=owned_phrase(request, phrase_id))
        return Response(status=204)


BUNDLE_FORMAT_PARAMETER = OpenApiParameter(
    "format",
    type=str,
    enum=list(CLIP_AUDIO_FORMATS),
    location=OpenApiParameter.QUERY,
    required=False,
    description="The entries' audio format: their `audio_url`, `sha256` and `size_bytes` are of that file "
    "(stored by the worker as it makes each clip once a device of yours asked for the format; made on this "
    "request if still missing). Default wav: the bundle as it always was. The bundle itself is JSON.",
)


def phrase_bundle_json(bundle: PhraseBundle, *, base_url: str) -> dict[str, Any]:
    """The bundle's JSON: each clip's absolute URL (`?format=` unless WAV); `size_bytes` and
    `audio_format` only in a bundle of another format (a WAV bundle is as it was before formats)."""
    query = f"?format={bundle.audio_format}" if bundle.audio_format else ""
    entries = []
    for entry in bundle.entries:
        body: dict[str, Any] = {
            "id": entry.id,
            "text": entry.text,
            "language": entry.language,
            "times": entry.times,
            "days": entry.days,
            "status": entry.status,
            "cache_key": entry.cache_key,
            "audio_url": clip_audio_url(entry.cache_key, base_url=base_url) + query if entry.cache_key else None,
            "sha256": entry.sha256,
            "duration_seconds": entry.duration_seconds,
        }
        if bundle.audio_format:
            body["size_bytes"] = entry.size_bytes
        entries.append(body)
    body = {
        "voice_id": str(bundle.voice_id) if bundle.voice_id is not None else None,
        "engine": bundle.engine,
        "model_version": bundle.model_version,
        "timezone": bundle.timezone,
        "dose_alert_minutes": bundle.dose_alert_minutes,
        "phrases": entries,
    }
    if bundle.audio_format:
        body["audio_format"] = bundle.audio_format
    return body


def _bundle_etag(body: dict[str, Any]) -> str:
    """Strong, quoted: a hash of the whole canonical body (a changed clip, URL or schedule shows)."""
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return '"' + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32] + '"'


class PhraseBundleApi(APIView):
    """GET: today's phrases with clip URL, sha256 and duration; If-None-Match -> 304.

    `?format=opus|mp3|flac`: the entries name that format's file (wav, or no `format`: the WAVs). Only the query
    parameter chooses: the bundle's own `Accept` is for its JSON."""

    device_allowed = True  # a device (the Pi) may do this (apis/permissions.py)
    @extend_schema(
        operation_id="phrases_bundle",
        responses={
            200: PhraseBundleSerializer,
            304: OpenApiResponse(description="Unchanged since the `If-None-Match` tag: no body."),
            **error_responses(400, 401, descriptions=FORMAT_ERRORS),
        },
        parameters=[BUNDLE_FORMAT_PARAMETER, IF_NONE_MATCH_HEADER, ETAG_HEADER],
    )
    def get(self, request: Request) -> Any:
        audio_format = CLIP_AUDIO_DEFAULT
        if "format" in request.query_params:
            audio_format = audio_format_requested(request)
        device_id = getattr(request.auth, "device_id", None)
        if device_id is not None:  # the worker stores this device's owner's new clips in it (services/device_formats)
            device_audio_format_record(device_id=device_id, audio_format=audio_format)
        bundle = phrase_bundle_formatted(owner_id=request.user.id, audio_format=audio_format)
        body = phrase_bundle_json(bundle, base_url=request.build_absolute_uri("/"))
        etag = _bundle_etag(body)
        client_etags = parse_etags(request.headers.get("If-None-Match", ""))
        # Weak comparison (RFC 9110 13.1.2): a proxy may have weakened our tag.
        matches = "*" in client_etags or etag in {tag.removeprefix("W/") for tag in client_etags}
        response = Response(status=304) if matches else Response(body)
        response["ETag"] = etag
        # Private (personal audio), and always revalidated: a changed voice shows at once.
        response["Cache-Control"] = "private, no-cache"
        return response
