"""The one exception type services raise for a request they refuse.

A refusal is a code and a message, no HTTP: the HTTP layer maps the code to a status through one
table (`voice_tts/http/errors.py`'s `ERROR_STATUSES`), and tasks store `code`/`message` on the
job row. `details` carries data the caller may show (never a status).
`details["retry_after"]` (seconds), when given, is sent as `Retry-After` (a refusal that passes
with time, such as too many unfinished jobs).
"""

from typing import Any


class ServiceError(Exception):
    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
