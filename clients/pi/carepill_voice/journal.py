"""What `run` must remember across restarts and power cuts, under cache_dir:

    played.json       the (phrase, date, time) keys already handled, and how
    reports/*.json    one file per play report the server has not stored yet
    install_id        a random id made once: two Pis of one family never share a report key

Every write goes through cache.atomic_write (temp file in the same folder, fsync,
os.replace): a power cut leaves the old file or the new one.

**A key is written to the played log BEFORE the player starts.** A crash or power cut in
the middle of a play therefore never replays that reminder after the restart: a
medication reminder said twice can mean a double dose, while one cut short has at least
been heard in part (and the log says so). The entry stays "playing" and the restart logs
it as interrupted.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from carepill_voice.cache import atomic_write
from carepill_voice.schedule import Occurrence

logger = logging.getLogger("carepill_voice")

# Keys are kept this many local days after their date, so a clock that jumps back by less
# than that (a Pi without a battery clock boots at its last shutdown time) never replays.
KEEP_DAYS = 7

# The server's rule for a report key.
_KEY = re.compile(r"^[A-Za-z0-9:._-]{1,200}$")
_INSTALL_ID = re.compile(r"^[0-9a-f]{16,64}$")

# The played log's states: "playing" is written before the player starts; the outcome
# replaces it once the play is over; "missed" marks an occurrence found too late.
PLAYING, MISSED = "playing", "missed"


class PlayedLog:
    """cache_dir/played.json: {key: {"state": ..., "at": ISO-8601 UTC}}."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / "played.json"
        self._entries = self._load()

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            # Atomic writes make this unlikely; if it happens, only the catch-up window
            # (minutes) can replay, so start afresh rather than stop speaking reminders.
            logger.error("played log %s unreadable, starting a new one: %s", self.path, exc)
            return {}
        if not isinstance(raw, dict):
            logger.error("played log %s is not a JSON object, starting a new one", self.path)
            return {}
        return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, dict)}

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> dict[str, str] | None:
        return self._entries.get(key)

    def keys(self) -> list[str]:
        return list(self._entries)

    def mark(self, key: str, state: str, at: dt.datetime) -> None:
        """Record (and fsync) the key's state before returning."""
        self._entries[key] = {"state": state, "at": at.astimezone(dt.timezone.utc).isoformat()}
        self._save()

    def prune(self, today: dt.date, keep_days: int = KEEP_DAYS) -> int:
        """Drop keys whose local date is more than keep_days before `today`."""
        oldest = today - dt.timedelta(days=keep_days)
        stale = [key for key in self._entries if (_key_date(key) or oldest) < oldest]
        for key in stale:
            del self._entries[key]
        if stale:
            self._save()
        return len(stale)

    def _save(self) -> None:
        atomic_write(self.path, json.dumps(self._entries, indent=0, sort_keys=True).encode("utf-8"))


def _key_date(key: str) -> dt.date | None:
    # "<phrase>:<YYYY-MM-DD>:<HH:MM>"; an entry that does not parse is kept (never guess).
    parts = key.split(":")
    try:
        return dt.date.fromisoformat(parts[1]) if len(parts) == 4 else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Report:
    """One play, as `POST /api/tts/phrases/<phrase_id>/plays/` takes it."""

    phrase_id: int
    played_at: str  # ISO-8601 with its UTC offset
    outcome: str  # "played" | "fallback" | "failed"
    source: str  # "cache" | "server" | "fallback"
    key: str  # install_id:phrase:date:time, unique per Pi and occurrence

    def body(self) -> dict[str, str]:
        return {"played_at": self.played_at, "outcome": self.outcome, "source": self.source, "key": self.key}


def report_key(install: str, occurrence: Occurrence) -> str:
    return f"{install}:{occurrence.key}"


class ReportJournal:
    """cache_dir/reports/: one JSON file per report waiting for the server."""

    def __init__(self, root: Path) -> None:
        self.folder = Path(root) / "reports"

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"not a report key: {key!r}")
        return self.folder / (key.replace(":", "_") + ".json")

    def add(self, report: Report) -> Path:
        """Persist the report (fsynced); the same key again replaces the same file."""
        path = self._path(report.key)
        atomic_write(path, json.dumps(asdict(report), sort_keys=True).encode("utf-8"))
        return path

    def pending(self) -> list[Report]:
        """The reports not yet stored by the server, oldest play first."""
        if not self.folder.is_dir():
            return []
        reports = []
        for path in sorted(self.folder.glob("*.json")):  # a temp file (.tmp-*) is never a report
            try:
                reports.append(_report_from(json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, TypeError, KeyError) as exc:
                logger.error("report %s unreadable, removed: %s", path.name, exc)
                path.unlink(missing_ok=True)
        reports.sort(key=lambda r: (r.played_at, r.key))
        return reports

    def remove(self, report: Report) -> None:
        self._path(report.key).unlink(missing_ok=True)


def _report_from(raw: Any) -> Report:
    report = Report(phrase_id=int(raw["phrase_id"]), played_at=str(raw["played_at"]), outcome=str(raw["outcome"]),
                    source=str(raw["source"]), key=str(raw["key"]))
    if not _KEY.match(report.key):
        raise ValueError(f"bad key {report.key!r}")
    return report


def install_id(root: Path) -> str:
    """This installation's id: made once (random), then read back from cache_dir/install_id."""
    path = Path(root) / "install_id"
    try:
        existing = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        existing = ""
    except (OSError, ValueError) as exc:
        logger.error("install id unreadable, making a new one: %s", exc)
        existing = ""
    if _INSTALL_ID.match(existing):
        return existing
    if existing:
        logger.error("install id %r is malformed, making a new one", existing[:80])
    made = secrets.token_hex(8)
    atomic_write(path, (made + "\n").encode("ascii"))
    return made
