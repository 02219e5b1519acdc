from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from voice_tts.services.webhooks import webhook_secret_get


class WebhookSecretApi(APIView):
    def get(self, request: Request) -> Response:
        return Response({"secret": webhook_secret_get(owner_id=request.user.id), "scheme": "standard-webhooks-v1"})
