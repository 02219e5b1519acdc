"""Every API error is `{"code": ..., "message": ...}` with the right HTTP status."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from voice_tts.errors import ServiceError

# Every code a service (or a view) refuses with, and the status it answers: the one place a
# refusal becomes HTTP. A code missing here is a bug, not a client's mistake, so it answers 500
# (and tests/test_errors_table.py fails on a code raised in the source but absent here).
# Codes a job stores (`state.error_code`, raised again by /v1/audio/speech) are the worker's
# failures and are absent on purpose: they answer 500.
ERROR_STATUSES: dict[str, int] = {
    # 400: the request is wrong.
    **dict.fromkeys((
        "clip_too_long", "clip_too_short", "confirmed_at_out_of_range", "device_name_empty",
        "empty_audio", "empty_file", "invalid_audio", "invalid_date", "invalid_day", "invalid_format",
        "invalid_language", "invalid_time", "invalid_timezone", "missing_file", "no_active_voice",
        "no_alert_channel", "occurrence_incomplete", "played_at_out_of_range", "quiet_hours_empty",
        "quiet_hours_incomplete", "silent_audio", "speed_unsupported", "text_empty",
        "text_invalid_characters", "text_too_long", "text_too_many_segments", "text_unspeakable", "too_many_times",
        "transcript_too_long", "unsupported_language", "webhook_address_forbidden", "webhook_refused",
        "webhook_url_disabled", "webhook_url_forbidden", "webhook_url_invalid", "webhook_url_unresolvable",
    ), 400),
    # Authentication refusals: the HTTP layer answers them as DRF's 401 `authentication_failed`.
    **dict.fromkeys(("token_expired", "token_invalid", "user_inactive"), 401),
    "not_found": 404,
    "model_not_found": 404,
    "voice_not_found": 404,
    # The owner's voice has no before/after preview of its style search (not done, or none was made).
    "preview_not_found": 404,
    "audio_not_ready": 409,
    "phrase_exists": 409,
    "play_key_conflict": 409,
    # The row is there but its file is gone (deleted, or lost from storage): Gone, not a server fault.
    "audio_missing": 410,
    "audio_too_large": 413,
    "file_too_large": 413,
    "unsupported_audio": 415,
    "unsupported_channels": 415,
    "unsupported_sample_rate": 415,
    "throttled": 429,
    # A user's unfinished jobs at USER_MAX_PENDING_JOBS (with Retry-After): passes as their jobs finish.
    "too_many_pending_jobs": 429,
    "audio_unreadable": 500,
    "job_gone": 500,
    "speech_timeout": 504,
}
UNKNOWN_ERROR_STATUS = 500


def error_status(code: str) -> int:
    """The HTTP status of a refusal's code (`ERROR_STATUSES`; 500 for a code it lacks)."""
    return ERROR_STATUSES.get(code, UNKNOWN_ERROR_STATUS)


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


def service_error_headers(response: Response, exc: ServiceError) -> Response:
    """A refusal that passes with time says when to try again, as DRF's throttles do."""
    retry_after = exc.details.get("retry_after")
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ServiceError):
        return service_error_headers(error_response(exc.code, exc.message, error_status(exc.code)), exc)
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
