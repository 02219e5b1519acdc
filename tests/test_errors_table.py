"""One table maps a refusal's code to its HTTP status (`voice_tts/http/errors.py`).

Services raise `ServiceError(code, message)` with no status; every literal code raised in the source
must be in the table, and a code the table lacks answers 500 (a bug, not the client's mistake).
"""

from __future__ import annotations

import re
from pathlib import Path

from voice_tts.errors import ServiceError
from voice_tts.http.errors import ERROR_STATUSES, error_status

_RAISED = re.compile(r"ServiceError\(\s*\"([a-z_]+)\"")


def test_every_code_raised_in_the_source_has_a_status() -> None:
    root = Path(__file__).resolve().parent.parent / "voice_tts"
    raised = {code for path in root.rglob("*.py") for code in _RAISED.findall(path.read_text())}
    assert raised, "the pattern found no ServiceError at all"
    assert sorted(raised - ERROR_STATUSES.keys()) == []


def test_statuses_of_known_codes() -> None:
    assert error_status("not_found") == 404
    assert error_status("text_empty") == 400
    assert error_status("phrase_exists") == 409
    assert error_status("audio_missing") == 410
    assert error_status("throttled") == 429


def test_an_unknown_code_answers_500() -> None:
    # e.g. a worker's failure code raised again by /v1/audio/speech: the server's fault.
    assert error_status("engine_crashed") == 500


def test_a_service_error_carries_no_status() -> None:
    exc = ServiceError("not_found", "Not found.", field="id")
    assert (exc.code, exc.message, exc.details) == ("not_found", "Not found.", {"field": "id"})
    assert not hasattr(exc, "status")
