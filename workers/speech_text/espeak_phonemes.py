"""Text -> IPA phonemes through espeak-ng's `espeak_TextToPhonemes`, called with ctypes.

The library and its data come from the `espeakng-loader` wheel, so no system package is
needed. espeak-ng keeps process-global state (current voice, buffers), so every call into
it, ours and any other engine's in the same process, must hold `ESPEAK_LOCK`.
"""

from __future__ import annotations

import ctypes
import re
import threading

# One lock for every caller of libespeak-ng in this process. The espeak engine module
# imports this object too, so synthesis and phonemisation never interleave.
ESPEAK_LOCK = threading.RLock()

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_CHARS_UTF8 = 1
# bit 1: IPA output (UTF-8) instead of espeak's ASCII phoneme mnemonics
_PHONEMES_IPA = 0x02

_VOICES = {"ko": "ko", "en": "en-us"}

_lib: ctypes.CDLL | None = None
_lib_voice: str | None = None

# Clause punctuation is dropped by espeak_TextToPhonemes; we split on it ourselves and
# put it back, because Kokoro uses it for phrasing and pauses.
_CLAUSE_RE = re.compile(r"([^,.!?;:。！？]+)([,.!?;:。！？]*)")
_PUNCT_MAP = {"。": ".", "！": "!", "？": "?"}


class PhonemiserError(RuntimeError):
    pass


def espeak_library() -> ctypes.CDLL:
    """Load and initialise libespeak-ng once per process (caller holds ESPEAK_LOCK).

    Shared with the espeak engine: whoever comes first initialises it, with synchronous
    audio output so that synthesis through the callback also works on the same handle.
    """
    global _lib
    if _lib is not None:
        return _lib
    try:
        import espeakng_loader
    except ImportError as exc:  # pragma: no cover - requirements.txt installs it
        raise PhonemiserError("espeakng-loader is not installed") from exc
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
    sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
    if sample_rate <= 0:
        raise PhonemiserError(f"espeak_Initialize failed ({sample_rate})")
    _lib = lib
    return lib


def _set_voice(lib: ctypes.CDLL, voice: str) -> None:
    global _lib_voice
    # Another engine may have switched the voice since our last call: set it every time
    # unless we know we were the last to set it. Cheap either way.
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise PhonemiserError(f"espeak-ng has no voice {voice!r}")
    _lib_voice = voice


def _clause_phonemes(lib: ctypes.CDLL, text: str) -> str:
    buf = ctypes.create_string_buffer(text.encode("utf-8"))
    pointer = ctypes.c_void_p(ctypes.addressof(buf))
    parts: list[str] = []
    # espeak_TextToPhonemes advances `pointer` clause by clause and sets it to NULL at the end.
    while pointer.value:
        raw = lib.espeak_TextToPhonemes(ctypes.byref(pointer), _ESPEAK_CHARS_UTF8, _PHONEMES_IPA)
        if raw:
            parts.append(raw.decode("utf-8", errors="replace").strip())
    return " ".join(p for p in parts if p)


def espeak_phonemes(text: str, language: str) -> str:
    """Raw espeak-ng IPA for `text`, clause punctuation kept (",", ".", "!", "?")."""
    voice = _VOICES.get(language)
    if voice is None:
        raise PhonemiserError(f"no espeak-ng voice for language {language!r}")
    out: list[str] = []
    with ESPEAK_LOCK:
        lib = espeak_library()
        _set_voice(lib, voice)
        for match in _CLAUSE_RE.finditer(text):
            words, punct = match.group(1), match.group(2)
            if not words.strip():
                continue
            phonemes = _clause_phonemes(lib, words.strip())
            if not phonemes:
                continue
            mark = _PUNCT_MAP.get(punct[:1], punct[:1]) if punct else ""
            out.append(phonemes + mark)
    return " ".join(out)
