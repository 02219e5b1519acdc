"""Security events: one logger (`voice_tts.security`), one JSON line per event on stderr.

Events: `login_locked` (a lockout starts), `token_created`, `token_migrated`, `token_revoked`,
`device_created`, `device_revoked`, `voice_deleted`. Ship stderr to the log store of the
deployment (`docker compose logs web worker-*`); the fields are plain JSON for grep and jq.
"""

from __future__ import annotations

import json
import logging
from typing import Any

_logger = logging.getLogger("voice_tts.security")


def security_event(event: str, **fields: Any) -> None:
    level = logging.WARNING if event == "login_locked" else logging.INFO
    _logger.log(level, event, extra={"event": event, "fields": fields})


class EventFormatter(logging.Formatter):
    """`{"time", "level", "event", ...fields}` as one line."""

    def format(self, record: logging.LogRecord) -> str:
        body = {"time": self.formatTime(record), "level": record.levelname,
                "event": getattr(record, "event", record.getMessage()), **getattr(record, "fields", {})}
        return json.dumps(body, ensure_ascii=False, default=str)
