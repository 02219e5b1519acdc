"""Serving personal audio: only through authenticated views, never as static files."""

from django.core.files.storage import default_storage
from django.http import FileResponse

from voice_tts.errors import ServiceError


def audio_file_response(name: str, *, filename: str) -> FileResponse:
    try:
        handle = default_storage.open(name, "rb")
    except FileNotFoundError:
        raise ServiceError("audio_missing", "The audio file is missing from storage.", status=410) from None
    response = FileResponse(handle, content_type="audio/wav", filename=filename)
    response["Cache-Control"] = "private, max-age=86400"
    return response
