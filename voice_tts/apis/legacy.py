"""The seed's endpoints, kept so existing clients (the Pi script) keep working."""

from __future__ import annotations

import base64

from django.conf import settings
from django.core.files.storage import default_storage
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from voice_tts.apis.jobs import JobInputSerializer
from voice_tts.apis.schema import LOCATION_HEADER, RETRY_AFTER_HEADER, error_responses
from voice_tts.apis.voices import VoiceUploadSerializer, voice_upload_from_request
from voice_tts.audio_links import clip_audio_path, job_audio_path
from voice_tts.errors import ServiceError
from voice_tts.http.errors import _first_message, error_status
from voice_tts.http.throttles import JobsThrottle, UploadsThrottle
from voice_tts.services.clips import clip_for_owner
from voice_tts.services.job_requests import JobAnswer, job_request, job_request_wait


class LegacyUploadOutputSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    message = serializers.CharField()
    voice_id = serializers.UUIDField(required=False)
    code = serializers.CharField(required=False, help_text="Only when `success` is false.")

    class Meta:
        ref_name = "LegacyUploadOutput"


class LegacyUploadVoiceApi(APIView):
    throttle_classes = [UploadsThrottle]

    @extend_schema(
        operation_id="legacy_upload_voice",
        request={"multipart/form-data": VoiceUploadSerializer},
        responses={
            201: LegacyUploadOutputSerializer,
            **{status: OpenApiResponse(LegacyUploadOutputSerializer, description="Refused: `success` false + `code`.")
               for status in (400, 413, 415)},
            **error_responses(401, 429),
        },
        parameters=[RETRY_AFTER_HEADER],
    )
    def post(self, request: Request) -> Response:
        try:
            voice = voice_upload_from_request(request)
        except ServiceError as exc:
            return Response({"success": False, "code": exc.code, "message": exc.message}, status=error_status(exc.code))
        except exceptions.ValidationError as exc:
            # The seed's contract holds for bad form fields (transcript, language) too.
            return Response({"success": False, "code": "invalid_input", "message": _first_message(exc.detail)},
                            status=400)
        return Response({"success": True, "message": "Voice sample uploaded.", "voice_id": str(voice.id)}, status=201)


class _WaitSerializer(serializers.Serializer):
    wait = serializers.FloatField(required=False, min_value=0, default=10.0)
    format = serializers.ChoiceField(choices=["url", "base64"], required=False, default="url")

    class Meta:
        ref_name = "GenerateQuery"


class LegacyGenerateOutputSerializer(serializers.Serializer):
    """All three answers of /generate/: 200 done, 202 still running, 502 failed."""

    success = serializers.BooleanField()
    job_id = serializers.UUIDField(allow_null=True, help_text="Null when answered from the clip cache (no job).")
    message = serializers.CharField(allow_blank=True)
    audio_url = serializers.URLField(required=False, help_text="200 only.")
    audio_base64 = serializers.CharField(required=False, help_text="200 with `?format=base64` only.")
    cache_hit = serializers.BooleanField(required=False, help_text="200 only.")
    processing_time_ms = serializers.IntegerField(required=False, allow_null=True, help_text="200 only.")
    text_length = serializers.IntegerField(required=False, help_text="200 only.")
    status = serializers.CharField(required=False, help_text="202 only.")
    job_url = serializers.URLField(required=False, help_text="202 only.")
    code = serializers.CharField(required=False, help_text="502 only: the job's error code.")

    class Meta:
        ref_name = "LegacyGenerateOutput"


class LegacyGenerateApi(APIView):
    """Enqueue, wait a bounded time, answer in the seed's shape (or 202 with the job id)."""

    device_allowed = True  # a device (the Pi) may do this (apis/permissions.py)
    throttle_classes = [JobsThrottle]

    @extend_schema(
        operation_id="legacy_generate",
        parameters=[_WaitSerializer, LOCATION_HEADER, RETRY_AFTER_HEADER],
        request={"application/json": JobInputSerializer},
        responses={
            200: OpenApiResponse(LegacyGenerateOutputSerializer, description="Synthesised or served from cache."),
            202: OpenApiResponse(LegacyGenerateOutputSerializer, description="Still running after `wait` s."),
            502: OpenApiResponse(LegacyGenerateOutputSerializer, description="The job failed (`code`)."),
            **error_responses(400, 401, 415, 429),
        },
    )
    def post(self, request: Request) -> Response:
        # A plain dict, not the QueryDict: DRF reads an empty form value as "use the default",
        # so `?wait=&format=` passed although the schema says number / url|base64 (schemathesis).
        query = _WaitSerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        wait = min(query.validated_data["wait"], float(settings.GENERATE_WAIT_MAX_SECONDS))
        data = JobInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        answer = job_request(owner_id=request.user.id, **data.validated_data)
        if answer.hit is not None:
            return self._hit(request, answer, base64_audio=query.validated_data["format"] == "base64")
        answer = job_request_wait(answer=answer, seconds=wait)
        job, state = answer.job, answer.state
        assert job is not None and state is not None  # a JobAnswer without a hit has its job
        if state.finished and not state.has_audio:
            return Response(
                {"success": False, "job_id": str(job.id), "code": job.error_code, "message": job.error_message},
                status=502,
            )
        if not state.finished:
            response = Response(
                {"success": False, "job_id": str(job.id), "status": job.status,
                 "message": "Still synthesising; poll the job.",
                 "job_url": request.build_absolute_uri(f"/api/tts/jobs/{job.id}/")},
                status=202,
            )
            response["Location"] = f"/api/tts/jobs/{job.id}/"
            return response
        body = {
            "success": True,
            "audio_url": request.build_absolute_uri(job_audio_path(job.id)),
            "cache_hit": job.cache_hit,
            "processing_time_ms": job.processing_time_ms,
            "text_length": len(job.text),
            "job_id": str(job.id),
            "message": "Served from cache." if job.cache_hit else "Synthesised.",
        }
        if query.validated_data["format"] == "base64":
            body["audio_base64"] = _audio_base64(job.clip.audio.name)
        return Response(body)

    def _hit(self, request: Request, answer: JobAnswer, *, base64_audio: bool) -> Response:
        hit = answer.hit
        assert hit is not None
        # Answered from the clip cache: no job was made (job_id null), the audio is the clip's.
        body = {
            "success": True,
            "audio_url": request.build_absolute_uri(clip_audio_path(hit.clip.cache_key)),
            "cache_hit": True,
            "processing_time_ms": 0,
            "text_length": len(hit.text),
            "job_id": None,
            "message": "Served from cache.",
        }
        if base64_audio:
            clip = clip_for_owner(owner_id=request.user.id, cache_key=hit.clip.cache_key)
            body["audio_base64"] = _audio_base64(clip.audio.name)
        return Response(body)


def _audio_base64(name: str) -> str:
    with default_storage.open(name, "rb") as handle:
        return base64.b64encode(handle.read()).decode()
