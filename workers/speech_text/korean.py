"""Korean numbers, times, dates and units, read the way a Korean speaker reads a reminder.

Korean has two numeral systems and the counter after a number decides which one is said:
native numerals for things counted one by one and for clock hours ("1정" -> "한 정",
"8시" -> "여덟 시"), Sino-Korean numerals for minutes, dates, measures and money ("30분" ->
"삼십 분", "500mg" -> "오백 밀리그램"). A TTS front end that reads "1정" as "일정"
("schedule") says something else entirely, so this runs before every engine.
"""

from __future__ import annotations

import re

_SINO_DIGITS = ["영", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구"]
_SINO_SMALL_UNITS = [(1000, "천"), (100, "백"), (10, "십")]
_SINO_BIG_UNITS = [(10**12, "조"), (10**8, "억"), (10**4, "만")]

_NATIVE_ONES = ["", "하나", "둘", "셋", "넷", "다섯", "여섯", "일곱", "여덟", "아홉"]
_NATIVE_ONES_ATTR = ["", "한", "두", "세", "네", "다섯", "여섯", "일곱", "여덟", "아홉"]
_NATIVE_TENS = ["", "열", "스물", "서른", "마흔", "쉰", "예순", "일흔", "여든", "아흔"]

# Counters read with native numerals (below 100; from 100 on everybody switches to Sino).
# Longest first so that "시간" wins over "시" and "숟가락" is not cut.
NATIVE_COUNTERS = sorted(
    [
        "시간", "시", "정", "알", "개", "번째", "번", "봉지", "봉", "포", "캡슐", "병", "컵", "잔", "방울",
        "스푼", "숟가락", "장", "명", "가지", "달", "살", "마리", "통", "차례", "군데", "쪽",
    ],
    key=len,
    reverse=True,
)
# Counters and units read with Sino-Korean numerals (listed so that "1일" is not mistaken).
SINO_COUNTERS = sorted(
    ["분", "초", "일분", "일", "월", "년", "주", "주일", "개월", "회", "층", "호", "원", "세", "도", "단계", "cc"],
    key=len,
    reverse=True,
)
# Units written in Latin letters or symbols; the reading is Sino + the Korean unit name.
UNITS_KO: dict[str, str] = {
    "mg": "밀리그램",
    "mcg": "마이크로그램",
    "μg": "마이크로그램",
    "µg": "마이크로그램",
    "kg": "킬로그램",
    "g": "그램",
    "ml": "밀리리터",
    "mL": "밀리리터",
    "cc": "시시",
    "L": "리터",
    "l": "리터",
    "mmHg": "밀리미터 수은주",
    "mm": "밀리미터",
    "cm": "센티미터",
    "km": "킬로미터",
    "m": "미터",
    "IU": "아이유",
    "%": "퍼센트",
    "℃": "도",
    "°C": "도",
    "°": "도",
}

# 1~2정 -> 한두 정: Korean has fused native forms for "one or two", "two or three"...
_NATIVE_PAIRS = {1: "한두", 2: "두세", 3: "서너", 4: "네다섯", 5: "대여섯", 6: "예닐곱", 7: "일고여덟", 8: "여덟아홉"}


def sino_number(n: int) -> str:
    """Sino-Korean reading: 0 영, 10 십 (not 일십), 15 십오, 1000 천, 10000 만, 2025 이천이십오."""
    if n < 0:
        return "마이너스 " + sino_number(-n)
    if n == 0:
        return _SINO_DIGITS[0]
    out = []
    for big, name in _SINO_BIG_UNITS:
        if n >= big:
            head, n = divmod(n, big)
            # 10000 is 만, not 일만; 1억 keeps its 일.
            out.append(("" if head == 1 and big == 10**4 else _sino_below_10000(head)) + name)
    if n:
        out.append(_sino_below_10000(n))
    return "".join(out)


def _sino_below_10000(n: int) -> str:
    out = []
    for unit, name in _SINO_SMALL_UNITS:
        if n >= unit:
            head, n = divmod(n, unit)
            out.append(("" if head == 1 else _SINO_DIGITS[head]) + name)
    if n:
        out.append(_SINO_DIGITS[n])
    return "".join(out)


def native_number(n: int, attributive: bool = True) -> str:
    """Native Korean reading for 1..99 (한/두/세/네, 스무 before a counter); Sino from 100 on or for 0."""
    if n <= 0 or n >= 100:
        return sino_number(n)
    tens, ones = divmod(n, 10)
    if ones == 0:
        if tens == 2 and attributive:
            return "스무"
        return _NATIVE_TENS[tens]
    ones_word = _NATIVE_ONES_ATTR[ones] if attributive else _NATIVE_ONES[ones]
    return _NATIVE_TENS[tens] + ones_word


def _decimal_reading(number: str) -> str:
    whole, _, frac = number.partition(".")
    return sino_number(int(whole)) + " 점 " + "".join(_SINO_DIGITS[int(d)] for d in frac)


def _month_reading(n: int) -> str:
    # 6월 and 10월 drop a sound: 유월, 시월.
    return {6: "유", 10: "시"}.get(n, sino_number(n))


def _counter_reading(number: str, counter: str) -> str:
    if "." in number:
        return f"{_decimal_reading(number)} {counter}"
    n = int(number)
    if counter == "번째":
        # 1번째 -> 첫 번째; the others are native.
        return f"{'첫' if n == 1 else native_number(n)} 번째"
    if counter == "월":
        return f"{_month_reading(n)}월"
    if counter in NATIVE_COUNTERS:
        return f"{native_number(n)} {counter}"
    return f"{sino_number(n)} {counter}"


def _clock_reading(hour: int, minute: int, meridiem: str | None) -> str:
    prefix = ""
    if meridiem is None and 13 <= hour <= 23:
        # A listener expects 오후 두 시, not 십사 시, in a spoken reminder.
        prefix, hour = "오후 ", hour - 12
    spoken = prefix + (f"{native_number(hour)} 시" if 1 <= hour <= 12 else f"{sino_number(hour)} 시")
    if minute:
        spoken += f" {sino_number(minute)} 분"
    return spoken


_NUM = r"\d+(?:\.\d+)?"
# One alternation, longest first across both lists: "개월" must win over "개", "주일" over "주".
_COUNTER_ALT = "|".join(re.escape(c) for c in sorted(NATIVE_COUNTERS + SINO_COUNTERS, key=len, reverse=True))
_UNIT_ALT = "|".join(re.escape(u) for u in sorted(UNITS_KO, key=len, reverse=True))

_DATE_RE = re.compile(r"(?<!\d)(\d{4})[-./](\d{1,2})[-./](\d{1,2})(?!\d)")
_CLOCK_RE = re.compile(r"(?:(오전|오후|아침|저녁|밤|낮|새벽)\s*)?(?<!\d)(\d{1,2}):(\d{2})(?!\d)")
_RANGE_RE = re.compile(rf"(?<![\d.])(\d+)\s*[~∼\-–]\s*(\d+)\s*({_COUNTER_ALT})")
_UNIT_RE = re.compile(rf"(?<![\d.])({_NUM})\s*({_UNIT_ALT})(?![A-Za-z])")
_COUNTER_RE = re.compile(rf"(?<![\d.])({_NUM})\s*({_COUNTER_ALT})")
_BARE_RE = re.compile(rf"(?<![\d.])({_NUM})")
_GROUPED_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def _range(match: re.Match[str]) -> str:
    low, high, counter = int(match.group(1)), int(match.group(2)), match.group(3)
    if counter in NATIVE_COUNTERS and counter != "번째" and high == low + 1 and low in _NATIVE_PAIRS:
        return f"{_NATIVE_PAIRS[low]} {counter}"
    return f"{_counter_reading(str(low), counter)}에서 {_counter_reading(str(high), counter)}"


def _unit(match: re.Match[str]) -> str:
    number, unit = match.group(1), match.group(2)
    reading = _decimal_reading(number) if "." in number else sino_number(int(number))
    return f"{reading} {UNITS_KO[unit]}"


def _bare(match: re.Match[str]) -> str:
    number = match.group(1)
    return _decimal_reading(number) if "." in number else sino_number(int(number))


def korean_normalise(text: str) -> str:
    """Spell out numbers, times, dates, ranges and units in Korean text."""
    text = _GROUPED_RE.sub("", text)  # 1,000 -> 1000
    text = _DATE_RE.sub(
        lambda m: f"{sino_number(int(m.group(1)))} 년 {_month_reading(int(m.group(2)))}월 "
        f"{sino_number(int(m.group(3)))} 일",
        text,
    )
    text = _CLOCK_RE.sub(
        lambda m: (f"{m.group(1)} " if m.group(1) else "")
        + _clock_reading(int(m.group(2)), int(m.group(3)), m.group(1)),
        text,
    )
    text = _RANGE_RE.sub(_range, text)
    text = _UNIT_RE.sub(_unit, text)
    text = _COUNTER_RE.sub(lambda m: _counter_reading(m.group(1), m.group(2)), text)
    text = _BARE_RE.sub(_bare, text)
    text = text.replace("~", "에서 ").replace("∼", "에서 ")
    text = text.replace("&", " 그리고 ").replace("+", " 더하기 ").replace("/", " ")
    return re.sub(r"[ \t]+", " ", text).strip()
