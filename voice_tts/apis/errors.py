"""Every API error is `{"code": ..., "message": ...}` with the right HTTP status."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from voice_tts.errors import ServiceError


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for field, value in detail.items():
            inner = _first_message(value)
            return inner if field == "non_field_errors" else f"{field}: {inner}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def error_response(code: str, message: str, http_status: int, **extra: Any) -> Response:
    return Response({"code": code, "message": message, **extra}, status=http_status)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ServiceError):
        return error_response(exc.code, exc.message, exc.status)
    if isinstance(exc, Http404):
        return error_response("not_found", "Not found.", status.HTTP_404_NOT_FOUND)
    if isinstance(exc, exceptions.ValidationError):
        return error_response(
            "invalid_input", _first_message(exc.detail), status.HTTP_400_BAD_REQUEST, fields=exc.detail
        )
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "error"
        response.data = {"code": code, "message": _first_message(exc.detail)}
    return response


def openai_error_type(http_status: int) -> str:
    """OpenAI's `error.type` for a status: what its SDKs and clients switch on."""
    if http_status >= 500:
        return "server_error"
    if http_status == 429:
        return "requests"  # OpenAI's type for a requests-per-minute limit
    return "invalid_request_error"  # OpenAI's type for every other 4xx, a bad API key (401) included


def openai_error_json(message: str, http_status: int, *, code: str | None, param: str | None = None) -> dict[str, Any]:
    """The error shape of the OpenAI-compatible routes (/v1/): `{"error": {message, type, param, code}}`."""
    return {"error": {"message": message, "type": openai_error_type(http_status), "param": param, "code": code}}


def _wants_api_error(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _wants_openai_error(request: HttpRequest) -> bool:
    return request.path.startswith("/v1/")


def api_page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: a URL under /api/ that matches no route (e.g. `/api/tts/jobs/not-a-uuid/`)
    answers the API's error shape, not Django's HTML page, like every other API error; under
    /v1/ (the OpenAI-compatible routes) OpenAI's envelope."""
    if _wants_openai_error(request):
        return JsonResponse(openai_error_json(f"Unknown route {request.path}.", 404, code="not_found"), status=404)
    if _wants_api_error(request):
        return JsonResponse({"code": "not_found", "message": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def api_server_error(request: HttpRequest) -> HttpResponse:
    """handler500: clients of the API always get `{code, message}` (and never a traceback);
    under /v1/ OpenAI's envelope."""
    if _wants_openai_error(request):
        return JsonResponse(openai_error_json("Internal server error.", 500, code="server_error"), status=500)
    if _wants_api_error(request):
        return JsonResponse({"code": "server_error", "message": "Internal server error."}, status=500)
    return defaults.server_error(request)
