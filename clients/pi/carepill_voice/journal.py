"""What `run` must remember across restarts and power cuts, under cache_dir:

    played.json       the (phrase, date, time) keys already handled, and how; a repeat of an
                      unconfirmed reminder is the same key + ":r<k>" (k = 1, 2, ...)
    reports/*.json    one file per play report the server has not stored yet
    confirmed/*.json  one file per confirmed reminder (phrase, date, time): written by
                      `carepill-voice confirm` or the button, read by `run` before every repeat
    confirmations/*.json  one file per confirmation the server has not stored yet
    install_id        a random id made once: two Pis of one family never share a report key
    run.pid           the running `run`'s process id (confirm wakes it with SIGUSR1)

played.json has ONE writer, `run`: `confirm` (another process) only reads it and writes its
own files, one per confirmed reminder, so no update of either is ever lost.

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
# replaces it once the play is over; "missed" marks an occurrence found too late; "skipped"
# a repeat whose time had passed before the play it repeats had started (a late start).
PLAYING, MISSED, SKIPPED = "playing", "missed", "skipped"
# The states in which something was (or is being) heard: what a confirmation can answer.
HEARD = ("played", "fallback", PLAYING)

# A played-log key: "<phrase>:<YYYY-MM-DD>:<HH:MM>", a repeat's with ":r<k>" after it.
_PLAYED_KEY = re.compile(r"^(\d+):(\d{4}-\d{2}-\d{2}):(\d{2}:\d{2})(?::r([1-9]\d*))?$")


def parse_played_key(key: str) -> tuple[int, dt.date, str, int] | None:
    """(phrase id, local date, "HH:MM", repeat number: 0 for the first play) of a played-log key."""
    match = _PLAYED_KEY.match(key)
    if match is None:
        return None
    try:
        day = dt.date.fromisoformat(match.group(2))
    except ValueError:
        return None
    return int(match.group(1)), day, match.group(3), int(match.group(4) or 0)


def repeat_key(key: str, number: int) -> str:
    """The played-log (or report) key of the number-th repeat of `key`."""
    return f"{key}:r{number}"


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
    # "<phrase>:<YYYY-MM-DD>:<HH:MM>[:r<k>]"; an entry that does not parse is kept (never guess).
    parsed = parse_played_key(key)
    return parsed[1] if parsed else None


@dataclass(frozen=True)
class Report:
    """One play, as `POST /api/tts/phrases/<phrase_id>/plays/` takes it."""

    phrase_id: int
    played_at: str  # ISO-8601 with its UTC offset
    outcome: str  # "played" | "fallback" | "failed"
    source: str  # "cache" | "server" | "fallback"
    key: str  # install_id:phrase:date:time[:r<k>], unique per Pi, occurrence and play
    # The occurrence the play belongs to (its local date "YYYY-MM-DD" and time "HH:MM");
    # empty in reports journaled by an older client: then left out of the body.
    scheduled_date: str = ""
    scheduled_time: str = ""

    def body(self) -> dict[str, str]:
        body = {"played_at": self.played_at, "outcome": self.outcome, "source": self.source, "key": self.key}
        if self.scheduled_date and self.scheduled_time:
            body.update(scheduled_date=self.scheduled_date, scheduled_time=self.scheduled_time)
        return body


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
                    source=str(raw["source"]), key=str(raw["key"]), scheduled_date=str(raw.get("scheduled_date") or ""),
                    scheduled_time=str(raw.get("scheduled_time") or ""))
    if not _KEY.match(report.key):
        raise ValueError(f"bad key {report.key!r}")
    return report


@dataclass(frozen=True)
class Confirmation:
    """One confirmed reminder, as `POST /api/tts/doses/confirmations/` takes it."""

    phrase_id: int
    scheduled_date: str  # the occurrence's local date, "YYYY-MM-DD"
    scheduled_time: str  # "HH:MM"
    confirmed_at: str  # ISO-8601 with its UTC offset
    key: str  # install_id:phrase:date:time:confirm

    def body(self) -> dict[str, object]:
        return asdict(self)


def confirmation_key(install: str, played_key: str) -> str:
    return f"{install}:{played_key}:confirm"


class ConfirmationJournal:
    """cache_dir/confirmations/: one JSON file per confirmation waiting for the server.

    `confirm` adds (and may send and remove) files; `run` sends and removes them. Two senders of
    one file at once send it twice at worst: the server stores a key once (200 on a resend)."""

    def __init__(self, root: Path) -> None:
        self.folder = Path(root) / "confirmations"

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"not a confirmation key: {key!r}")
        return self.folder / (key.replace(":", "_") + ".json")

    def add(self, confirmation: Confirmation) -> Path:
        path = self._path(confirmation.key)
        atomic_write(path, json.dumps(asdict(confirmation), sort_keys=True).encode("utf-8"))
        return path

    def pending(self) -> list[Confirmation]:
        """The confirmations not yet stored by the server, oldest first."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                confirmation = Confirmation(phrase_id=int(raw["phrase_id"]), scheduled_date=str(raw["scheduled_date"]),
                                            scheduled_time=str(raw["scheduled_time"]),
                                            confirmed_at=str(raw["confirmed_at"]), key=str(raw["key"]))
                if not _KEY.match(confirmation.key):
                    raise ValueError(f"bad key {confirmation.key!r}")
            except FileNotFoundError:  # sent and removed by the other process meanwhile
                continue
            except (OSError, ValueError, TypeError, KeyError) as exc:
                logger.error("confirmation %s unreadable, removed: %s", path.name, exc)
                path.unlink(missing_ok=True)
                continue
            found.append(confirmation)
        found.sort(key=lambda c: (c.confirmed_at, c.key))
        return found

    def remove(self, confirmation: Confirmation) -> None:
        self._path(confirmation.key).unlink(missing_ok=True)


class ConfirmedMarks:
    """cache_dir/confirmed/<phrase>_<date>_<HH_MM>.json: the reminders confirmed on this Pi.

    A file per reminder, written atomically and never rewritten: `confirm` (or the button in
    `run`) creates it, `run` reads it before every repeat and prunes old ones. No repeat of a
    confirmed reminder ever plays, after a restart too."""

    def __init__(self, root: Path) -> None:
        self.folder = Path(root) / "confirmed"

    def _path(self, played_key: str) -> Path:
        if parse_played_key(played_key) is None:
            raise ValueError(f"not a played-log key: {played_key!r}")
        return self.folder / (played_key.replace(":", "_") + ".json")

    def get(self, played_key: str) -> dict[str, str] | None:
        try:
            raw = json.loads(self._path(played_key).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            # It was written, so it was confirmed: a damaged file still stops the repeats.
            logger.error("confirmation mark of %s unreadable (%s): taken as confirmed", played_key, exc)
            return {}
        return raw if isinstance(raw, dict) else {}

    def __contains__(self, played_key: str) -> bool:
        return self.get(played_key) is not None

    def mark(self, played_key: str, at: dt.datetime, by: str) -> None:
        atomic_write(self._path(played_key), json.dumps(
            {"key": played_key, "at": at.astimezone(dt.timezone.utc).isoformat(), "by": by}).encode("utf-8"))

    def prune(self, today: dt.date, keep_days: int = KEEP_DAYS) -> int:
        if not self.folder.is_dir():
            return 0
        oldest = today - dt.timedelta(days=keep_days)
        removed = 0
        for path in self.folder.glob("*.json"):
            stem = path.stem
            parts = stem.split("_")  # phrase_YYYY-MM-DD_HH_MM
            try:
                day = dt.date.fromisoformat(parts[1]) if len(parts) == 4 else None
            except ValueError:
                day = None
            if day is not None and day < oldest:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


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
