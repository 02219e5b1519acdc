"""What text a job may carry, normalised once so equal requests share a cache key."""

from __future__ import annotations

import re
import unicodedata

from django.conf import settings

from voice_tts.errors import ServiceError

_WHITESPACE = re.compile(r"\s+")
# Bidi overrides/isolates can make a reminder display differently from what is spoken.
_BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
SUPPORTED_LANGUAGES = ("ko", "en")


def job_text_normalise(*, text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = _WHITESPACE.sub(" ", text).strip()
    if not text:
        raise ServiceError("text_empty", "Text is empty; send 1 or more characters to speak.")
    bad = [ch for ch in text if ch in _BIDI_CONTROLS or unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn"}]
    # Zero-width joiners are part of emoji sequences; they are not worth refusing.
    bad = [ch for ch in bad if ch not in "\u200d\ufe0f"]
    if bad:
        raise ServiceError(
            "text_invalid_characters",
            f"Text contains control or invisible characters (first: U+{ord(bad[0]):04X}).",
        )
    if len(text) > settings.JOB_TEXT_MAX_CHARS:
        raise ServiceError(
            "text_too_long", f"Text has {len(text)} characters; at most {settings.JOB_TEXT_MAX_CHARS} are allowed."
        )
    if not any(ch.isalnum() for ch in text):
        raise ServiceError("text_unspeakable", "Text has no letters or digits to speak.")
    return text
