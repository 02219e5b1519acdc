"""OpenAI-compatible speech: POST /v1/audio/speech, GET /v1/models, GET /v1/audio/voices.

Clients that speak OpenAI's audio API (the official SDKs, Home Assistant, Open WebUI, LLM voice
agents) use these with the caregiver's API token as `Authorization: Bearer <token>` (`Token <token>`
works too). Each route is one DRF view, like every other route, with its own exception handler
(`get_exception_handler`): errors here are OpenAI's `{"error": {message, type, param, code}}`;
the rest of the API keeps `{code, message}`. A device's token (the Pi) is refused (403, like
every route that does not opt in): a Pi plays its phrase bundle and needs no free-text speech.

The text is spoken sentence by sentence (services/speech.py): every sentence is a cached clip,
and the answer streams each sentence's encoded audio as soon as its job has finished. As on OpenAI,
streaming raw audio is the default (`stream_format` left out means `audio`); the body is one file in
the asked format all the same, for clients that read it whole (services/speech.py `speech_audio`).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from voice_tts.apis.schema import RETRY_AFTER_HEADER
from voice_tts.audio_codec import AUDIO_FORMATS
from voice_tts.errors import ServiceError
from voice_tts.http.authentication import CachedTokenAuthentication
from voice_tts.http.disconnects import ClientWatch
from voice_tts.http.errors import error_status, openai_error_json, service_error_headers
from voice_tts.http.throttles import JobsThrottle, SpeechThrottle
from voice_tts.services.speech import (
    OPENAI_VOICES,
    SPEECH_INPUT_MAX_CHARS,
    SPEECH_SPEED_MAX,
    SPEECH_SPEED_MIN,
    Speech,
    speech_audio,
    speech_create,
    speech_models,
    speech_wake,
)
from voice_tts.services.voices import voices_of

if TYPE_CHECKING:  # annotations only: the API gets its models from the services (pyproject.toml)
    from voice_tts.models import Voice

logger = logging.getLogger(__name__)

# OpenAI's `response_format` values; `aac` is refused with its own code (libsndfile has no AAC encoder).
RESPONSE_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
STREAM_FORMATS = ("audio", "sse")
# `created` of the models in GET /v1/models (a fixed date: the listing never changes between calls).
_MODELS_CREATED = 1767225600  # 2026-01-01T00:00:00Z


class BearerTokenAuthentication(CachedTokenAuthentication):
    """The same API token as the rest of the API, sent the way OpenAI clients send a key."""

    keyword = "Bearer"


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = BearerTokenAuthentication
    name = "bearerAuth"
    priority = 1  # before drf-spectacular's own scheme for TokenAuthentication and its subclasses

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "http", "scheme": "bearer", "description": "The user's API token (as from /api/auth/login/)."}


class FirstRendererNegotiation(DefaultContentNegotiation):
    """OpenAI's SDK sends `Accept: application/octet-stream`; the audio is not a DRF renderer's, so
    `Accept` never refuses a request here (DRF would answer 406): errors and lists are JSON."""

    def select_renderer(self, request: Request, renderers: list[Any], format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type


# The request field a service refusal is about (the `text_*` codes are all about `input`).
_SERVICE_ERROR_PARAMS = {"voice_not_found": "voice", "no_active_voice": "voice", "speed_unsupported": "speed"}
_AUTH_CODES = {"not_authenticated": "missing_api_key", "authentication_failed": "invalid_api_key"}


def _first_error(detail: Any, field: str | None = None) -> tuple[str | None, str, str]:
    """(param, message, code) of the first error in DRF's validation detail."""
    if isinstance(detail, dict):
        name, value = next(iter(detail.items()))
        return _first_error(value, field if name == "non_field_errors" else name)
    if isinstance(detail, list) and detail:
        return _first_error(detail[0], field)
    code = getattr(detail, "code", None) or "invalid"
    return field, f"{field}: {detail}" if field else str(detail), str(code)


def openai_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every error of the /v1/ views in OpenAI's envelope, with DRF's statuses and headers."""
    if isinstance(exc, ServiceError):
        param = _SERVICE_ERROR_PARAMS.get(exc.code) or ("input" if exc.code.startswith("text_") else None)
        http_status = error_status(exc.code)
        return service_error_headers(
            Response(openai_error_json(exc.message, http_status, code=exc.code, param=param), status=http_status), exc)
    if isinstance(exc, exceptions.ValidationError):
        param, message, code = _first_error(exc.detail)
        return Response(openai_error_json(message, 400, code=code, param=param), status=400)
    response = exception_handler(exc, context)  # Http404, auth, throttling (Retry-After), 405, 415 ...
    if response is None:
        return None
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "error"
        message = str(exc.detail)
    else:  # Django's Http404 / PermissionDenied, which DRF answered as NotFound / PermissionDenied
        code, message = ("not_found", "Not found.") if response.status_code == 404 else (
            "permission_denied", "You do not have permission to perform this action.")
    if response.status_code == 429:
        code = "rate_limit_exceeded"
    response.data = openai_error_json(message, response.status_code, code=_AUTH_CODES.get(code, code))
    return response


class OpenAIErrorBodySerializer(serializers.Serializer):
    message = serializers.CharField()
    type = serializers.CharField(help_text="`invalid_request_error` (4xx), `requests` (429), `server_error` (5xx).")
    param = serializers.CharField(allow_null=True, help_text="The request field at fault, if any.")
    code = serializers.CharField(allow_null=True, help_text="Machine-readable, e.g. `voice_not_found`.")

    class Meta:
        ref_name = "OpenAIErrorBody"


class OpenAIErrorSerializer(serializers.Serializer):
    error = OpenAIErrorBodySerializer()

    class Meta:
        ref_name = "OpenAIError"


_ERROR_TEXTS = {
    400: "Invalid input (`param` names the field).",
    401: "No or an invalid API key (`Authorization: Bearer <token>`).",
    403: "A device's token: use the caregiver's account token.",
    404: "Unknown (or another user's) voice or model.",
    405: "Method not allowed.",
    415: "The body must be JSON.",
    429: "Too many requests or syntheses for this user (`rate_limit_exceeded`), or too many of their jobs "
    "unfinished (`too_many_pending_jobs`); see `Retry-After`.",
    500: "A sentence's synthesis failed (`code` is the job's error code).",
    504: "A sentence, or the whole answer, was not ready in time (`speech_timeout`).",
}


def openai_error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    return {status: OpenApiResponse(OpenAIErrorSerializer, description=_ERROR_TEXTS[status])
            for status in dict.fromkeys((*statuses, 401, 403, 405))}


class OpenAIApi(APIView):
    """What every /v1/ view shares: Bearer keys, OpenAI's error envelope, JSON bodies."""

    authentication_classes = [BearerTokenAuthentication, CachedTokenAuthentication]
    content_negotiation_class = FirstRendererNegotiation
    parser_classes = [JSONParser]

    def get_exception_handler(self) -> Any:
        return openai_exception_handler


@extend_schema_field({
    "oneOf": [
        {"type": "string", "minLength": 1, "maxLength": 64},
        {"type": "object", "properties": {"id": {"type": "string", "minLength": 1, "maxLength": 64}},
         "required": ["id"]},
    ],
    "description": "One of your voice ids (GET /v1/audio/voices), or an OpenAI voice name "
    f"({', '.join(OPENAI_VOICES)}), which speaks with your active voice. `{{\"id\": ...}}` works too.",
})
class SpeechVoiceField(serializers.Field):
    default_error_messages = {"invalid": "voice must be a string or an object with a string `id`."}

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, dict):
            data = data.get("id")
        if not isinstance(data, str) or not 1 <= len(data) <= 64:
            self.fail("invalid")
        return data

    def to_representation(self, value: Any) -> str:
        return str(value)


class SpeechInputSerializer(serializers.Serializer):
    model = serializers.ChoiceField(choices=speech_models(), help_text="Every model is this deployment's engine.")
    # NUL, surrogates and other invisible characters are refused by the service with its own code.
    input = serializers.CharField(max_length=SPEECH_INPUT_MAX_CHARS, trim_whitespace=False)
    voice = SpeechVoiceField()
    instructions = serializers.CharField(required=False, allow_blank=True, max_length=4096,
                                         help_text="Accepted and ignored (the cloned voice has one way of speaking).")
    response_format = serializers.ChoiceField(choices=RESPONSE_FORMATS, default="mp3",
                                              help_text="`aac` is refused (400 `unsupported_response_format`).")
    speed = serializers.FloatField(default=1.0, min_value=SPEECH_SPEED_MIN, max_value=SPEECH_SPEED_MAX,
                                   help_text=f"{SPEECH_SPEED_MIN}-{SPEECH_SPEED_MAX} (the engines' range).")
    stream_format = serializers.ChoiceField(
        choices=STREAM_FORMATS, default="audio",
        help_text="`audio` (the default, as on OpenAI): the encoded audio, chunked (no Content-Length), each "
        "sentence as soon as it is ready; the whole body is one file in `response_format`. `sse`: "
        "`speech.audio.delta` events (base64 `audio`), then `speech.audio.done`.")

    class Meta:
        ref_name = "SpeechInput"

    def validate_response_format(self, value: str) -> str:
        if value not in AUDIO_FORMATS:
            raise serializers.ValidationError(
                f"response_format {value!r} is not offered here; use one of {', '.join(AUDIO_FORMATS)}.",
                code="unsupported_response_format")
        return value


def _speech_content_types() -> dict[Any, OpenApiResponse]:
    audio = {(200, audio_format.content_type): OpenApiResponse(
        OpenApiTypes.BINARY, description=f"`response_format` {name}: 24 kHz mono.")
        for name, audio_format in AUDIO_FORMATS.items()}
    events = {(200, "text/event-stream"): OpenApiResponse(
        OpenApiTypes.STR, description="`stream_format` sse: `data: {\"type\": \"speech.audio.delta\", \"audio\": "
        "<base64>}` events, then `speech.audio.done` with `usage` (or an `error` event).")}
    return {**audio, **events}


def _usage(speech: Speech) -> dict[str, int]:
    # No tokens here: the input is counted in characters; the output is not counted.
    return {"input_tokens": speech.characters, "output_tokens": 0, "total_tokens": speech.characters}


def _audio_body(first: bytes, rest: Iterator[bytes], watch: ClientWatch) -> Iterator[bytes]:
    try:
        if first:
            yield first
        for chunk in rest:  # a failure here ends the response without its last chunk: the client sees it cut off
            if chunk:
                yield chunk
    finally:
        watch.close()
        rest.close()  # however the answer ends (the server closes it on a failed write), its held jobs go


def _sse_event(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def _sse_events(speech: Speech, first: bytes, rest: Iterator[bytes], watch: ClientWatch) -> Iterator[bytes]:
    def delta(chunk: bytes) -> bytes:
        return _sse_event({"type": "speech.audio.delta", "audio": base64.b64encode(chunk).decode("ascii")})

    try:
        for chunk in _audio_body(first, rest, watch):
            yield delta(chunk)
    except ServiceError as exc:
        # The status line is long gone: the stream ends with an error event instead of `done`.
        logger.warning("speech stream for owner %s ended early: %s %s", speech.owner_id, exc.code, exc.message)
        yield _sse_event({"type": "error", **openai_error_json(exc.message, error_status(exc.code), code=exc.code)})
        return
    yield _sse_event({"type": "speech.audio.done", "usage": _usage(speech)})


class SpeechCreateApi(OpenAIApi):
    throttle_classes = [SpeechThrottle]

    def syntheses_admit(self, request: Request, count: int) -> None:
        """The request's syntheses against the per-user jobs throttle, all at once: refused (429 with
        Retry-After, inside speech_create's transaction, so nothing is queued) if they do not all fit."""
        throttle = JobsThrottle()
        if not throttle.consume(request, self, count):
            raise exceptions.Throttled(throttle.wait(), detail=(
                f"This request would queue {count} syntheses, more than are left of THROTTLE_JOBS_RATE "
                f"({throttle.rate}) for this user. Nothing was queued."))

    @extend_schema(
        operation_id="openai_speech_create",
        request={"application/json": SpeechInputSerializer},
        responses={**_speech_content_types(), **openai_error_responses(400, 401, 404, 415, 429, 500, 504)},
        parameters=[RETRY_AFTER_HEADER],
        description="OpenAI's `POST /v1/audio/speech`. The input is spoken sentence by sentence; each sentence is a "
        "cached clip and is streamed as soon as it is ready (by default, as on OpenAI; the body is one file).",
    )
    def post(self, request: Request) -> HttpResponse:
        data = SpeechInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        speech = speech_create(owner_id=request.user.id, text=fields["input"], voice=fields["voice"],
                               speed=fields["speed"],
                               syntheses_admit=lambda count: self.syntheses_admit(request, count))
        audio_format = fields["response_format"]
        # A client that hangs up ends its answer at once (voice_tts/http/disconnects.py): its thread is free
        # again and its sentences still waiting for their turn are not made.
        gone = threading.Event()

        def on_gone() -> None:
            gone.set()
            speech_wake(speech=speech)

        watch = ClientWatch(request, on_gone)
        chunks = speech_audio(speech=speech, audio_format=audio_format, client_gone=gone.is_set)
        # The status line goes out with the first bytes of audio, so that a failure before any audio is a plain
        # error answer: after the first sentence, or later where the encoder holds bytes back (an Ogg page; a
        # FLAC answer, which waits for the whole text, all of it: its errors, the deadline's too, are all here).
        try:
            first = next((chunk for chunk in chunks if chunk), b"")
        except BaseException:
            watch.close()
            raise
        if fields["stream_format"] == "sse":
            response = StreamingHttpResponse(_sse_events(speech, first, chunks, watch),
                                             content_type="text/event-stream")
            response["Cache-Control"] = "no-cache"
        else:
            response = StreamingHttpResponse(_audio_body(first, chunks, watch),
                                             content_type=AUDIO_FORMATS[audio_format].content_type)
        response["X-Accel-Buffering"] = "no"  # nginx: pass each chunk on at once
        return response


class OpenAIModelSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.ChoiceField(choices=["model"])
    created = serializers.IntegerField()
    owned_by = serializers.CharField()

    class Meta:
        ref_name = "OpenAIModel"


def _model_json(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": _MODELS_CREATED, "owned_by": f"carepill-{settings.TTS_ENGINE}"}


class ModelListApi(OpenAIApi):
    @extend_schema(
        operation_id="openai_models_list",
        responses={200: inline_serializer("OpenAIModelList", {
            "object": serializers.ChoiceField(choices=["list"]), "data": OpenAIModelSerializer(many=True)}),
            **openai_error_responses(401)},
    )
    def get(self, request: Request) -> Response:
        return Response({"object": "list", "data": [_model_json(model) for model in speech_models()]})


class ModelDetailApi(OpenAIApi):
    @extend_schema(operation_id="openai_models_retrieve",
                   responses={200: OpenAIModelSerializer, **openai_error_responses(401, 404)})
    def get(self, request: Request, model: str) -> Response:
        if model not in speech_models():
            raise ServiceError("model_not_found", f"The model {model!r} does not exist; see GET /v1/models.")
        return Response(_model_json(model))


class SpeechVoiceOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    object = serializers.ChoiceField(choices=["voice"])
    language = serializers.CharField()
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()

    class Meta:
        ref_name = "OpenAIVoice"


def _voice_json(voice: Voice) -> dict[str, Any]:
    name = f"{voice.language} voice of {voice.created_at:%Y-%m-%d %H:%M}" + (" (active)" if voice.is_active else "")
    return {"id": voice.id, "name": name, "object": "voice", "language": voice.language,
            "is_active": voice.is_active, "created_at": voice.created_at}


class SpeechVoiceListApi(OpenAIApi):
    @extend_schema(
        operation_id="openai_voices_list",
        responses={200: inline_serializer("OpenAIVoiceList", {
            "voices": SpeechVoiceOutputSerializer(many=True),
            "builtin_voices": serializers.ListField(child=serializers.CharField(), help_text=(
                "OpenAI's voice names: each speaks with your active voice.")),
        }), **openai_error_responses(401)},
    )
    def get(self, request: Request) -> Response:
        voices = [_voice_json(voice) for voice in voices_of(owner_id=request.user.id)]
        return Response({"voices": SpeechVoiceOutputSerializer(voices, many=True).data,
                         "builtin_voices": list(OPENAI_VOICES)})
