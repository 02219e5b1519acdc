"""Drop-in replacement for the seed Pi script's `text_to_speech_django()`."""

from __future__ import annotations

import logging

from carepill_voice.config import Config, load_config

logger = logging.getLogger("carepill_voice")


def text_to_speech_django(text: str, language: str = "ko", config: Config | None = None) -> bool:
    """Speak `text` in the family voice; cached clip or local voice when offline.

    Returns True if anything was spoken. Never raises: a reminder loop must survive.
    """
    from carepill_voice.client import Client, Outcome

    try:
        outcome = Client(config or load_config()).say(text, language)
    except Exception:  # noqa: BLE001 - the caller is a reminder loop that must keep running
        logger.exception("text_to_speech_django failed")
        return False
    return outcome in (Outcome.OK, Outcome.DEGRADED)
