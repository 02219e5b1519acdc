"""Korean readings: each row is what a Korean speaker says for the written reminder."""

from __future__ import annotations

import pytest

from workers.speech_text import text_normalise_for_speech
from workers.speech_text.korean import native_number, sino_number

READINGS = [
    # native numerals with counters of things and clock hours
    ("1정", "한 정"),
    ("2알", "두 알"),
    ("3개", "세 개"),
    ("4포", "네 포"),
    ("20알", "스무 알"),
    ("21정", "스물한 정"),
    ("하루 3번", "하루 세 번"),
    ("3시간마다", "세 시간마다"),
    ("1번째", "첫 번째"),
    ("2번째", "두 번째"),
    ("물 1컵", "물 한 컵"),
    # from 100 on, counted things switch to Sino-Korean
    ("100개", "백 개"),
    # clock times: native hour, Sino minutes
    ("8시 30분", "여덟 시 삼십 분"),
    ("12시", "열두 시"),
    ("오전 7:05", "오전 일곱 시 오 분"),
    ("8:00", "여덟 시"),
    ("13:30에", "오후 한 시 삼십 분에"),
    ("오후 2시에 혈압약 1정", "오후 두 시에 혈압약 한 정"),
    # ranges
    ("1~2정씩", "한두 정씩"),
    ("3~4알", "서너 알"),
    ("3~5일", "삼 일에서 오 일"),
    # Sino-Korean counters: minutes, days, months, years, measures, money
    ("30분", "삼십 분"),
    ("15일", "십오 일"),
    ("12개월", "십이 개월"),
    ("2주일", "이 주일"),
    ("1회", "일 회"),
    ("45세", "사십오 세"),
    ("1,000원", "천 원"),
    ("10000원", "만 원"),
    ("2025년", "이천이십오 년"),
    # months 6 and 10 lose a sound
    ("6월 10일", "유월 십 일"),
    ("10월 1일", "시월 일 일"),
    ("3월 15일", "삼월 십오 일"),
    # dates
    ("2025-03-05", "이천이십오 년 삼월 오 일"),
    ("2025.10.09", "이천이십오 년 시월 구 일"),
    # units and symbols
    ("500mg", "오백 밀리그램"),
    ("아스피린 100mg 1정", "아스피린 백 밀리그램 한 정"),
    ("시럽 5ml", "시럽 오 밀리리터"),
    ("2.5ml", "이 점 오 밀리리터"),
    ("5㎖", "오 밀리리터"),
    ("체온 37.5℃", "체온 삼십칠 점 오 도"),
    ("50%", "오십 퍼센트"),
    ("혈압 120mmHg", "혈압 백이십 밀리미터 수은주"),
    # bare numbers are Sino-Korean
    ("101호", "백일 호"),
    ("7", "칠"),
    # text without numbers is untouched
    ("약 드실 시간입니다.", "약 드실 시간입니다."),
]


@pytest.mark.parametrize(("written", "spoken"), READINGS)
def test_korean_reading(written: str, spoken: str) -> None:
    assert text_normalise_for_speech(written, "ko") == spoken


@pytest.mark.parametrize(
    ("n", "sino"),
    [(0, "영"), (1, "일"), (10, "십"), (11, "십일"), (100, "백"), (110, "백십"), (1000, "천"), (2025, "이천이십오"),
     (10000, "만"), (12345, "만이천삼백사십오"), (100000000, "일억")],
)
def test_sino_number(n: int, sino: str) -> None:
    assert sino_number(n) == sino


@pytest.mark.parametrize(
    ("n", "native"),
    [(1, "한"), (2, "두"), (3, "세"), (4, "네"), (5, "다섯"), (10, "열"), (11, "열한"), (20, "스무"), (22, "스물두"),
     (99, "아흔아홉"), (100, "백")],
)
def test_native_number_attributive(n: int, native: str) -> None:
    assert native_number(n) == native


def test_native_number_counting_forms() -> None:
    assert native_number(1, attributive=False) == "하나"
    assert native_number(20, attributive=False) == "스물"


def test_decomposed_hangul_is_recomposed() -> None:
    import unicodedata

    decomposed = unicodedata.normalize("NFD", "약 1정")
    assert text_normalise_for_speech(decomposed, "ko") == "약 한 정"


def test_unknown_language_only_cleans_whitespace() -> None:
    assert text_normalise_for_speech("  Nehmen  Sie 2 Tabletten ", "de") == "Nehmen Sie 2 Tabletten"
