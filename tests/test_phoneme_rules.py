"""espeak-ng Korean phoneme corrections, rule by rule, then through the real library."""

from __future__ import annotations

import threading

import pytest

from workers.speech_text import speech_phonemes
from workers.speech_text.espeak_phonemes import ESPEAK_LOCK, PhonemiserError, espeak_phonemes
from workers.speech_text.phoneme_rules import korean_phonemes_fix, korean_phonemes_for_kokoro, korean_respell

RULE_CASES = [
    # uvular q: [ɡ] between voiced sounds, [k] elsewhere
    ("sˈiqɐnˌimnidˌɐ", "sˈiɡɐnˌimnidˌɐ"),  # 시간 (q between vowels, across a stress mark)
    ("xɡˈɐmqijˌɐqɯɫ", "xɡˈɐmɡijˌɐɡɯl"),  # 감기약을 (not clause-initial here)
    ("jˈɐq dɯsˈil", "jˈɐk tɯsˈil"),  # 약 (word-final), 드 tensed after it
    ("sˈiqsɐ", "sˈiksɐ"),  # 식사 (before a voiceless consonant)
    # nasal assimilation: obstruent coda before a nasal
    ("ˌipnidˌɐ", "ˌimnidˌɐ"),  # 입니다
    ("ɡˈuqmuɫ", "kˈuŋmul"),  # 국물 (clause-initial ㄱ is voiceless)
    ("pˈɐpmɐn", "pˈɐmmɐn"),  # 밥만
    ("mˈʌqnɯn", "mˈʌŋnɯn"),  # 먹는
    ("sˈet-nˈet", "sˈennˈet"),  # 셋 넷 (tense/unreleased mark dropped first)
    # dark l -> clear l
    ("ˈɐɫ", "ˈɐl"),
    # lateralisation
    ("sˈinɾɐ", "sˈillɐ"),  # 신라
    ("sˈʌɫnɐɫ", "sˈʌllɐl"),  # 설날
    # aspiration written as C + h
    ("khˈɐdɯ", "kʰˈɐdɯ"),  # 카드
    ("thˈɐdɐ", "tʰˈɐdɐ"),
    ("phˈɐdo", "pʰˈɐdo"),
    ("tʃhˈɐdɐ", "tʃʰˈɐdɐ"),  # 차다
    ("tʃhˈukhɐ", "tʃʰˈukʰɐ"),  # 축하
    ("iphˈɐq", "ipʰˈɐk"),  # 입학
    ("tɕˈot-thɐ", "tɕˈotʰɐ"),  # 좋다: coda t merges into the aspirated t
    # tense marks
    ("q-ˈoq", "kˈok"),  # 꼭
    ("ˈɐq-ɐ", "ˈɐkɐ"),  # 아까: tense ㄲ between vowels stays voiceless
    ("hˈɐmq-e", "hˈɐmke"),  # 함께
    ("ˈop-ɐ", "ˈopɐ"),  # 오빠: tense ㅃ is not voiced either
    # lenis ㅂ voiced between voiced sounds (espeak writes it as p everywhere)
    ("hjˈʌɾɐpˌɯɫ", "hjˈʌɾɐbˌɯl"),  # 혈압을
    ("ˈɐsɯphˌiɾin", "ˈɐsɯpʰˌiɾin"),  # ㅍ stays aspirated, not voiced
    ("ˈiɫqop sˈie", "ˈilɡop sˈie"),  # coda ㅂ before a consonant stays [p]
    # post-obstruent tensing: a lenis stop after a stop coda is voiceless, across a space too
    ("sˈiqdɐŋ", "sˈiktɐŋ"),  # 식당 [식땅]
    ("hˈɐqɡjo", "hˈɐkkjo"),  # 학교 [학꾜]
    ("jˈɐq dˈɯsejˌo", "jˈɐk tˈɯsejˌo"),  # 약 드세요 [약 뜨세요]
    ("ˈip dʑˈu", "ˈip tɕˈu"),
    # clause-initial lenis stops are voiceless; after a vowel-final word they stay voiced
    ("dˈɯsejˌo.", "tˈɯsejˌo."),  # 드세요.
    ("hˈue, dˈu ɐɾˈɯɫ", "hˈue, tˈu ɐɾˈɯl"),
    ("sˈohwɐdʑˌe dˈu", "sˈohwɐdʑˌe dˈu"),  # 소화제 두: voiced in running speech
    ("bˈɐm", "pˈɐm"),
    # word-initial ㅂ/ㅈ after a word ending in a voiced sound, same clause: voiced like ㄱ/ㄷ
    ("sˈe pˈʌn", "sˈe bˈʌn"),  # 세 번
    ("hˈɐn tɕʌŋˈɯɫ", "hˈɐn dʑʌŋˈɯl"),  # 한 정을
    ("tɕˈɛ tɕˈusejˌo", "tɕˈɛ dʑˈusejˌo"),  # 재 주세요 (the clause-initial one stays voiceless)
    ("hˈue, pˈʌn", "hˈue, pˈʌn"),  # not across a clause boundary
    ("pˈɐp tɕˈɐ", "pˈɐp tɕˈɐ"),  # not after an obstruent (tensed there)
    ("ˈɐ p-ˈɐŋ", "ˈɐ pˈɐŋ"),  # 아 빵: tense ㅃ is not voiced
    ("ˈɐ tɕhˈɐ", "ˈɐ tɕʰˈɐ"),  # ㅊ stays aspirated
    ("tɕintɕˈɐ", "tɕintɕˈɐ"),  # 진짜: inside a word espeak's tɕ after a voiced sound is ㅉ
    ("s-ˈɐdɐ", "sˈɐdɐ"),  # 싸다
    # things that must not change
    ("hˈɐnɐ", "hˈɐnɐ"),
    ("ɐ ɡˈʌnqɐŋhˌɐsejˌo", "ɐ ɡˈʌnɡɐŋhˌɐsejˌo"),  # ŋ + h is not aspiration
]


@pytest.mark.parametrize(("raw", "fixed"), RULE_CASES)
def test_rule(raw: str, fixed: str) -> None:
    assert korean_phonemes_fix(raw) == fixed


def test_fix_is_idempotent() -> None:
    # Except tense ㅃ between vowels: once its "-" is gone it reads as a lenis ㅂ.
    for raw, fixed in RULE_CASES:
        if "p-" not in raw:
            assert korean_phonemes_fix(fixed) == fixed


def test_fixed_output_has_no_espeak_only_symbols() -> None:
    for raw, _ in RULE_CASES:
        out = korean_phonemes_fix(raw)
        assert "q" not in out and "ɫ" not in out and "-" not in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("약 드실 시간입니다.", "jak tɯɕil ɕiɡanimnida."),
        ("국물", "kuŋmul"),
        ("혈압을 재 주세요.", "hjɔɾabɯl ʥɛ ʥusejo."),
        ("하루 세 번, 한 정을 드세요.", "haɾu se bɔn, han ʥɔŋɯl dɯsejo."),
        ("아까 함께", "aka hamke"),
        ("축하합니다", "ʨʰukʰahamnida"),
        ("여덟 시", "jɔdɔl ɕi"),
    ],
)
def test_real_espeak_korean_then_fixed(text: str, expected: str) -> None:
    assert speech_phonemes(text, "ko") == expected


def test_espeak_keeps_clause_punctuation() -> None:
    out = espeak_phonemes("감기약을 드세요, 할머니!", "ko")
    assert "," in out and out.endswith("!")


def test_espeak_english() -> None:
    assert espeak_phonemes("Take two tablets.", "en") == "tˈeɪk tˈuː tˈæbləts."


def test_espeak_unknown_language() -> None:
    with pytest.raises(PhonemiserError):
        espeak_phonemes("hola", "xx")


def test_phonemiser_is_thread_safe() -> None:
    """espeak-ng has global state; concurrent callers must still get their own language's phonemes."""
    results: dict[int, str] = {}

    def work(i: int) -> None:
        language, text = ("ko", "약 드세요.") if i % 2 else ("en", "Take it.")
        results[i] = espeak_phonemes(text, language)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {results[i] for i in range(1, 8, 2)} == {espeak_phonemes("약 드세요.", "ko")}
    assert {results[i] for i in range(0, 8, 2)} == {espeak_phonemes("Take it.", "en")}
    assert ESPEAK_LOCK.acquire(blocking=False)
    ESPEAK_LOCK.release()


@pytest.mark.parametrize(
    ("fixed", "kokoro"),
    [
        ("jˈɐk", "jak"),  # ɐ -> a, stress dropped
        ("tɕˈʌŋ", "ʨɔŋ"),  # Japanese affricate token, ʌ -> ɔ
        ("tʃʰˈukʰɐ", "ʨʰukʰa"),
        ("sˈohwɐdʑˌe", "sohwaʥe"),
        ("sˈiɡɐn", "ɕiɡan"),  # ㅅ before i is [ɕ]
        ("sˈejo", "sejo"),  # but not before e
    ],
)
def test_kokoro_symbol_mapping(fixed: str, kokoro: str) -> None:
    assert korean_phonemes_for_kokoro(fixed) == kokoro


def test_respelling() -> None:
    assert korean_respell("여덟 시") == "여덜 시"


@pytest.mark.parametrize(
    ("text", "respelled"),
    [
        ("혈압약 한 정", "혈압냑 한 정"),  # [혀람냑]: compound, first part ends in a consonant
        ("아침약을 드세요", "아침냑을 드세요"),
        ("고혈압약은", "고혈압냑은"),
        ("감기약", "감기약"),  # first part ends in a vowel: no [n]
        ("당뇨약", "당뇨약"),
        ("절약", "절약"),  # one-syllable Sino-Korean word, not a compound
        ("한약", "한약"),
        ("약 드세요", "약 드세요"),  # 약 on its own
    ],
)
def test_n_insertion_before_yak(text: str, respelled: str) -> None:
    assert korean_respell(text) == respelled


def test_n_insertion_reaches_the_phonemes() -> None:
    # 혈압약 -> [혀람냑]: inserted n, then nasal assimilation of the ㅂ coda
    assert "hjɔɾamnjak" in speech_phonemes("혈압약", "ko")
