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


def _joins_emoji(text: str, i: int) -> bool:
    """A zero-width joiner between two emoji (👨‍👩‍👧) is part of the emoji. Anywhere else
    (inside a word: "약\u200d드세요") it is an invisible character that would make two texts
    that look the same get different cache keys, so it is refused like the others."""
    if text[i] != "\u200d" or i == 0 or i == len(text) - 1:
        return False
    before = text[i - 1] if text[i - 1] != "\ufe0f" or i < 2 else text[i - 2]
    return unicodedata.category(before) in {"So", "Sk"} and unicodedata.category(text[i + 1]) == "So"


def job_text_normalise(*, text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = _WHITESPACE.sub(" ", text).strip()
    if not text:
        raise ServiceError("text_empty", "Text is empty; send 1 or more characters to speak.")
    bad = [
        ch for i, ch in enumerate(text)
        if (ch in _BIDI_CONTROLS or unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn"})
        and not _joins_emoji(text, i)
    ]
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
