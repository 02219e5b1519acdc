"""Sentence splitting for long inputs (workers/speech_text/sentences.py): pure code, no service."""

from __future__ import annotations

import pytest

from workers.speech_text.sentences import sentence_language, sentences_split


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("아침 약을 드세요. 물도 한 잔 드세요! 괜찮으세요?",
         ["아침 약을 드세요.", "물도 한 잔 드세요!", "괜찮으세요?"]),
        # A Korean final ending glued to the next word is still an end.
        ("약을 먹었다.그리고 잤어요.다음", ["약을 먹었다.", "그리고 잤어요.", "다음"]),
        ("저녁 7시입니다。 좋아요！ 네？", ["저녁 7시입니다。", "좋아요！", "네？"]),
        ("약 드세요… 네.", ["약 드세요…", "네."]),
        ("Take 3.5 mg at 8.30 today. Then rest.", ["Take 3.5 mg at 8.30 today.", "Then rest."]),
        ("Dr. Kim and Mrs. Lee agree, e.g. twice a day. Good.", ["Dr. Kim and Mrs. Lee agree, e.g. twice a day.",
                                                               "Good."]),
        ("At 8 a.m. take one. At 9 p.m. Then sleep.", ["At 8 a.m. take one.", "At 9 p.m.", "Then sleep."]),
        ("Wait... really?! Yes.", ["Wait...", "really?!", "Yes."]),
        ('"Take it." She said (twice.) Done', ['"Take it."', "She said (twice.)", "Done"]),
        ("1. Take the pills.\n2. Drink water", ["1. Take the pills.", "2. Drink water"]),
        ("첫 줄\n\n둘째 줄\r\n셋째 줄", ["첫 줄", "둘째 줄", "셋째 줄"]),
        ("  spaced   out\ttext.  ", ["spaced out text."]),
        # Punctuation-only pieces join the sentence before them (or after, at the start).
        ("Hello. !!! World.", ["Hello.!!!", "World."]),
        ("… 안녕하세요.", ["… 안녕하세요."]),
        ("…", []),
        ("", []),
        ("   \n  ", []),
    ],
)
def test_sentences_split(text: str, expected: list[str]) -> None:
    assert sentences_split(text, max_chars=500) == expected


def test_a_long_sentence_is_cut_at_commas_then_spaces_within_the_limit() -> None:
    clauses = ", ".join(f"clause number {n} of the long one" for n in range(40))
    pieces = sentences_split(clauses + ".", max_chars=100)
    assert len(pieces) > 5
    assert all(1 <= len(piece) <= 100 for piece in pieces)
    assert all(piece.endswith((",", ".")) for piece in pieces)  # cut after a comma, never mid-word
    assert " ".join(pieces) == clauses + "."

    words = " ".join(f"word{n}" for n in range(200))  # no comma at all: cut at spaces
    pieces = sentences_split(words, max_chars=50)
    assert all(len(piece) <= 50 for piece in pieces)
    assert " ".join(pieces) == words

    unbroken = "가" * 1200  # no comma, no space: hard cuts at the limit
    assert sentences_split(unbroken, max_chars=500) == ["가" * 500, "가" * 500, "가" * 200]


def test_every_piece_of_a_4096_character_input_fits_the_job_limit() -> None:
    text = ("오늘 저녁 8시 30분에 혈압약 1.5정을 드세요, 물 한 컵과 함께요. " * 120)[:4096]
    pieces = sentences_split(text, max_chars=500)
    assert all(1 <= len(piece) <= 500 for piece in pieces)
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")  # nothing lost, nothing added


def test_max_chars_must_be_positive() -> None:
    with pytest.raises(ValueError):
        sentences_split("hello", max_chars=0)


@pytest.mark.parametrize(("sentence", "language"), [("약 드세요.", "ko"), ("Take 2 pills.", "en"),
                                                    ("Take 2 알 pills.", "ko"), ("123", "en")])
def test_sentence_language(sentence: str, language: str) -> None:
    assert sentence_language(sentence) == language
