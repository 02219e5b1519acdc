from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.urls import reverse
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

from voice_tts.apis.schema import ETAG_HEADER, IF_NONE_MATCH_HEADER, RETRY_AFTER_HEADER, audio_response, error_responses
from voice_tts.errors import ServiceError
from voice_tts.http.audio import AudioContentNegotiation, audio_file_response
from voice_tts.http.throttles import UploadsThrottle
from voice_tts.services.job_text import SUPPORTED_LANGUAGES
from voice_tts.services.voice_adaptation import (
    OUTCOMES,
    PREVIEW_SIDES,
    voice_adaptation_preview_get,
    voice_adaptation_previews,
)
from voice_tts.services.voices import voice_create, voice_delete, voice_get, voices_of

if TYPE_CHECKING:  # annotations only: the API gets its models from the services (pyproject.toml)
    from voice_tts.models import Voice

# Multipart framing around the file; a body larger than cap + this is refused unread.
_MULTIPART_OVERHEAD = 64 * 1024


class VoiceAdaptationPreviewSerializer(serializers.Serializer):
    before = serializers.URLField(help_text="A sentence in the voice as it spoke before the search (WAV).")
    after = serializers.URLField(help_text="The same sentence with the voice's own style (WAV).")

    class Meta:
        ref_name = "VoiceAdaptationPreview"


class VoiceAdaptationSerializer(serializers.Serializer):
    """The neural_cpu style search for this voice (issue 26): the voice speaks at once with the
    closest stock voice, and with its own, closer style once `state` is `done`."""

    state = serializers.ChoiceField(choices=["pending", "running", "done", "failed", "not_applicable"],
                                    source="adaptation_state")
    progress = serializers.FloatField(source="adaptation_progress", min_value=0.0, max_value=1.0)
    error_code = serializers.CharField(source="adaptation_error_code", allow_blank=True)
    outcome = serializers.ChoiceField(
        choices=list(OUTCOMES), source="adaptation_outcome", allow_null=True,
        help_text="Once done: `adapted` (the voice now speaks with its own, closer style) or `unchanged` (no "
                  "candidate passed every check, so today's matching stays the closest voice); null before.")
    preview = serializers.SerializerMethodField()

    class Meta:
        ref_name = "VoiceAdaptation"

    @extend_schema_field(VoiceAdaptationPreviewSerializer(allow_null=True))
    def get_preview(self, voice: Any) -> dict[str, str] | None:
        """The before/after preview's URLs once the search is done and made one; else null."""
        if voice_adaptation_previews(voice=voice) is None:
            return None
        request = self.context.get("request")
        urls = {}
        for side in PREVIEW_SIDES:
            path = reverse("voice_tts:voice-adaptation-preview", kwargs={"voice_id": voice.id, "side": side})
            urls[side] = request.build_absolute_uri(path) if request is not None else path
        return urls


class VoiceOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    duration_seconds = serializers.FloatField()
    sample_rate = serializers.IntegerField()
    transcript = serializers.CharField()
    language = serializers.CharField()
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    adaptation = VoiceAdaptationSerializer(source="*", read_only=True)

    class Meta:
        ref_name = "Voice"


class VoiceInputSerializer(serializers.Serializer):
    transcript = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    language = serializers.ChoiceField(choices=SUPPORTED_LANGUAGES, default="ko")


class VoiceUploadSerializer(VoiceInputSerializer):
    """The multipart form of an upload (schema only: the file is read by voice_upload_from_request)."""

    voice_file = serializers.FileField(
        help_text="3-10 s of speech after silence is trimmed; WAV, FLAC, OGG/Vorbis or MP3, decided by decoding."
    )

    class Meta:
        ref_name = "VoiceUpload"


VOICE_UPLOAD_ERRORS = error_responses(400, 401, 413, 415, 429)


def voice_upload_from_request(request: Request) -> Voice:
    """Shared by the REST endpoint and the seed's legacy /upload-voice/."""
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > settings.VOICE_MAX_UPLOAD_BYTES + _MULTIPART_OVERHEAD:
        raise ServiceError(
            "file_too_large", f"The upload is {declared} bytes; at most {settings.VOICE_MAX_UPLOAD_BYTES}."
        )
    upload = request.FILES.get("voice_file")
    if upload is None:
        raise ServiceError("missing_file", "Attach the voice sample as the multipart field 'voice_file'.")
    if upload.size > settings.VOICE_MAX_UPLOAD_BYTES:
        raise ServiceError(
            "file_too_large", f"The file is {upload.size} bytes; at most {settings.VOICE_MAX_UPLOAD_BYTES}."
        )
    fields = VoiceInputSerializer(data=request.data)
    fields.is_valid(raise_exception=True)
    return voice_create(owner_id=request.user.id, data=upload.read(), **fields.validated_data)


class VoiceCollectionApi(APIView):
    def get_throttles(self) -> list:
        # Listing is free; enrolling a voice (decode + store) is limited.
        return [UploadsThrottle()] if self.request.method == "POST" else []

    @extend_schema(
        operation_id="voices_list",
        responses={
            200: inline_serializer("VoiceList", {"results": VoiceOutputSerializer(many=True)}),
            **error_responses(401),
        },
    )
    def get(self, request: Request) -> Response:
        voices = voices_of(owner_id=request.user.id)
        return Response({"results": VoiceOutputSerializer(voices, many=True, context={"request": request}).data})

    @extend_schema(
        operation_id="voices_create",
        request={"multipart/form-data": VoiceUploadSerializer},
        responses={201: VoiceOutputSerializer, **VOICE_UPLOAD_ERRORS},
        parameters=[RETRY_AFTER_HEADER],
    )
    def post(self, request: Request) -> Response:
        voice = voice_upload_from_request(request)
        return Response(VoiceOutputSerializer(voice, context={"request": request}).data, status=201)


class VoiceDetailApi(APIView):
    def _voice(self, request: Request, voice_id: Any) -> Voice:
        return voice_get(owner_id=request.user.id, voice_id=voice_id)

    @extend_schema(operation_id="voices_retrieve", responses={200: VoiceOutputSerializer, **error_responses(401, 404)})
    def get(self, request: Request, voice_id: Any) -> Response:
        return Response(VoiceOutputSerializer(self._voice(request, voice_id), context={"request": request}).data)

    @extend_schema(
        operation_id="voices_destroy",
        responses={204: OpenApiResponse(description="Deleted, with its clips and files."), **error_responses(401, 404)},
    )
    def delete(self, request: Request, voice_id: Any) -> Response:
        voice_delete(voice=self._voice(request, voice_id))
        return Response(status=204)


class VoiceAdaptationPreviewApi(APIView):
    """One side of the before/after preview of the voice's style search: the owner's only."""

    content_negotiation_class = AudioContentNegotiation

    @extend_schema(
        operation_id="voices_adaptation_preview",
        parameters=[
            OpenApiParameter("side", str, OpenApiParameter.PATH, enum=list(PREVIEW_SIDES),
                             description="`before`: the voice as it spoke before the search; `after`: with its "
                                         "own style."),
            IF_NONE_MATCH_HEADER, ETAG_HEADER,
        ],
        responses={
            **audio_response("A short reminder in the voice: `before` with the stock match it started with, "
                             "`after` with its own style (16-bit PCM WAV)."),
            304: OpenApiResponse(description="Unchanged since the `If-None-Match` tag: no body."),
            **error_responses(401, 404, 410, descriptions={
                404: "No such voice of yours (`not_found`), or it has no preview (`preview_not_found`): the "
                     "search is not done, the engine needs none, or the preview could not be made.",
            }),
        },
    )
    def get(self, request: Request, voice_id: Any, side: str) -> Any:
        preview = voice_adaptation_preview_get(owner_id=request.user.id, voice_id=voice_id, side=side)
        return audio_file_response(preview.name, filename=preview.filename, content_type="audio/wav",
                                   etag=preview.etag, request=request)
