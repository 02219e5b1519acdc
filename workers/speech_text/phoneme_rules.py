"""Corrections for espeak-ng's Korean IPA, applied before the phonemes reach Kokoro.

espeak-ng 1.51/1.52 writes Korean with systematic errors (see shared docs/offline-speech.md):
ㄱ comes out as uvular /q/, nasal assimilation is missing (입니다 -> "ipnida", should be
"imnida"), final ㄹ is a dark /ɫ/, aspiration is a separate "h" and tense consonants carry a
"-" that Kokoro's vocabulary does not have. Fixing these cut Kokoro's Korean CER from 0.56
to 0.21 in our measurements. Each rule is a regex so that the table reads like phonology.
"""

from __future__ import annotations

import re

# Part of the engine's model_version: bump when a rule changes what Kokoro is fed.
PHONEME_RULES_VERSION = "ko-rules-7"

_STRESS = "ˈˌ"
_S = f"[{_STRESS}]*"  # stress marks are transparent to assimilation
_VOWELS = "aɐeɛiɨɯoɔuʌəæɑɒøœyʊɪɤ"
_VOICED = _VOWELS + "mnŋlɫɾjwː"

_ASPIRATED = {"p": "pʰ", "b": "pʰ", "t": "tʰ", "d": "tʰ", "k": "kʰ", "q": "kʰ", "ɡ": "kʰ", "tʃ": "tʃʰ", "tɕ": "tɕʰ"}
_NASAL_OF = {"p": "m", "b": "m", "t": "n", "d": "n", "k": "ŋ", "q": "ŋ", "ɡ": "ŋ"}
_DEVOICED = {"d": "t", "ɡ": "k", "b": "p", "dʑ": "tɕ"}

_RULES: list[tuple[re.Pattern[str], str | object]] = []


def _rule(pattern: str, repl: str | object) -> None:
    _RULES.append((re.compile(pattern), repl))


# 0. Voicing of the lenis stops, before the tense mark "-" is dropped (a tense consonant never
#    voices). Korean lenis ㄱ/ㄷ/ㅂ/ㅈ are voiced between voiced sounds and voiceless elsewhere;
#    espeak-ng voices ㄷ (d) and ㅈ (dʑ) everywhere or by its own rules, ㅂ (p) never:
#    a. tense ㄲ is written q-: a plain voiceless [k] (아까 -> ak-a, not aɡa; 함께 -> hamke).
_rule(r"q-", "k")
#    b. ㅂ between voiced sounds is [b] (혈압을 -> hjʌɾabɯl, 일곱이 -> ilɡobi), also at the start of
#       a word after a word ending in a voiced sound in the same clause (세 번 -> se bʌn, 검사 받는
#       -> kʌmsa bannɯn), as espeak already does for ㄱ and ㄷ (소화제 두 -> sohwadʑe du). ㅃ (p-)
#       and ㅍ (ph) are not voiced. Kokoro's voiceless p there sounds aspirated to a Korean ear (ㅍ).
_rule(r"(?<=[" + _VOICED + r"])(" + _S + r" ?" + _S + r")p(?=" + _S + r"[" + _VOICED + r"])", r"\1b")
#    b'. The same for ㅈ at the start of a word (한 정을 -> han dʑʌŋɯl, 재 주세요 -> tɕɛ dʑusejo): espeak
#       voices ㅈ inside a word itself (소화제 -> sohwadʑe) but never at a word start, and Kokoro's
#       voiceless affricate there is heard as ㅊ (한 정을 -> 간청을). Only across a space: inside a
#       word espeak's tɕ after a voiced sound is ㅉ (진짜 -> tɕintɕa), which stays voiceless. espeak
#       writes a word-initial ㅉ like ㅈ, so one after a voiced sound (아주 짜다) is voiced too: rare in
#       reminders, and the lesser error than ㅈ heard as ㅊ in every "한 정".
_rule(r"(?<=[" + _VOICED + r"])(" + _S + r" " + _S + r")tɕ(?=" + _S + r"[" + _VOICED + r"])", r"\1dʑ")
#    c. A lenis stop after an obstruent coda is tensed (표준 발음법 제23항: 약 드실 -> [약뜨실],
#       식당 -> [식땅]), inside a word and, in running speech, across the space: voiceless.
_rule(r"(?<=[pbtdkqɡ])(-?" + _S + r" ?" + _S + r")(dʑ|[dɡb])", lambda m: m.group(1) + _DEVOICED[m.group(2)])
#    d. At the start of a clause (text start, or after clause punctuation) a lenis stop is
#       voiceless too (드세요 -> tɯsejo); after a vowel-final word in the same clause it stays voiced.
_rule(r"(^|[,.!?;:] )(" + _S + r")(dʑ|[dɡb])", lambda m: m.group(1) + m.group(2) + _DEVOICED[m.group(3)])
# 1. Tense consonants (ㄲ ㄸ ㅃ ㅆ) and unreleased finals (ㅅ -> t-) are marked with "-":
#    Kokoro has no such symbol and would just drop it; a plain consonant is the closest it knows.
_rule(r"-", "")
# 2. Aspiration: espeak writes ㅋ/ㅌ/ㅍ/ㅊ (and ㄱ/ㄷ/ㅂ + ㅎ, 축하 -> "tʃhukhɐ") as consonant + h.
#    Kokoro reads "h" as a separate syllable onset; an aspirated stop is what a speaker says.
_rule(r"(tʃ|tɕ|[pbtdkqɡ])h", lambda m: _ASPIRATED[m.group(1)])
# 3. A final stop before its own aspirated twin merges (좋다 "tʃot thɐ" -> "tʃotʰɐ").
_rule(r"([ptk])(" + _S + r")\1ʰ", r"\2\1ʰ")
# 4. Nasal assimilation: an obstruent coda before a nasal becomes the nasal at its place
#    (입니다 -> imnida, 국물 -> guŋmul, 밥만 -> pamman, 있는 -> innɯn).
_rule(r"([pbtdkqɡ])(" + _S + r"[nm])", lambda m: _NASAL_OF[m.group(1)] + m.group(2))
# 5. Lateralisation: ㄴ+ㄹ and ㄹ+ㄴ are both said [ll] (신라 -> silla, 설날 -> sʌllal).
_rule(r"n(" + _S + r")ɾ", r"l\1l")
_rule(r"[ɫl](" + _S + r")n", r"l\1l")
# 6. espeak's /q/ for ㄱ: voiced [ɡ] between voiced sounds inside a word, else a plain [k].
_rule(r"(?<=[" + _VOICED + r"])(" + _S + r")q(?=" + _S + r"[" + _VOICED + r"])", r"\1ɡ")
_rule(r"q", "k")
# 7. Korean ㄹ in the coda is a clear [l]; Kokoro's ɫ is the dark English one.
_rule(r"ɫ", "l")


def korean_phonemes_fix(phonemes: str) -> str:
    """Rewrite espeak-ng Korean IPA into what a Korean speaker says (still espeak's symbol set)."""
    for pattern, repl in _RULES:
        phonemes = pattern.sub(repl, phonemes)  # type: ignore[arg-type]
    return phonemes


# Words whose spelling espeak-ng reads wrongly, respelled as they are pronounced before
# phonemisation: 여덟 has a silent ㅂ ([여덜]) and is in every "8시" reminder.
KOREAN_RESPELLINGS = {"여덟": "여덜"}


_HANGUL_FIRST, _HANGUL_LAST = 0xAC00, 0xD7A3

# ㄴ-insertion (표준 발음법 제29항): in a compound whose second part starts with 야/여/요/유/이,
# an [n] is inserted after a first part that ends in a consonant. 약 ("medicine") is the
# compound part every reminder has: 혈압약 [혀람냑], 아침약 [아침냑], 두통약 [두통냑].
# Only after a first part of two or more syllables: one-syllable Sino-Korean words such as
# 절약 [저략], 한약 [하냑], 농약 [농약] are single words, not compounds, and have no [n].
# espeak-ng reads the respelled 냑 and the nasal-assimilation rule below then gives [mɲ]/[ŋɲ].
_N_INSERTION_RE = re.compile(r"(?<![가-힣])([가-힣]+[가-힣])약")


def _has_final_consonant(syllable: str) -> bool:
    code = ord(syllable)
    return _HANGUL_FIRST <= code <= _HANGUL_LAST and (code - _HANGUL_FIRST) % 28 != 0


def _n_insert(match: re.Match[str]) -> str:
    stem = match.group(1)
    return stem + ("냑" if _has_final_consonant(stem[-1]) else "약")


def korean_respell(text: str) -> str:
    for written, said in KOREAN_RESPELLINGS.items():
        text = text.replace(written, said)
    return _N_INSERTION_RE.sub(_n_insert, text)


# Kokoro learnt Japanese and English, not Korean: these map corrected Korean IPA onto the
# symbols it pronounces best. Each was kept only if it lowered Whisper's CER on the
# benchmark phrases (jf_alpha; 0.47 -> 0.24 together): ɐ -> a (ㅏ is an open [a]; Kokoro's ɐ
# sounds like a schwa), ʌ -> ɔ (ㅓ is rounded-ish [ʌ̹]), the Japanese affricate tokens ʨ/ʥ
# for ㅈ/ㅊ, [ɕ] for ㅅ before i/j (시 is [ɕi]), and no stress marks (Korean has no lexical
# stress; espeak's alternating stress made Kokoro sing).
_KOKORO_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"ɐ"), "a"),
    (re.compile(r"ʌ"), "ɔ"),
    (re.compile(r"t[ɕʃ]"), "ʨ"),
    (re.compile(r"d[ʑʒ]"), "ʥ"),
    (re.compile(r"s(?=[" + _STRESS + r"]*[ij])"), "ɕ"),
    (re.compile(r"[" + _STRESS + r"]"), ""),
]


def korean_phonemes_for_kokoro(phonemes: str) -> str:
    """Corrected Korean IPA -> the nearest symbols in Kokoro's (English/Japanese) inventory."""
    for pattern, repl in _KOKORO_RULES:
        phonemes = pattern.sub(repl, phonemes)
    return phonemes
