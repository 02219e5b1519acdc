from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from voice_tts.apis.schema import ETAG_HEADER, IF_NONE_MATCH_HEADER, error_responses
from voice_tts.http.audio import (
    FORMAT_ERRORS,
    FORMAT_PARAMETER,
    AudioContentNegotiation,
    audio_format_requested,
    audio_responses,
    clip_audio_response,
)
from voice_tts.services.clips import clip_for_owner


class ClipOutputSerializer(serializers.Serializer):
    cache_key = serializers.CharField()
    voice_id = serializers.UUIDField()
    text = serializers.CharField()
    language = serializers.CharField()
    params = serializers.JSONField()
    engine = serializers.CharField()
    model_version = serializers.CharField()
    duration_seconds = serializers.FloatField()
    sample_rate = serializers.IntegerField()
    access_count = serializers.IntegerField()
    last_accessed_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    audio_url = serializers.SerializerMethodField()

    class Meta:
        ref_name = "Clip"

    @extend_schema_field(OpenApiTypes.URI)
    def get_audio_url(self, clip: Any) -> str:
        return self.context["request"].build_absolute_uri(f"/api/tts/cache/{clip.cache_key}/audio/")


class ClipDetailApi(APIView):
    device_allowed = True  # a device (the Pi) may do this (apis/permissions.py)
    @extend_schema(operation_id="cache_retrieve", responses={200: ClipOutputSerializer, **error_responses(401, 404)})
    def get(self, request: Request, cache_key: str) -> Response:
        clip = clip_for_owner(owner_id=request.user.id, cache_key=cache_key)
        return Response(ClipOutputSerializer(clip, context={"request": request}).data)


class ClipAudioApi(APIView):
    device_allowed = True  # a device (the Pi) may do this (apis/permissions.py)
    content_negotiation_class = AudioContentNegotiation

    @extend_schema(
        operation_id="cache_audio",
        parameters=[FORMAT_PARAMETER, IF_NONE_MATCH_HEADER, ETAG_HEADER],
        responses={
            **audio_responses("The cached clip: 16-bit PCM WAV, or FLAC, Ogg Opus or MP3 made from it."),
            **error_responses(400, 401, 404, 410, descriptions=FORMAT_ERRORS),
        },
    )
    def get(self, request: Request, cache_key: str) -> Any:
        audio_format = audio_format_requested(request)
        clip = clip_for_owner(owner_id=request.user.id, cache_key=cache_key)
        return clip_audio_response(request, clip=clip, audio_format=audio_format, filename_stem=cache_key)
