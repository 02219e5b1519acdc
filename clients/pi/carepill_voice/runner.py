"""`carepill-voice run`: speak every reminder of the cached bundle on time, online or not.

The loop, at each wake:

1. a tick over the cached bundle (below), before anything that talks to the server;
2. a sync when it is time (at start, every sync_minutes, sooner after a failed sync, after
   SIGHUP, and when the clock went back past the last sync), then waiting reports are
   sent, then another tick (the new bundle, and the time the sync took).

A tick: for every occurrence of the last LOOKBACK that is due (due <= now):
   - in the played log: skip (logged once per key: "already played");
   - older than catch_up_minutes: log it as missed and mark it, so it is never considered
     again;
   - else mark it "playing" in the played log (before the player starts: a crash mid-play
     never replays, see journal.py), play it (client.play_due), record the outcome and
     journal a report;
then waiting reports are sent if anything played (after the minute's plays, so a hung
server never delays the next reminder of the same minute).

Then it sleeps until the next due instant or sync, at most MAX_WAKE: a clock jump, or a
bundle changed by a `carepill-voice sync` run by hand, is noticed within that.

The same rules hold after a restart or a clock jump either way: the played log decides,
never the memory of this process. Server errors are logged and the loop goes on.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import select
import zoneinfo
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from carepill_voice import schedule
from carepill_voice.client import Client, Delivery, Outcome, Play
from carepill_voice.config import Config
from carepill_voice.journal import MISSED, PLAYING, PlayedLog, Report, ReportJournal, install_id, report_key

logger = logging.getLogger("carepill_voice")

UTC = dt.timezone.utc
# Longest sleep: how soon a clock jump or a hand-run sync is noticed.
MAX_WAKE = dt.timedelta(seconds=30)
# Shortest sleep: a wake a hair before a due instant must not spin.
MIN_SLEEP_SECONDS = 0.05
# How far back a wake looks for occurrences, to log (once) the ones that were missed.
LOOKBACK = dt.timedelta(hours=24)
# After a failed sync, try again after this long (or sync_minutes, if shorter).
SYNC_RETRY = dt.timedelta(minutes=5)

Clock = Callable[[], dt.datetime]


class Sleeper(Protocol):
    def sleep(self, seconds: float) -> None:
        """Return after `seconds`, or earlier once wake() was called."""

    def wake(self) -> None:
        """End the current (or the next) sleep now. Safe to call from a signal handler."""


def utc_now() -> dt.datetime:
    return dt.datetime.now(UTC)


class PipeSleeper:
    """select() on a pipe; wake() writes a byte to it.

    A byte written before the sleep starts ends that sleep at once, so a signal between
    the loop's checks and its sleep is never lost. (threading.Event is not safe here: its
    set() from a signal handler can deadlock on the lock the interrupted wait() holds.)
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def sleep(self, seconds: float) -> None:
        select.select([self._read], [], [], max(0.0, seconds))
        try:
            while os.read(self._read, 512):
                pass
        except BlockingIOError:
            pass

    def wake(self) -> None:
        try:
            os.write(self._write, b"\0")
        except BlockingIOError:  # the pipe is full: a wake is already pending
            pass

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)


def local_zone(name: str = "") -> dt.tzinfo:
    """The zone reminder times are read in: `name` if given, else the Pi's own."""
    if name:
        return zoneinfo.ZoneInfo(name)
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:
        try:
            if tz.startswith("/"):
                with open(tz, "rb") as handle:
                    return zoneinfo.ZoneInfo.from_file(handle, key=tz)
            return zoneinfo.ZoneInfo(tz)
        except (OSError, ValueError, zoneinfo.ZoneInfoNotFoundError) as exc:
            logger.warning("TZ=%s is not a zone file (%s); using /etc/localtime", tz, exc)
    target = os.path.realpath("/etc/localtime")
    if "/zoneinfo/" in target:  # a link into the zone database: keep its name for the logs
        try:
            return zoneinfo.ZoneInfo(target.split("/zoneinfo/", 1)[1])
        except (ValueError, zoneinfo.ZoneInfoNotFoundError):
            pass
    try:
        with open("/etc/localtime", "rb") as handle:
            return zoneinfo.ZoneInfo.from_file(handle, key="localtime")
    except (OSError, ValueError) as exc:
        logger.warning("no local zone (%s): reminder times are read as UTC", exc)
        return UTC


class AlreadyRunning(Exception):
    """Another `run` holds this cache directory: two would speak every reminder twice."""


class Runner:
    def __init__(self, config: Config, *, client: Client | None = None, clock: Clock = utc_now,
                 sleeper: Sleeper | None = None, zone: dt.tzinfo | None = None) -> None:
        self.config = config
        self.client = client or Client(config)
        self.clock = clock
        self.sleeper: Sleeper = sleeper or PipeSleeper()
        self.zone = zone or local_zone(config.timezone)
        self.catch_up = dt.timedelta(minutes=config.catch_up_minutes)
        root = Path(config.cache_dir)
        root.mkdir(parents=True, exist_ok=True)
        self.played = PlayedLog(root)
        self.reports = ReportJournal(root)
        self.install_id = install_id(root)
        self._lock_path = root / "run.lock"
        self._stop = False
        self._sync_requested = True  # the first wake syncs
        self._last_sync: dt.datetime | None = None
        self._next_sync: dt.datetime | None = None
        self._noted: set[str] = set()  # keys this process played, or logged as "already played"
        self._problems_noted: set[str] = set()

    # --- control (signal handlers call these) ------------------------------------------

    def stop(self) -> None:
        """Stop after the play in progress, if any; start no other."""
        self._stop = True
        self.sleeper.wake()

    def request_sync(self) -> None:
        self._sync_requested = True
        self.sleeper.wake()

    # --- the loop ----------------------------------------------------------------------

    def run(self) -> int:
        with self._exclusive():
            logger.info("run: started (install %s, zone %s, catch-up %s min, sync every %s min, %d reports waiting)",
                        self.install_id, _zone_name(self.zone), self.config.catch_up_minutes,
                        self.config.sync_minutes, len(self.reports.pending()))
            while not self._stop:
                # Due reminders first: a slow sync (timeouts, many clips) never delays one.
                self.tick(self.clock())
                if self._stop:
                    break
                if self._sync_requested or self._sync_due(self.clock()):
                    self._sync_requested = False
                    self.sync(self.clock())
                    if self._stop:
                        break
                    self.tick(self.clock())  # the new bundle, and the minutes the sync took
                if self._stop:
                    break
                now = self.clock()
                delay = (self.wake_at(now) - now).total_seconds()
                self.sleeper.sleep(max(delay, MIN_SLEEP_SECONDS))
            self.client.close()
            logger.info("run: stopped")
        return Outcome.OK

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        with open(self._lock_path, "a+b") as lock:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise AlreadyRunning(f"another `carepill-voice run` uses {self.config.cache_dir}")
            yield  # the lock goes with the file's closing, and with the process

    def _sync_due(self, now: dt.datetime) -> bool:
        if self._next_sync is None or self._last_sync is None:
            return True
        # A clock that went back past the last sync would otherwise wait that much longer.
        return now >= self._next_sync or now < self._last_sync

    def sync(self, now: dt.datetime) -> bool:
        """Sync the bundle, prune the played log, send waiting reports. True if the sync worked."""
        try:
            report = self.client.sync()
        except OSError as exc:  # the cache could not be written (SD card full or read-only)
            logger.error("sync: cache not writable, keeping what is there: %s", exc)
            report = None
        ok = report is not None and report.outcome != Outcome.FAILED
        if report is not None and ok:
            logger.info("sync: %s, downloaded %d, present %d, pending %d, failed %d, pruned %d",
                        "unchanged" if report.unchanged else "updated", report.downloaded, report.present,
                        report.pending, report.failed, report.pruned)
        interval = dt.timedelta(minutes=self.config.sync_minutes)
        self._last_sync = now
        self._next_sync = now + (interval if ok else min(interval, SYNC_RETRY))
        if not ok:  # the client logged why
            logger.info("sync: failed, playing from the cached bundle; next try in %.0f min",
                        (self._next_sync - now).total_seconds() / 60)
        self._check_bundle()
        try:
            pruned = self.played.prune(now.astimezone(self.zone).date())
        except OSError as exc:
            logger.error("played log not pruned: %s", exc)
        else:
            if pruned:
                logger.info("played log: %d old keys pruned", pruned)
        self.send_reports()
        return ok

    def tick(self, now: dt.datetime) -> int:
        """Handle every occurrence due by `now`; the number of plays started."""
        phrases = self._phrases()
        by_id = {p["id"]: p for p in phrases if isinstance(p.get("id"), int)}
        oldest_playable = now - self.catch_up
        plays = 0
        for occurrence in schedule.occurrences(phrases, self.zone, now - LOOKBACK, now):
            entry = self.played.get(occurrence.key)
            if entry is not None:
                if occurrence.due >= oldest_playable and occurrence.key not in self._noted:
                    self._noted.add(occurrence.key)
                    if entry.get("state") == PLAYING:
                        logger.warning("%s: interrupted during an earlier play at %s; not replayed",
                                       occurrence.key, entry.get("at"))
                    else:
                        logger.info("%s: already %s at %s; not replayed", occurrence.key, entry.get("state"),
                                    entry.get("at"))
                continue
            if occurrence.due < oldest_playable:
                logger.warning("%s: missed (due %s, more than %s min ago); not played", occurrence.key,
                               occurrence.due.isoformat(timespec="seconds"), self.config.catch_up_minutes)
                self._mark(occurrence.key, MISSED, now)
                continue
            if self._stop:
                break
            self._play(occurrence, by_id[occurrence.phrase_id])
            plays += 1
        if plays:
            self.send_reports()
        return plays

    def wake_at(self, now: dt.datetime) -> dt.datetime:
        candidates = [now + MAX_WAKE]
        upcoming = schedule.next_due(self._phrases(), self.zone, now, MAX_WAKE)
        if upcoming is not None:
            candidates.append(upcoming)
        if self._next_sync is not None and self._next_sync > now:
            candidates.append(self._next_sync)
        return min(candidates)

    # --- one play, one report ------------------------------------------------------------

    def _play(self, occurrence: schedule.Occurrence, phrase: Mapping[str, Any]) -> Play:
        started = self.clock()
        self._mark(occurrence.key, PLAYING, started)  # before the player: never replayed after a crash
        self._noted.add(occurrence.key)  # this process knows it played it: no "already played" for it
        late = (started - occurrence.due).total_seconds()
        logger.info("%s: due %s, playing (%.0f s after its time)", occurrence.key,
                    occurrence.due.isoformat(timespec="seconds"), late)
        try:
            result = self.client.play_due(phrase)
        except OSError as exc:  # the cache itself could not be read
            logger.error("%s: cache unreadable: %s", occurrence.key, exc)
            result = Play("failed", "cache")
        self._mark(occurrence.key, result.outcome, started)
        if result.outcome == "played":
            logger.info("%s: played, from the %s", occurrence.key, result.source)
        elif result.outcome == "fallback":
            logger.warning("%s: spoken by the fallback voice (no clip)", occurrence.key)
        else:
            logger.error("%s: failed, nothing could be spoken (last tried: %s)", occurrence.key, result.source)
        report = Report(phrase_id=occurrence.phrase_id, played_at=started.astimezone(UTC).isoformat(timespec="seconds"),
                        outcome=result.outcome, source=result.source, key=report_key(self.install_id, occurrence))
        try:
            self.reports.add(report)
        except OSError as exc:
            logger.error("%s: report not journaled: %s", occurrence.key, exc)
        return result

    def _mark(self, key: str, state: str, at: dt.datetime) -> None:
        try:
            self.played.mark(key, state, at)
        except OSError as exc:
            # Speaking matters more than the log: this process still remembers the key.
            logger.error("%s: played log not written (%s): a restart may repeat it", key, exc)

    def send_reports(self) -> int:
        """Send waiting reports, oldest first, until one must wait. The number sent or dropped."""
        done = 0
        for report in self.reports.pending():
            if self._stop:  # a stop is prompt; the journal keeps them for the next start
                break
            sent = self.client.report_send(report)
            if sent.delivery is Delivery.KEPT:
                logger.warning("report %s kept for the next try: %s", report.key, sent.detail)
                break
            self.reports.remove(report)
            done += 1
            if sent.delivery is Delivery.SENT:
                logger.info("report %s sent (%s)", report.key, sent.detail)
            else:
                logger.error("report %s dropped, the server refused it: %s", report.key, sent.detail)
        return done

    # --- the cached bundle ---------------------------------------------------------------

    def _body(self) -> dict[str, Any]:
        body = self.client.cache.bundle().get("body")
        return body if isinstance(body, dict) else {}

    def _phrases(self) -> list[dict[str, Any]]:
        phrases = self._body().get("phrases")
        return [p for p in phrases if isinstance(p, dict)] if isinstance(phrases, list) else []

    def _check_bundle(self) -> None:
        """Log, once per process and note, what the schedule skips and a zone mismatch."""
        notes: list[tuple[int, str]] = []
        for phrase in self._phrases():
            problems = schedule.phrase_problems(phrase)
            if problems:
                notes.append((logging.WARNING, f"phrase {phrase.get('id')}: skipped: {'; '.join(problems)}"))
            elif not phrase.get("times"):
                notes.append((logging.INFO, f"phrase {phrase.get('id')}: no fixed time, not scheduled by run"))
        server_zone = self._body().get("timezone")
        if isinstance(server_zone, str) and server_zone and _offset_differs(server_zone, self.zone, self.clock()):
            notes.append((logging.WARNING, f"the server's zone is {server_zone} but reminder times are read in "
                          f"{_zone_name(self.zone)} (set timezone in the config if the Pi's zone is wrong)"))
        for level, note in notes:
            if note not in self._problems_noted:
                self._problems_noted.add(note)
                logger.log(level, "schedule: %s", note)


def _zone_name(zone: dt.tzinfo) -> str:
    return str(getattr(zone, "key", None) or zone)


def _offset_differs(name: str, zone: dt.tzinfo, now: dt.datetime) -> bool:
    try:
        other = zoneinfo.ZoneInfo(name)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        return False
    return now.astimezone(other).utcoffset() != now.astimezone(zone).utcoffset()
