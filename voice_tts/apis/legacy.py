"""The seed's endpoints, kept so existing clients (the Pi script) keep working."""

from __future__ import annotations

import base64

from django.conf import settings
from django.core.files.storage import default_storage
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from voice_tts.apis.jobs import JobInputSerializer
from voice_tts.apis.throttles import JobsThrottle, UploadsThrottle
from voice_tts.apis.voices import voice_upload_from_request
from voice_tts.errors import ServiceError
from voice_tts.models import Job
from voice_tts.presenters import job_audio_path
from voice_tts.services.jobs import job_create, job_wait


class LegacyUploadVoiceApi(APIView):
    throttle_classes = [UploadsThrottle]

    def post(self, request: Request) -> Response:
        try:
            voice = voice_upload_from_request(request)
        except ServiceError as exc:
            return Response({"success": False, "code": exc.code, "message": exc.message}, status=exc.status)
        return Response({"success": True, "message": "Voice sample uploaded.", "voice_id": str(voice.id)}, status=201)


class _WaitSerializer(serializers.Serializer):
    wait = serializers.FloatField(required=False, min_value=0, default=10.0)
    format = serializers.ChoiceField(choices=["url", "base64"], required=False, default="url")


class LegacyGenerateApi(APIView):
    """Enqueue, wait a bounded time, answer in the seed's shape (or 202 with the job id)."""

    throttle_classes = [JobsThrottle]

    def post(self, request: Request) -> Response:
        query = _WaitSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        wait = min(query.validated_data["wait"], float(settings.GENERATE_WAIT_MAX_SECONDS))
        data = JobInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = job_create(owner_id=request.user.id, **data.validated_data)
        if job.status not in Job.FINISHED and wait > 0:
            job = job_wait(job_id=job.id, seconds=wait)
        if job.status == Job.Status.FAILED:
            return Response(
                {"success": False, "job_id": str(job.id), "code": job.error_code, "message": job.error_message},
                status=502,
            )
        if job.status != Job.Status.SUCCEEDED:
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
            with default_storage.open(job.clip.audio.name, "rb") as handle:
                body["audio_base64"] = base64.b64encode(handle.read()).decode()
        return Response(body)
