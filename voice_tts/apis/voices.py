from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from voice_tts.apis.schema import RETRY_AFTER_HEADER, error_responses
from voice_tts.errors import ServiceError
from voice_tts.http.throttles import UploadsThrottle
from voice_tts.services.job_text import SUPPORTED_LANGUAGES
from voice_tts.services.voices import voice_create, voice_delete, voice_get, voices_of

if TYPE_CHECKING:  # annotations only: the API gets its models from the services (pyproject.toml)
    from voice_tts.models import Voice

# Multipart framing around the file; a body larger than cap + this is refused unread.
_MULTIPART_OVERHEAD = 64 * 1024


class VoiceOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    duration_seconds = serializers.FloatField()
    sample_rate = serializers.IntegerField()
    transcript = serializers.CharField()
    language = serializers.CharField()
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()

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
        return Response({"results": VoiceOutputSerializer(voices, many=True).data})

    @extend_schema(
        operation_id="voices_create",
        request={"multipart/form-data": VoiceUploadSerializer},
        responses={201: VoiceOutputSerializer, **VOICE_UPLOAD_ERRORS},
        parameters=[RETRY_AFTER_HEADER],
    )
    def post(self, request: Request) -> Response:
        voice = voice_upload_from_request(request)
        return Response(VoiceOutputSerializer(voice).data, status=201)


class VoiceDetailApi(APIView):
    def _voice(self, request: Request, voice_id: Any) -> Voice:
        return voice_get(owner_id=request.user.id, voice_id=voice_id)

    @extend_schema(operation_id="voices_retrieve", responses={200: VoiceOutputSerializer, **error_responses(401, 404)})
    def get(self, request: Request, voice_id: Any) -> Response:
        return Response(VoiceOutputSerializer(self._voice(request, voice_id)).data)

    @extend_schema(
        operation_id="voices_destroy",
        responses={204: OpenApiResponse(description="Deleted, with its clips and files."), **error_responses(401, 404)},
    )
    def delete(self, request: Request, voice_id: Any) -> Response:
        voice_delete(voice=self._voice(request, voice_id))
        return Response(status=204)
