from typing import Any
from urllib.parse import urlparse

from django.core.validators import ProhibitNullCharactersValidator
from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.validators import ProhibitSurrogateCharactersValidator
from rest_framework.views import APIView

from voice_tts.apis.schema import (
    ETAG_HEADER,
    IF_NONE_MATCH_HEADER,
    LOCATION_HEADER,
    RETRY_AFTER_HEADER,
    ClipHitOutputSerializer,
    JobOutputSerializer,
    error_responses,
)
from voice_tts.http.audio import (
    FORMAT_ERRORS,
    FORMAT_PARAMETER,
    AudioContentNegotiation,
    audio_format_requested,
    audio_responses,
    clip_audio_response,
)
from voice_tts.http.presenters import clip_hit_json, job_json
from voice_tts.http.throttles import JobsThrottle
from voice_tts.services.job_requests import JobAnswer, job_audio_clip, job_request
from voice_tts.services.job_text import SUPPORTED_LANGUAGES
from voice_tts.services.jobs import job_state_get


class JobParamsSerializer(serializers.Serializer):
    """Synthesis knobs; each engine uses the ones it understands. Part of the cache key."""

    speed = serializers.FloatField(required=False, min_value=0.5, max_value=2.0)
    seed = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    top_k = serializers.IntegerField(required=False, min_value=1, max_value=100)
    top_p = serializers.FloatField(required=False, min_value=0.01, max_value=1.0)
    temperature = serializers.FloatField(required=False, min_value=0.01, max_value=2.0)

    class Meta:
        ref_name = "JobParams"

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(f"unknown parameter(s): {', '.join(unknown)}")
        return super().to_internal_value(data)


def validate_webhook_url(value: str) -> str:
    if value and urlparse(value).scheme not in ("http", "https"):
        raise serializers.ValidationError("webhook_url must be an http(s) URL.")
    return value


class JobTextField(serializers.CharField):
    """Leaves NUL and lone surrogates to the service, which refuses it with every other control character
    (`text_invalid_characters`) instead of DRF's generic `invalid_input`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        generic = (ProhibitNullCharactersValidator, ProhibitSurrogateCharactersValidator)
        self.validators = [v for v in self.validators if not isinstance(v, generic)]


class JobInputSerializer(serializers.Serializer):
    # Whitespace is normalised (and emptiness refused with its own code) by the service.
    text = JobTextField(allow_blank=True, trim_whitespace=False, max_length=20000)
    language = serializers.ChoiceField(choices=SUPPORTED_LANGUAGES, default="ko")
    use_cache = serializers.BooleanField(default=True)
    webhook_url = serializers.URLField(required=False, allow_blank=True, default="", max_length=2000,
                                       validators=[validate_webhook_url])
    params = JobParamsSerializer(required=False, default=dict)

    class Meta:
        ref_name = "JobInput"


def job_created_response(request: Request, answer: JobAnswer) -> Response:
    """200 for a cache hit or a finished job; 202 with `Location` for a queued one."""
    base_url = request.build_absolute_uri("/")
    if answer.hit is not None:
        return Response(clip_hit_json(answer.hit, base_url=base_url))
    state = answer.state
    assert state is not None  # a JobAnswer without a hit has its job's state
    response = Response(job_json(state, base_url=base_url), status=200 if state.finished else 202)
    if not state.finished:
        response["Location"] = reverse("voice_tts:job-detail", kwargs={"job_id": state.id})
    return response


class JobCreateApi(APIView):
    device_allowed = True  # a device (the Pi) may do this (apis/permissions.py)
    throttle_classes = [JobsThrottle]

    @extend_schema(
        operation_id="jobs_create",
        request={"application/json": JobInputSerializer},
        responses={
            200: OpenApiResponse(
                PolymorphicProxySerializer("JobCreated", [ClipHitOutputSerializer, JobOutputSerializer], None),
                description="Answered from the clip cache: a `ClipHit` (no job; `id` is null), or a finished job "
                "when the request named a `webhook_url`.",
            ),
            202: OpenApiResponse(JobOutputSerializer, description="Queued; poll `Location`."),
            **error_responses(400, 401, 415, 429),
        },
        parameters=[LOCATION_HEADER, RETRY_AFTER_HEADER],
    )
    def post(self, request: Request) -> Response:
        data = JobInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return job_created_response(request, job_request(owner_id=request.user.id, **data.validated_data))


class JobDetailApi(APIView):
    device_allowed = True  # a device (the Pi) may do this (apis/permissions.py)
    @extend_schema(operation_id="jobs_retrieve", responses={200: JobOutputSerializer, **error_responses(401, 404)})
    def get(self, request: Request, job_id: Any) -> Response:
        state = job_state_get(owner_id=request.user.id, job_id=job_id)
        if state is None:
            raise Http404  # other users' jobs too: existence is not revealed
        return Response(job_json(state, base_url=request.build_absolute_uri("/")))


class JobAudioApi(APIView):
    device_allowed = True  # a device (the Pi) may do this (apis/permissions.py)
    content_negotiation_class = AudioContentNegotiation

    @extend_schema(
        operation_id="jobs_audio",
        parameters=[FORMAT_PARAMETER, IF_NONE_MATCH_HEADER, ETAG_HEADER],
        responses={
            **audio_responses("The job's clip: 16-bit PCM WAV, or FLAC, Ogg Opus or MP3 made from it."),
            **error_responses(400, 401, 404, 409, 410, descriptions=FORMAT_ERRORS),
        },
    )
    def get(self, request: Request, job_id: Any) -> Any:
        audio_format = audio_format_requested(request)
        job, clip = job_audio_clip(owner_id=request.user.id, job_id=job_id)
        return clip_audio_response(request, clip=clip, audio_format=audio_format, filename_stem=str(job.id))
