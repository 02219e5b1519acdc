"""Serving personal audio: only through authenticated views, never as static files.

The view always decides who may have the bytes. Who copies them to the socket is a setting
(AUDIO_SENDFILE): by default Django streams the file (FileResponse: a sync gunicorn worker is
busy for the whole download); behind nginx, `x-accel-redirect` hands the file to nginx through
an `internal` location, and `x-sendfile` does the same for Apache (mod_xsendfile) or lighttpd,
so the worker is free as soon as the headers are written.

With media on S3 (STORAGE_BACKEND=s3) the view streams the object from the bucket: the storage's
file reads it (in memory up to a few MB, then a local temp file) and FileResponse copies it out.
No presigned URL is handed out instead: the bucket may be reachable only from the servers (a LAN
MinIO, credentials-only AWS), the Pi trusts only the site's certificate, and a URL that works for
whoever holds it until it expires is a copy of the owner's audio that this view can no longer
refuse. Clips are small (tens to hundreds of kB), so the web's share of the traffic is too. The
sendfile modes hand the proxy a path on the web's disk, which S3 has not: settings refuse them.

Formats (`?format=wav|flac|opus|mp3`, else `Accept`, else WAV): `audio_format_requested` reads what the client asked
for, services/clip_formats.py finds or makes the file, and `audio_file_response` serves it with that format's
Content-Type, an ETag naming its bytes (so each format has its own; `If-None-Match` -> 304) and `Vary: Accept`.
With AUDIO_SENDFILE the front server sends the file; the view has already answered a matching `If-None-Match`.
"""

from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpRequest, HttpResponse
from django.utils.cache import get_conditional_response, patch_vary_headers
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request

from voice_tts.audio_codec import AUDIO_FORMATS
from voice_tts.errors import ServiceError
from voice_tts.services.clip_formats import (
    CLIP_AUDIO_DEFAULT,
    CLIP_AUDIO_FORMATS,
    clip_audio_encoded,
    clip_format_check,
)

# Accept media types -> our format. Several names for one format: what players and browsers send.
ACCEPT_FORMATS = {
    "audio/wav": "wav",
    "audio/wave": "wav",
    "audio/x-wav": "wav",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
    "audio/ogg": "opus",
    "audio/opus": "opus",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
}

FORMAT_PARAMETER = OpenApiParameter(
    "format",
    type=str,
    enum=list(CLIP_AUDIO_FORMATS),
    location=OpenApiParameter.QUERY,
    required=False,
    description="The audio format; wins over `Accept` (audio/wav, audio/flac, audio/ogg or audio/opus, "
    "audio/mpeg). Neither: wav. Anything else is a 400 `invalid_format`.",
)


FORMAT_ERRORS = {400: "An unknown or repeated `format` (`invalid_format`)."}


def audio_responses(description: str) -> dict[Any, Any]:
    """The OpenAPI 200s of an audio route: one per format's Content-Type, and the 304 of a matching ETag."""
    responses: dict[Any, Any] = {
        (200, AUDIO_FORMATS[name].content_type): OpenApiResponse(OpenApiTypes.BINARY, description=description)
        for name in CLIP_AUDIO_FORMATS
    }
    responses[304] = OpenApiResponse(description="Unchanged since the `If-None-Match` tag: no body.")
    return responses


class AudioContentNegotiation(DefaultContentNegotiation):
    """The audio views answer audio (a Django response, chosen by `audio_format_requested`), and their errors as
    JSON: an `Accept: audio/ogg` must reach the view, not end in DRF's 406 for want of an audio renderer."""

    def select_renderer(self, request: Request, renderers: list[Any], format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type


def audio_format_requested(request: Request) -> str:
    """`?format=` (exactly one of CLIP_AUDIO_FORMATS, else 400), else the best audio type in `Accept`, else wav."""
    values = request.query_params.getlist("format")
    if len(values) > 1:
        raise ServiceError("invalid_format", "Give `format` once.")
    if values:
        return clip_format_check(audio_format=values[0])
    preferred = request.get_preferred_type(list(ACCEPT_FORMATS))  # Django's, through DRF's Request
    return ACCEPT_FORMATS.get(preferred or "", CLIP_AUDIO_DEFAULT)


def _missing() -> ServiceError:
    return ServiceError("audio_missing", "The audio file is missing from storage.")


def _caching_headers(response: HttpResponse, etag: str | None) -> HttpResponse:
    if etag:
        response["ETag"] = etag
    response["Cache-Control"] = "private, max-age=86400"
    patch_vary_headers(response, ["Accept"])
    return response


def audio_file_response(
    name: str,
    *,
    filename: str,
    content_type: str = "audio/wav",
    etag: str | None = None,
    request: HttpRequest | Request | None = None,
) -> HttpResponse:
    """Serve the stored file `name`. With `etag` and `request`: a matching `If-None-Match` is a 304."""
    if etag and request is not None:
        not_modified = get_conditional_response(request, etag=etag)
        if not_modified is not None:
            return _caching_headers(not_modified, etag)
    mode = settings.AUDIO_SENDFILE
    if mode:
        if not default_storage.exists(name):
            raise _missing()
        response = HttpResponse(content_type=content_type)
        if mode == "x-accel-redirect":
            # nginx: `location /protected-media/ { internal; alias <MEDIA_ROOT>/; }`
            response["X-Accel-Redirect"] = quote(settings.AUDIO_ACCEL_REDIRECT_PREFIX.rstrip("/") + "/" + name)
        else:
            response["X-Sendfile"] = default_storage.path(name)
        response["Content-Disposition"] = content_disposition_header(False, filename)
    else:
        try:
            handle = default_storage.open(name, "rb")
        except FileNotFoundError:
            raise _missing() from None
        response = FileResponse(handle, content_type=content_type, filename=filename)
    return _caching_headers(response, etag)


def clip_audio_response(request: Request, *, clip: Any, audio_format: str, filename_stem: str) -> HttpResponse:
    """Serve `clip` in `audio_format` (services.clip_formats), with its Content-Type and ETag."""
    audio = clip_audio_encoded(clip=clip, audio_format=audio_format)
    return audio_file_response(
        audio.name,
        filename=f"{filename_stem}.{audio.audio_format.extension}",
        content_type=audio.audio_format.content_type,
        etag=audio.etag,
        request=request,
    )
