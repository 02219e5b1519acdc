"""Hostile job text: control and invisible characters, bidi overrides, huge input, emoji,
mixed scripts. Refusals are 400 with a specific code and create no job; accepted texts
are queued exactly as normalised."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import pytest

from tests.audio_samples import wav_bytes
from voice_tts.models import Job

ENDPOINTS = ["/api/tts/jobs/", "/api/tts/generate/?wait=0"]


@pytest.fixture
def enrolled(alice_api: Any) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = alice_api.post("/api/tts/voices/", {"voice_file": SimpleUploadedFile("a.wav", wav_bytes(4.0))},
                              format="multipart")
    assert response.status_code == 201, response.content
    return alice_api


REFUSED = [
    ("약\x00드세요", "text_invalid_characters"),
    ("bell\x07", "text_invalid_characters"),
    ("\x1b[31m red \x1b[0m", "text_invalid_characters"),
    ("delete\x7f", "text_invalid_characters"),
    ("약 \u202egnp.exe", "text_invalid_characters"),  # RIGHT-TO-LEFT OVERRIDE
    ("\u2066isolate\u2069", "text_invalid_characters"),
    ("mark\u200f", "text_invalid_characters"),  # RIGHT-TO-LEFT MARK
    ("a\u061cb", "text_invalid_characters"),  # ARABIC LETTER MARK
    ("zero\u200bwidth", "text_invalid_characters"),  # ZERO WIDTH SPACE
    ("약\u200d드세요", "text_invalid_characters"),  # a joiner hidden inside a word
    ("\u200cnon-joiner", "text_invalid_characters"),
    ("\ufeffbom", "text_invalid_characters"),
    ("soft\u00adhyphen", "text_invalid_characters"),
    ("tag\U000e0041", "text_invalid_characters"),  # TAG LATIN CAPITAL LETTER A
    ("private\ue000use", "text_invalid_characters"),
    ("unassigned\U000e0fff", "text_invalid_characters"),
    ("\ud800lone surrogate", "text_invalid_characters"),
    ("약" * 10_000, "text_too_long"),
    ("a" * 501, "text_too_long"),
    ("💊💊💊", "text_unspeakable"),
    ("👨\u200d👩\u200d👧", "text_unspeakable"),
    ("?!… ---", "text_unspeakable"),
    ("", "text_empty"),
    (" \t\n\u3000\u00a0\u2028 ", "text_empty"),
]


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(("text", "code"), REFUSED, ids=[f"{i}-{c}" for i, (_, c) in enumerate(REFUSED)])
def test_hostile_text_is_a_clear_400(enrolled: Any, path: str, text: str, code: str) -> None:
    # json.dumps escapes everything (a lone surrogate too) as \uXXXX, as a hostile client would.
    response = enrolled.post(path, json.dumps({"text": text, "language": "ko"}), content_type="application/json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == code, body
    assert body["message"]
    assert Job.objects.count() == 0


def test_over_twenty_thousand_characters_is_refused_by_the_serializer(enrolled: Any) -> None:
    response = enrolled.post("/api/tts/jobs/", {"text": "a" * 25_000}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_input"
    assert Job.objects.count() == 0


ACCEPTED = [
    ("오후 3시 Tylenol 500mg 드세요", "오후 3시 Tylenol 500mg 드세요"),
    ("  약\t\n드실   시간입니다  ", "약 드실 시간입니다"),
    ("할머니 💊 약 드세요 👨\u200d👩\u200d👧", "할머니 💊 약 드세요 👨\u200d👩\u200d👧"),
    ("🏳️\u200d🌈 pride 1️⃣", "🏳️\u200d🌈 pride 1️⃣"),
    # Decomposed Hangul (as some keyboards send it) is composed: same text, same cache key.
    (unicodedata.normalize("NFD", "약 드세요"), "약 드세요"),
    ("Ｔｙｌｅｎｏｌ ５００", "Ｔｙｌｅｎｏｌ ５００"),
    ("é café 日本語 русский", "é café 日本語 русский"),
    ("약" * 500, "약" * 500),
    ("next\x85line", "next line"),  # NEL is a line break, collapsed like any whitespace
]


@pytest.mark.parametrize(("text", "stored"), ACCEPTED, ids=[str(i) for i in range(len(ACCEPTED))])
def test_mixed_scripts_and_emoji_with_words_are_accepted(enrolled: Any, text: str, stored: str) -> None:
    response = enrolled.post("/api/tts/jobs/", {"text": text, "language": "ko"}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["text"] == stored
    assert Job.objects.get().text == stored
