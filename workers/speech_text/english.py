"""English numbers, clock times, dates and medical units spelled out for speech.

espeak-ng reads many digits itself, but inconsistently ("8:30" becomes "eight: thirty",
"500mg" is read letter by letter) and other engines read none: we spell everything out.
"""

from __future__ import annotations

import re

_ONES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = [(10**9, "billion"), (10**6, "million"), (1000, "thousand")]
_ORDINAL_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                      "nine": "ninth", "twelve": "twelfth"}
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]

# unit -> (singular, plural)
UNITS_EN: dict[str, tuple[str, str]] = {
    "mg": ("milligram", "milligrams"),
    "mcg": ("microgram", "micrograms"),
    "μg": ("microgram", "micrograms"),
    "µg": ("microgram", "micrograms"),
    "kg": ("kilogram", "kilograms"),
    "g": ("gram", "grams"),
    "ml": ("milliliter", "milliliters"),
    "mL": ("milliliter", "milliliters"),
    "cc": ("C C", "C C"),
    "L": ("liter", "liters"),
    "mmHg": ("millimeter of mercury", "millimeters of mercury"),
    "mm": ("millimeter", "millimeters"),
    "cm": ("centimeter", "centimeters"),
    "km": ("kilometer", "kilometers"),
    "IU": ("unit", "units"),
    "%": ("percent", "percent"),
    "°C": ("degree Celsius", "degrees Celsius"),
    "℃": ("degree Celsius", "degrees Celsius"),
    "°F": ("degree Fahrenheit", "degrees Fahrenheit"),
}


def english_number(n: int) -> str:
    """Cardinal: 0 zero, 21 twenty-one, 105 one hundred five, 2500 two thousand five hundred."""
    if n < 0:
        return "minus " + english_number(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {english_number(rest)}" if rest else "")
    for scale, name in _SCALES:
        if n >= scale:
            head, rest = divmod(n, scale)
            return f"{english_number(head)} {name}" + (f" {english_number(rest)}" if rest else "")
    raise AssertionError("unreachable")


def english_ordinal(n: int) -> str:
    words = english_number(n)
    head, sep, last = words.rpartition("-") if "-" in words.split(" ")[-1] else words.rpartition(" ")
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def english_year(n: int) -> str:
    # Years are said in pairs: 1998 nineteen ninety-eight, 2025 twenty twenty-five, 2005 two thousand five.
    if 2000 <= n < 2010 or n % 1000 == 0 or not 1100 <= n < 2100:
        return english_number(n)
    high, low = divmod(n, 100)
    if low == 0:
        return f"{english_number(high)} hundred"
    return f"{english_number(high)} {'oh ' + _ONES[low] if low < 10 else english_number(low)}"


def _decimal(number: str) -> str:
    whole, _, frac = number.partition(".")
    reading = english_number(int(whole))
    return reading + (" point " + " ".join(_ONES[int(d)] for d in frac) if frac else "")


def _clock(hour: int, minute: int) -> str:
    if minute == 0:
        return f"{english_number(hour)} o'clock"
    if minute < 10:
        return f"{english_number(hour)} oh {_ONES[minute]}"
    return f"{english_number(hour)} {english_number(minute)}"


_NUM = r"\d+(?:\.\d+)?"
_UNIT_ALT = "|".join(re.escape(u) for u in sorted(UNITS_EN, key=len, reverse=True))
_GROUPED_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_DATE_RE = re.compile(r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")
# A trailing "." after "pm" is kept: it may be the sentence's full stop.
_CLOCK_RE = re.compile(r"(?<!\d)(\d{1,2}):(\d{2})(?!\d)(\s*([AaPp])\.?[Mm](?![A-Za-z]))?")
_HOUR_MERIDIEM_RE = re.compile(r"(?<![\d:])(\d{1,2})\s*([AaPp])\.?[Mm](?![A-Za-z])")
_ORDINAL_RE = re.compile(r"(?<!\d)(\d+)(st|nd|rd|th)\b")
_RANGE_RE = re.compile(r"(?<![\d.])(\d+)\s*[-–~]\s*(\d+)(?![\d.])")
_UNIT_RE = re.compile(rf"(?<![\d.])({_NUM})\s*({_UNIT_ALT})(?![A-Za-z])")
_BARE_RE = re.compile(rf"(?<![\d.])({_NUM})")
_ABBREVIATIONS = [
    (re.compile(r"\bDr\."), "Doctor"),
    (re.compile(r"\bMr\."), "Mister"),
    (re.compile(r"\bMrs\."), "Missus"),
    (re.compile(r"\bMs\."), "Miz"),
    (re.compile(r"\btabs?\b"), "tablets"),
    (re.compile(r"&"), " and "),
]


def _unit(match: re.Match[str]) -> str:
    number, unit = match.group(1), match.group(2)
    singular, plural = UNITS_EN[unit]
    return f"{_decimal(number)} {singular if number == '1' else plural}"


def _clock_match(match: re.Match[str]) -> str:
    spoken = _clock(int(match.group(1)), int(match.group(2)))
    if match.group(4):
        spoken = spoken.replace(" o'clock", "") + f" {match.group(4).upper()} M"
    return spoken


def english_normalise(text: str) -> str:
    """Spell out numbers, clock times, ISO dates, ordinals, ranges and units in English text."""
    for pattern, repl in _ABBREVIATIONS:
        text = pattern.sub(repl, text)
    text = _GROUPED_RE.sub("", text)
    text = _DATE_RE.sub(
        lambda m: f"{_MONTHS[int(m.group(2)) - 1]} {english_ordinal(int(m.group(3)))}, {english_year(int(m.group(1)))}"
        if 1 <= int(m.group(2)) <= 12
        else m.group(0),
        text,
    )
    text = _CLOCK_RE.sub(_clock_match, text)
    text = _HOUR_MERIDIEM_RE.sub(lambda m: f"{english_number(int(m.group(1)))} {m.group(2).upper()} M", text)
    text = _ORDINAL_RE.sub(lambda m: english_ordinal(int(m.group(1))), text)
    text = _RANGE_RE.sub(lambda m: f"{english_number(int(m.group(1)))} to {english_number(int(m.group(2)))}", text)
    text = _UNIT_RE.sub(_unit, text)
    text = _BARE_RE.sub(lambda m: _decimal(m.group(1)), text)
    return re.sub(r"[ \t]+", " ", text).strip()
