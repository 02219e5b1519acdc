"""Text front end shared by every speech engine: normalisation and phonemes.

`text_normalise_for_speech` is pure Python and cheap (any engine may call it);
`speech_phonemes` needs libespeak-ng (from the espeakng-loader wheel).
"""

from __future__ import annotations

import re
import unicodedata

from workers.speech_text.english import english_normalise
from workers.speech_text.korean import korean_normalise

SUPPORTED_LANGUAGES = ("ko", "en")

_SPACES_RE = re.compile(r"\s+")


def text_normalise_for_speech(text: str, language: str) -> str:
    """Return `text` with numbers, times, dates and units spelled out as a speaker says them.

    Unknown languages get only Unicode/whitespace clean-up (never an error: the engine
    decides which languages it supports).
    """
    # NFC first: Hangul typed on some phones arrives as decomposed jamo, which espeak-ng
    # reads letter by letter. NFKC would also fold "㎎" into "mg" but mangles other text.
    text = unicodedata.normalize("NFC", text)
    text = text.replace("㎎", "mg").replace("㎖", "ml").replace("㎏", "kg")
    text = _SPACES_RE.sub(" ", text).strip()
    if language == "ko":
        return korean_normalise(text)
    if language == "en":
        return english_normalise(text)
    return text


def speech_phonemes(text: str, language: str) -> str:
    """Normalised text -> IPA phonemes for Kokoro (espeak-ng, plus the Korean corrections)."""
    from workers.speech_text.espeak_phonemes import espeak_phonemes
    from workers.speech_text.phoneme_rules import korean_phonemes_fix, korean_phonemes_for_kokoro, korean_respell

    if language == "ko":
        return korean_phonemes_for_kokoro(korean_phonemes_fix(espeak_phonemes(korean_respell(text), "ko")))
    return espeak_phonemes(text, language)


__all__ = ["SUPPORTED_LANGUAGES", "speech_phonemes", "text_normalise_for_speech"]
