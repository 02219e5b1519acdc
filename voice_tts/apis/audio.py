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
"""

from urllib.parse import quote

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponse
from django.utils.http import content_disposition_header

from voice_tts.errors import ServiceError


def _missing() -> ServiceError:
    return ServiceError("audio_missing", "The audio file is missing from storage.", status=410)


def audio_file_response(name: str, *, filename: str) -> HttpResponse:
    mode = settings.AUDIO_SENDFILE
    if mode:
        if not default_storage.exists(name):
            raise _missing()
        response = HttpResponse(content_type="audio/wav")
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
        response = FileResponse(handle, content_type="audio/wav", filename=filename)
    response["Cache-Control"] = "private, max-age=86400"
    return response
