from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from voice_tts.apis.schema import error_responses
from voice_tts.services.webhooks import webhook_secret_get


class WebhookSecretOutputSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="`whsec_` + base64 key for Standard Webhooks signatures.")
    scheme = serializers.CharField()

    class Meta:
        ref_name = "WebhookSecret"


class WebhookSecretApi(APIView):
    @extend_schema(
        operation_id="webhook_secret_retrieve",
        responses={200: WebhookSecretOutputSerializer, **error_responses(401)},
    )
    def get(self, request: Request) -> Response:
        return Response({"secret": webhook_secret_get(owner_id=request.user.id), "scheme": "standard-webhooks-v1"})
