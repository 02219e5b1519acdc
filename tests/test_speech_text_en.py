"""English readings for reminder text."""

from __future__ import annotations

import pytest

from workers.speech_text import text_normalise_for_speech
from workers.speech_text.english import english_number, english_ordinal, english_year

READINGS = [
    ("Take 2 tablets at 8:30.", "Take two tablets at eight thirty."),
    ("8:00", "eight o'clock"),
    ("8:05 pm", "eight oh five P M"),
    ("9am", "nine A M"),
    ("Your next dose is at 9 pm.", "Your next dose is at nine P M."),
    ("1 mg", "one milligram"),
    ("500mg", "five hundred milligrams"),
    ("2.5 ml", "two point five milliliters"),
    ("1,250 IU", "one thousand two hundred fifty units"),
    ("37.5°C", "thirty-seven point five degrees Celsius"),
    ("1-2 tabs", "one to two tablets"),
    ("2025-03-05", "March fifth, twenty twenty-five"),
    ("the 1st and 22nd", "the first and twenty-second"),
    ("Dr. Kim & Mrs. Lee", "Doctor Kim and Missus Lee"),
    ("It's time to take your medicine.", "It's time to take your medicine."),
]


@pytest.mark.parametrize(("written", "spoken"), READINGS)
def test_english_reading(written: str, spoken: str) -> None:
    assert text_normalise_for_speech(written, "en") == spoken


@pytest.mark.parametrize(
    ("n", "words"),
    [(0, "zero"), (13, "thirteen"), (21, "twenty-one"), (100, "one hundred"), (105, "one hundred five"),
     (2500, "two thousand five hundred"), (1_000_000, "one million")],
)
def test_english_number(n: int, words: str) -> None:
    assert english_number(n) == words


@pytest.mark.parametrize(
    ("n", "words"),
    [(1, "first"), (2, "second"), (3, "third"), (12, "twelfth"), (20, "twentieth"), (31, "thirty-first")],
)
def test_english_ordinal(n: int, words: str) -> None:
    assert english_ordinal(n) == words


@pytest.mark.parametrize(
    ("n", "words"), [(1998, "nineteen ninety-eight"), (2005, "two thousand five"), (2025, "twenty twenty-five"),
                     (1905, "nineteen oh five"), (1900, "nineteen hundred")]
)
def test_english_year(n: int, words: str) -> None:
    assert english_year(n) == words
