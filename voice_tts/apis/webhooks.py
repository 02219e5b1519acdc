from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from voice_tts.models import WebhookSecret
from voice_tts.services.webhooks import webhook_secret_get, webhook_secret_rotate


def _secret_body(secret: WebhookSecret) -> dict:
    return {
        "secret": secret.secret,
        "scheme": "standard-webhooks-v1",
        "rotated_at": secret.rotated_at,
        # Until then, deliveries carry a second signature made with the previous secret.
        "previous_secret_valid_until": secret.previous_valid_until if secret.previous_secret else None,
    }


class WebhookSecretApi(APIView):
    def get(self, request: Request) -> Response:
        return Response(_secret_body(webhook_secret_get(owner_id=request.user.id)))


class WebhookSecretRotateApi(APIView):
    def post(self, request: Request) -> Response:
        return Response(_secret_body(webhook_secret_rotate(owner_id=request.user.id)))
