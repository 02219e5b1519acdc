from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from voice_tts.services.health import health_get

# What an anonymous caller may learn about a worker: no host names or pids.
_PUBLIC_FIELDS = ("engine", "ready", "model_loaded", "model_version", "device", "error_code", "loads", "syntheses")


class HealthWorkerSerializer(serializers.Serializer):
    engine = serializers.CharField(allow_null=True)
    ready = serializers.BooleanField(allow_null=True)
    model_loaded = serializers.BooleanField(allow_null=True)
    model_version = serializers.CharField(allow_null=True)
    device = serializers.CharField(allow_null=True)
    error_code = serializers.CharField(allow_null=True)
    loads = serializers.IntegerField(allow_null=True)
    syntheses = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_blank=True)

    class Meta:
        ref_name = "HealthWorker"


class HealthOutputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "not_ready", "no_workers", "unavailable"])
    engine = serializers.CharField()
    model_loaded = serializers.BooleanField()
    model_version = serializers.CharField(allow_null=True, required=False)
    device = serializers.CharField(allow_null=True)
    workers = HealthWorkerSerializer(many=True)
    message = serializers.CharField(required=False, help_text="Only with status `unavailable`.")

    class Meta:
        ref_name = "Health"


class HealthApi(APIView):
    """Liveness of the service as the workers report it through Redis (no engine import)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="health",
        responses={200: HealthOutputSerializer, 503: HealthOutputSerializer},
        auth=[],
    )
    def get(self, request: Request) -> Response:
        engine = settings.TTS_ENGINE
        health = health_get(engine=engine)
        if not health.reachable:
            return Response(
                {"status": "unavailable", "engine": engine, "model_loaded": False, "device": None, "workers": [],
                 "message": "The queue (Redis) is unreachable."},
                status=503,
            )
        workers, ready = health.workers, health.ready
        body = {
            "status": "ok" if ready else ("not_ready" if workers else "no_workers"),
            "engine": engine,
            "model_loaded": bool(ready),
            "model_version": ready[0].get("model_version") if ready else None,
            "device": ready[0].get("device") if ready else None,
            "workers": [{k: w.get(k) for k in _PUBLIC_FIELDS} | {"error": w.get("error", "")} for w in workers],
        }
        return Response(body)
