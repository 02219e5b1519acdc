from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from voice_tts.apis.schema import RETRY_AFTER_HEADER, error_responses
from voice_tts.http.errors import error_response
from voice_tts.http.throttles import LoginThrottle, client_address
from voice_tts.services.logins import login_failed, login_succeeded
from voice_tts.services.tokens import token_issue, token_revoke


class LoginApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginThrottle]

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=256, trim_whitespace=False)

        class Meta:
            ref_name = "LoginInput"

    @extend_schema(
        operation_id="auth_login",
        request={"application/json": InputSerializer},
        responses={200: inline_serializer("LoginOutput", {"token": serializers.CharField()}),
                   **error_responses(400, 429)},
        parameters=[RETRY_AFTER_HEADER],
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request, **data.validated_data)
        attempt = {"username": data.validated_data["username"], "address": client_address(request)}
        if user is None:
            login_failed(**attempt)
            return error_response("invalid_credentials", "Unknown username or wrong password.", 400)
        login_succeeded(**attempt)
        # A new token per login (shown once, stored as a digest), valid ACCESS_TOKEN_DAYS.
        return Response({"token": token_issue(owner_id=user.id)})


class LogoutApi(APIView):
    """Revoke the token this request is authenticated with."""

    @extend_schema(operation_id="auth_logout", request=None,
                   responses={204: OpenApiResponse(description="Revoked."), **error_responses(401)})
    def post(self, request: Request) -> Response:
        token_revoke(key=request.auth.key)
        return Response(status=204)
