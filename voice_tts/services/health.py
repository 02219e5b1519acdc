"""The service's health as the workers report it through Redis (GET /api/tts/health/)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from voice_tts.worker import status


@dataclass(frozen=True)
class Health:
    """`reachable`: Redis answered; `workers`: the live workers of the engine, as they report
    themselves (heartbeats), `ready` ones first in the order Redis gave them."""

    reachable: bool
    workers: list[dict[str, Any]]

    @property
    def ready(self) -> list[dict[str, Any]]:
        return [w for w in self.workers if w.get("ready")]


def health_get(*, engine: str) -> Health:
    """The live workers of `engine`; unreachable (no workers) when Redis does not answer."""
    try:
        workers = [w for w in status.workers_live() if w.get("engine") == engine]
    except redis.RedisError:
        return Health(reachable=False, workers=[])
    return Health(reachable=True, workers=workers)
