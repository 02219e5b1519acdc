from __future__ import annotations

from typing import TYPE_CHECKING

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from voice_tts.apis.schema import error_responses
from voice_tts.services.webhooks import webhook_secret_get, webhook_secret_rotate

if TYPE_CHECKING:  # annotations only: the API gets its models from the services (pyproject.toml)
    from voice_tts.models import WebhookSecret


def _secret_body(secret: WebhookSecret) -> dict:
    return {
        "secret": secret.secret,
        "scheme": "standard-webhooks-v1",
        "rotated_at": secret.rotated_at,
        # Until then, deliveries carry a second signature made with the previous secret.
        "previous_secret_valid_until": secret.previous_valid_until if secret.previous_secret else None,
    }


class WebhookSecretOutputSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="`whsec_` + base64 key for Standard Webhooks signatures.")
    scheme = serializers.CharField()
    rotated_at = serializers.DateTimeField(allow_null=True)
    previous_secret_valid_until = serializers.DateTimeField(
        allow_null=True, help_text="Until then deliveries also carry a signature made with the previous secret."
    )

    class Meta:
        ref_name = "WebhookSecret"


class WebhookSecretApi(APIView):
    @extend_schema(
        operation_id="webhook_secret_retrieve",
        responses={200: WebhookSecretOutputSerializer, **error_responses(401)},
    )
    def get(self, request: Request) -> Response:
        return Response(_secret_body(webhook_secret_get(owner_id=request.user.id)))


class WebhookSecretRotateApi(APIView):
    @extend_schema(
        operation_id="webhook_secret_rotate",
        request=None,
        responses={200: WebhookSecretOutputSerializer, **error_responses(401, 429)},
    )
    def post(self, request: Request) -> Response:
        return Response(_secret_body(webhook_secret_rotate(owner_id=request.user.id)))
