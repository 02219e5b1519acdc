"""A lean front for the two hottest routes: POST /api/tts/jobs/ and GET /api/tts/jobs/<id>/.

A reminder client asks for the same phrases every day (cache hits) and polls its jobs, so these
two routes carry most of the traffic. Through DRF each request paid ~1.5 ms of CPU for the
machinery around our code (Request wrapping, negotiation, the serializer, the renderer): half of
a cache-hit POST (bench/RESULTS.md).

The front handles the well-formed common case with plain Django: `Authorization: Token` found in
the token cache, a JSON body whose fields are the plain types the API documents. It calls the
same services and presenters as the DRF views and writes the same JSON, status codes and headers
(tests/test_hot_path.py compares both paths request by request). Anything else (a malformed or
unusual body, a webhook URL, an unknown token, a throttled client, another method) goes to the
DRF view unchanged, which stays the reference and owns every error answer except the service's
own `{code, message}` errors, written the same way here.

`HOT_PATH=0` turns the front off (every request through DRF), for comparison and as an escape hatch.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework import serializers

from voice_tts.apis.authentication import token_cache_key, token_cache_user
from voice_tts.apis.jobs import JobCreateApi, JobDetailApi, JobInputSerializer, JobParamsSerializer, job_response
from voice_tts.apis.throttles import JobsThrottle, UserRateThrottle, throttle_key, throttle_verdict_remember
from voice_tts.errors import ServiceError
from voice_tts.presenters import job_representation_values
from voice_tts.services.job_text import SUPPORTED_LANGUAGES
from voice_tts.services.jobs import job_create, job_poll_row
from workers import status

# Handler: an answer, or None for "let DRF answer this one".
LeanHandler = Callable[..., HttpResponse | None]

# Bodies larger than this are never cache-hit reminders; DRF parses (and refuses) them.
_LEAN_MAX_BODY = 16 * 1024
_JSON_ACCEPTS = ("", "*/*", "application/*", "application/json")


def lean_front(view_class: type, handler: LeanHandler) -> Callable[..., HttpResponse]:
    """The URL callback: `handler` first, the DRF view when it declines.

    Keeps `cls` and `initkwargs` on the callback so drf-spectacular documents the DRF view.
    """
    drf_view = view_class.as_view()
    probe = view_class()
    probe.setup(HttpRequest())  # as_view()'s setup adds HEAD where there is GET
    allow = ", ".join(probe.allowed_methods)

    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if settings.HOT_PATH:
            response = handler(request, *args, **kwargs)
            if response is not None:
                response["Allow"] = allow  # as DRF's default response headers
                return response
        return drf_view(request, *args, **kwargs)

    view.cls = drf_view.cls  # type: ignore[attr-defined]
    view.initkwargs = drf_view.initkwargs  # type: ignore[attr-defined]
    view.csrf_exempt = True  # type: ignore[attr-defined]  # token auth only, as the DRF view
    functools.update_wrapper(view, drf_view, assigned=("__module__", "__name__", "__qualname__", "__doc__"))
    return view


def _json(body: dict[str, Any], *, status: int) -> HttpResponse:
    # Byte for byte what DRF's JSONRenderer writes with our settings (compact, UTF-8, no NaN,
    # U+2028/9 escaped for JavaScript).
    text = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return HttpResponse(text.encode(), status=status, content_type="application/json")


def _accepts_json(request: HttpRequest) -> bool:
    accept = request.META.get("HTTP_ACCEPT", "")
    if "q=0" in accept.replace(" ", ""):
        return False  # a refusal somewhere in the list: DRF's negotiation decides
    return any(part.split(";", 1)[0].strip() in _JSON_ACCEPTS for part in accept.split(","))


# One round trip for what DRF does in two: read the token's cached user and, if there is one,
# count the request in that user's throttle window (the same key and arithmetic as
# UserRateThrottle). The throttle key is built from the entry, so it is not declared in KEYS:
# fine on a single Redis, which is what the service uses (not Redis Cluster).
_AUTH_AND_COUNT = """
local entry = redis.call('GET', KEYS[1])
if not entry then return false end
local key = ARGV[1] .. cjson.decode(entry)['id']
local count = redis.call('INCR', key)
redis.call('EXPIRE', key, ARGV[2], 'NX')
return {entry, count, redis.call('TTL', key)}
"""
_auth_and_count_script: Any = None


def _token(request: HttpRequest) -> str | None:
    parts = request.META.get("HTTP_AUTHORIZATION", "").split()
    if len(parts) != 2 or parts[0].lower() != "token":
        return None
    return parts[1]


def _authenticated(request: HttpRequest, *, throttle: UserRateThrottle | None = None) -> int | None:
    """The cached token's active user id, or None (no header, unknown token, cache cold or down).

    With `throttle`, the request is also counted in the user's window and the verdict kept on the
    request: the caller declines a refused request and DRF answers 429 from that verdict."""
    global _auth_and_count_script
    token = _token(request)
    if token is None:
        return None
    client = status.redis_client()
    try:
        if throttle is None or throttle.rate is None:
            entry, counted = client.get(token_cache_key(token)), None
        else:
            if _auth_and_count_script is None:
                _auth_and_count_script = client.register_script(_AUTH_AND_COUNT)
            found = _auth_and_count_script(
                keys=[token_cache_key(token)], args=[throttle_key(throttle.scope, ""), int(throttle.duration)],
                client=client,
            )
            entry, counted = (found[0], found[1:]) if found else (None, None)
    except (redis.RedisError, OSError):
        return None
    if entry is None:
        return None
    user = token_cache_user(entry)
    if not user.is_active:
        return None
    request.user = user  # what DRF would set, for anything after the view
    if counted is not None and throttle is not None:
        count, ttl = counted
        # Counted once per request: if DRF answers from here on, its throttle reuses this verdict.
        throttle_verdict_remember(request, throttle, allowed=throttle.verdict(count=count, ttl=ttl))
    return user.pk


def _json_body(request: HttpRequest) -> dict[str, Any] | None:
    if request.content_type != "application/json":
        return None
    if request.content_params.get("charset", "utf-8").lower() != "utf-8":
        return None
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if not 0 < length <= _LEAN_MAX_BODY:
        return None
    try:
        data = json.loads(request.body, parse_constant=_refuse_constant)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)  # NaN / Infinity: DRF refuses them with its own message


def _param_rules() -> dict[str, tuple[type, float, float]]:
    rules = {}
    for name, field in JobParamsSerializer().fields.items():
        kind = int if isinstance(field, serializers.IntegerField) else float
        rules[name] = (kind, field.min_value, field.max_value)
    return rules


_PARAM_RULES = _param_rules()
# The serializer's own bound on the raw text, read from it rather than copied.
_TEXT_MAX_LENGTH = JobInputSerializer().fields["text"].max_length


def _job_params(value: Any) -> dict[str, Any] | None:
    """The serializer's validated params for plain JSON numbers in range, else None."""
    if not isinstance(value, dict):
        return None
    params: dict[str, Any] = {}
    for name, raw in value.items():
        rule = _PARAM_RULES.get(name)
        if rule is None or isinstance(raw, bool) or not isinstance(raw, int | float):
            return None
        kind, low, high = rule
        if kind is int and not isinstance(raw, int):
            return None
        number = kind(raw)
        if not (math.isfinite(number) and low <= number <= high):
            return None
        params[name] = number
    return params


def _job_input(data: dict[str, Any]) -> dict[str, Any] | None:
    """JobInputSerializer's validated_data for the plain case, else None. Like the serializer,
    keys it does not know are ignored."""
    text = data.get("text")
    language = data.get("language", "ko")
    use_cache = data.get("use_cache", True)
    params = _job_params(data.get("params", {}))
    if not isinstance(text, str) or len(text) > _TEXT_MAX_LENGTH:
        return None
    if language not in SUPPORTED_LANGUAGES or not isinstance(use_cache, bool) or params is None:
        return None
    if data.get("webhook_url", "") != "":
        return None  # URL validation and SSRF checks live on the DRF path
    return {"text": text, "language": language, "use_cache": use_cache, "params": params, "webhook_url": ""}


def job_create_lean(request: HttpRequest) -> HttpResponse | None:
    if request.method != "POST" or not _accepts_json(request):
        return None
    data = _json_body(request)
    fields = _job_input(data) if data is not None else None
    if fields is None:
        return None
    throttle = JobsThrottle()
    owner_id = _authenticated(request, throttle=throttle)
    if owner_id is None:
        return None
    if throttle.wait() is not None:
        return None  # refused: DRF writes the 429 with Retry-After from the kept verdict
    try:
        job = job_create(owner_id=owner_id, **fields)
    except ServiceError as exc:
        return _json({"code": exc.code, "message": exc.message}, status=exc.status)
    return job_response(request, job, render=_json)


def job_detail_lean(request: HttpRequest, job_id: Any) -> HttpResponse | None:
    if request.method != "GET" or not _accepts_json(request):
        return None
    owner_id = _authenticated(request)
    if owner_id is None:
        return None
    row = job_poll_row(owner_id=owner_id, job_id=job_id)
    if row is None:
        return _json({"code": "not_found", "message": "Not found."}, status=404)
    return _json(job_representation_values(row, base_url=request.build_absolute_uri("/")), status=200)


job_create_view = lean_front(JobCreateApi, job_create_lean)
job_detail_view = lean_front(JobDetailApi, job_detail_lean)
