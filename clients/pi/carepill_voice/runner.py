"""`carepill-voice run`: speak every reminder of the cached bundle on time, online or not.

The loop, at each wake:

1. a tick over the cached bundle (below), before anything that talks to the server;
2. a press of the confirmation button (button_pin) confirms the reminder just heard, and a
   `carepill-voice confirm` (it sends SIGUSR1) is logged; waiting confirmations are sent;
3. a sync when it is time (at start, every sync_minutes, sooner after a failed sync, after
   SIGHUP, and when the clock went back past the last sync), then waiting reports and
   confirmations are sent, then another tick (the new bundle, and the time the sync took);
4. a heartbeat (POST /api/tts/devices/heartbeat/) right after each sync and every
   HEARTBEAT_EVERY, but never when a play is due before it could time out: plays first.

A tick: for every occurrence of the last LOOKBACK that is due (due <= now):
   - in the played log: skip (logged once per key: "already played");
   - older than catch_up_minutes: log it as missed and mark it, so it is never considered
     again;
   - else mark it "playing" in the played log (before the player starts: a crash mid-play
     never replays, see journal.py), play it (client.play_due), record the outcome and
     journal a report;
then the repeats (below); then waiting reports and confirmations are sent if anything
played (after the minute's plays, so a hung server never delays the next reminder of the same minute).

Repeats: a reminder whose first play is in the played log (heard, failed or interrupted; not
missed) and is not confirmed (confirmed/, see confirm.py) plays again at due + k *
repeat_minutes, k = 1 .. repeat_times, each only while due + window is ahead (window: the
bundle's dose_alert_minutes, else 30 min). A repeat is a play like the first: marked in the
played log as "<key>:r<k>" before the player starts, reported with the report key + ":r<k>".
A confirmed reminder is never repeated (the mark is read from disk before each repeat, so a
restart knows it too); a repeat due less than half of repeat_minutes after the start of the
play before it (a late start) is skipped; one found later than catch_up_minutes, or after
the window closed, is missed. A failed first play (nothing spoken) is repeated too: nothing was heard, so the
repeat cannot make a double dose, and a sound device that was busy may work again.

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

from carepill_voice import confirm as confirming
from carepill_voice import schedule
from carepill_voice.client import Client, Delivery, Outcome, Play
from carepill_voice.config import Config
from carepill_voice.journal import (
    HEARD,
    MISSED,
    PLAYING,
    SKIPPED,
    ConfirmationJournal,
    ConfirmedMarks,
    PlayedLog,
    Report,
    ReportJournal,
    install_id,
    repeat_key,
    report_key,
)

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
# How often a running `run` tells the server it is alive (the server wants it every minute).
HEARTBEAT_EVERY = dt.timedelta(seconds=45)
# The first plays of a reminder after which its repeats follow (a missed one has none).
REPEATABLE = (*HEARD, "failed")

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
        self.root = root
        self.played = PlayedLog(root)
        self.reports = ReportJournal(root)
        self.confirmed = ConfirmedMarks(root)
        self.confirmations = ConfirmationJournal(root)
        self.install_id = install_id(root)
        self.repeat_every = dt.timedelta(minutes=config.repeat_minutes)
        # A heartbeat waits for a play due sooner than the longest a request can take.
        self._heartbeat_guard = dt.timedelta(seconds=2 * config.timeout + 1)
        self._lock_path = root / "run.lock"
        self._stop = False
        self._sync_requested = True  # the first wake syncs
        self._last_sync: dt.datetime | None = None
        self._next_sync: dt.datetime | None = None
        self._noted: set[str] = set()  # keys this process played, or logged as "already played"
        self._problems_noted: set[str] = set()
        self._next_heartbeat: dt.datetime | None = None
        self._heartbeat_failing: bool | None = None  # None: no answer nor failure yet
        self._button_pressed = False
        self._confirm_woken = False
        self._button: Any = None

    # --- control (signal handlers call these) ------------------------------------------

    def stop(self) -> None:
        """Stop after the play in progress, if any; start no other."""
        self._stop = True
        self.sleeper.wake()

    def request_sync(self) -> None:
        self._sync_requested = True
        self.sleeper.wake()

    def button_pressed(self) -> None:
        """The confirmation button (gpiozero calls this from its own thread): a flag and a wake;
        the loop confirms, between plays."""
        self._button_pressed = True
        self.sleeper.wake()

    def confirmation_made(self) -> None:
        """SIGUSR1 from `carepill-voice confirm`: it wrote its confirmation already."""
        self._confirm_woken = True
        self.sleeper.wake()

    # --- the loop ----------------------------------------------------------------------

    def run(self) -> int:
        with self._exclusive():
            logger.info("run: started (install %s, zone %s, catch-up %s min, sync every %s min, repeats %d every "
                        "%s min, %d reports and %d confirmations waiting)", self.install_id, _zone_name(self.zone),
                        self.config.catch_up_minutes, self.config.sync_minutes, self.config.repeat_times,
                        self.config.repeat_minutes, len(self.reports.pending()), len(self.confirmations.pending()))
            try:
                confirming.write_run_pid(self.root)
            except OSError as exc:
                logger.error("run.pid not written (%s): `confirm` cannot wake this run", exc)
            self._start_button()
            try:
                self._loop()
            finally:
                if self._button is not None:
                    self._button.close()
                confirming.remove_run_pid(self.root)
            self.client.close()
            logger.info("run: stopped")
        return Outcome.OK

    def _loop(self) -> None:
        while not self._stop:
            # Due reminders first: a slow sync (timeouts, many clips) never delays one.
            self.tick(self.clock())
            if self._stop:
                break
            self._confirmations()
            if self._sync_requested or self._sync_due(self.clock()):
                self._sync_requested = False
                self.sync(self.clock())
                if self._stop:
                    break
                self._next_heartbeat = self.clock()  # right after each sync
                self.tick(self.clock())  # the new bundle, and the minutes the sync took
            if self._stop:
                break
            if self._heartbeat_due(self.clock()):
                self.heartbeat(self.clock())
            if self._stop:
                break
            now = self.clock()
            delay = (self.wake_at(now) - now).total_seconds()
            self.sleeper.sleep(max(delay, MIN_SLEEP_SECONDS))

    def _start_button(self) -> None:
        pin = self.config.button_pin
        if pin is None:
            return
        try:
            from gpiozero import Button
        except ImportError:
            logger.warning("button_pin = %s but gpiozero is not installed: no button (pip install gpiozero in "
                           "this venv); `carepill-voice confirm` still works", pin)
            return
        try:
            self._button = Button(pin, pull_up=True, bounce_time=0.05)
        except Exception as exc:  # noqa: BLE001 - not a Pi, pin busy, no access to /dev/gpiochip*: run without it
            logger.warning("button on BCM %s unusable, running without it: %s: %s", pin, type(exc).__name__, exc)
            return
        self._button.when_pressed = self.button_pressed
        logger.info("button: BCM %s; a press confirms the reminder just heard", pin)

    def _confirmations(self) -> None:
        """Handle a press of the button and a wake from `carepill-voice confirm`."""
        sent = False
        if self._button_pressed:
            self._button_pressed = False
            try:
                made, why = confirming.confirm_waiting(self.root, self.zone, self.clock(), by="button",
                                                       window=self._window())
            except OSError as exc:
                logger.error("button: confirmation not written: %s", exc)
                made, why = None, "not written"
            if made is None:
                logger.info("button: pressed, no reminder is waiting for a confirmation (%s)", why)
            else:
                logger.info("button: confirmed phrase %s of %s %s", made.phrase_id, made.scheduled_date,
                            made.scheduled_time)
                self.send_confirmations()
                sent = True
        if self._confirm_woken:
            self._confirm_woken = False
            logger.info("confirm: woken by `carepill-voice confirm`; a confirmed reminder is not repeated")
            if not sent:
                self.send_confirmations()

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
            pruned += self.confirmed.prune(now.astimezone(self.zone).date())
        except OSError as exc:
            logger.error("played log not pruned: %s", exc)
        else:
            if pruned:
                logger.info("played log: %d old keys pruned", pruned)
        self.send_reports()
        self.send_confirmations()
        return ok

    def _heartbeat_due(self, now: dt.datetime) -> bool:
        if self._next_heartbeat is not None and now < self._next_heartbeat:
            return False
        # Never when a play is due before the request could time out: the play first.
        upcoming = self._next_play(now)
        return upcoming is None or upcoming - now > self._heartbeat_guard

    def heartbeat(self, now: dt.datetime) -> bool:
        """Tell the server this Pi is alive, and the zone it reads times in. Never raises."""
        self._next_heartbeat = now + HEARTBEAT_EVERY
        ok, detail, body = self.client.heartbeat(_iana_name(self.zone))
        if not ok:
            if self._heartbeat_failing is not True:  # once per outage
                logger.warning("heartbeat: not heard by the server (%s); retried every %.0f s, logged again "
                               "once it answers", detail, HEARTBEAT_EVERY.total_seconds())
            self._heartbeat_failing = True
            return False
        if self._heartbeat_failing is not False:
            logger.info("heartbeat: heard by the server%s", " again" if self._heartbeat_failing else "")
        self._heartbeat_failing = False
        server_zone = body.get("timezone")
        if body.get("timezone_mismatch") is True:
            note = (f"the server's household zone is {server_zone} but this Pi reads times in "
                    f"{_zone_name(self.zone)} (set timezone in the config if the Pi's zone is wrong)")
            if note not in self._problems_noted:
                self._problems_noted.add(note)
                logger.warning("heartbeat: %s", note)
        return True

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
        plays += self._repeats(now, phrases, by_id)
        if plays:
            self.send_reports()
            self.send_confirmations()
        return plays

    def _window(self) -> dt.timedelta:
        return confirming.dose_window(self._body())

    def _repeat_instants(self, occurrence: schedule.Occurrence, window: dt.timedelta) -> list[tuple[int, dt.datetime]]:
        """(k, due + k * repeat_minutes) for the repeats inside the confirmation window."""
        instants = []
        for number in range(1, self.config.repeat_times + 1):
            instant = occurrence.due + self.repeat_every * number
            if instant >= occurrence.due + window:
                break
            instants.append((number, instant))
        return instants

    def _repeatable(self, now: dt.datetime, phrases: list[dict[str, Any]],
                    window: dt.timedelta) -> Iterator[tuple[schedule.Occurrence, dt.datetime | None]]:
        """The occurrences whose window is open and whose first play is in the played log, with
        its start."""
        if self.config.repeat_times <= 0:
            return
        for occurrence in schedule.occurrences(phrases, self.zone, now - window, now):
            first = self.played.get(occurrence.key)
            if first is not None and first.get("state") in REPEATABLE:
                yield occurrence, confirming.parse_instant(first.get("at"))

    def _repeats(self, now: dt.datetime, phrases: list[dict[str, Any]], by_id: Mapping[int, Any]) -> int:
        window = self._window()
        plays = 0
        for occurrence, last_start in self._repeatable(now, phrases, window):
            for number, instant in self._repeat_instants(occurrence, window):
                key = repeat_key(occurrence.key, number)
                entry = self.played.get(key)
                if entry is not None:
                    started = confirming.parse_instant(entry.get("at"))
                    if entry.get("state") not in (MISSED, SKIPPED) and started is not None:
                        last_start = max(started, last_start or started)
                    continue
                if instant > now:
                    break
                if occurrence.key in self.confirmed:
                    if "confirmed:" + occurrence.key not in self._noted:
                        self._noted.add("confirmed:" + occurrence.key)
                        logger.info("%s: confirmed, not repeated", occurrence.key)
                    break
                if last_start is not None and last_start > instant - self.repeat_every / 2:
                    logger.info("%s: skipped, due %s, too soon after the play before it (started %s)", key,
                                instant.isoformat(timespec="seconds"), last_start.isoformat(timespec="seconds"))
                    self._mark(key, SKIPPED, now)
                    continue
                if now - instant > self.catch_up or now >= occurrence.due + window:
                    logger.warning("%s: missed (repeat due %s); not played", key, instant.isoformat(timespec="seconds"))
                    self._mark(key, MISSED, now)
                    continue
                if self._stop or occurrence.phrase_id not in by_id:
                    return plays
                self._play(occurrence, by_id[occurrence.phrase_id], repeat=number)
                plays += 1
                last_start = confirming.parse_instant((self.played.get(key) or {}).get("at")) or now
        return plays

    def _next_play(self, now: dt.datetime) -> dt.datetime | None:
        """The next instant after `now` at which a first play or a repeat is due (within MAX_WAKE)."""
        phrases = self._phrases()
        candidates = []
        upcoming = schedule.next_due(phrases, self.zone, now, MAX_WAKE)
        if upcoming is not None:
            candidates.append(upcoming)
        window = self._window()
        for occurrence, _ in self._repeatable(now, phrases, window):
            if occurrence.key in self.confirmed:
                continue
            for number, instant in self._repeat_instants(occurrence, window):
                if instant > now and repeat_key(occurrence.key, number) not in self.played:
                    candidates.append(instant)
                    break
        return min(candidates, default=None)

    def wake_at(self, now: dt.datetime) -> dt.datetime:
        candidates = [now + MAX_WAKE]
        upcoming = self._next_play(now)
        if upcoming is not None:
            candidates.append(upcoming)
        if self._next_sync is not None and self._next_sync > now:
            candidates.append(self._next_sync)
        if self._next_heartbeat is not None and self._next_heartbeat > now:
            candidates.append(self._next_heartbeat)
        return min(candidates)

    # --- one play, one report ------------------------------------------------------------

    def _play(self, occurrence: schedule.Occurrence, phrase: Mapping[str, Any], repeat: int = 0) -> Play:
        """Play the reminder (repeat 0) or its repeat-th repeat, and journal its report."""
        started = self.clock()
        key = repeat_key(occurrence.key, repeat) if repeat else occurrence.key
        self._mark(key, PLAYING, started)  # before the player: never replayed after a crash
        self._noted.add(key)  # this process knows it played it: no "already played" for it
        due = occurrence.due + self.repeat_every * repeat
        late = (started - due).total_seconds()
        logger.info("%s: due %s, playing%s (%.0f s after its time)", key, due.isoformat(timespec="seconds"),
                    f" repeat {repeat} of {self.config.repeat_times}, not confirmed yet" if repeat else "", late)
        try:
            result = self.client.play_due(phrase)
        except OSError as exc:  # the cache itself could not be read
            logger.error("%s: cache unreadable: %s", key, exc)
            result = Play("failed", "cache")
        self._mark(key, result.outcome, started)
        if result.outcome == "played":
            logger.info("%s: played, from the %s", key, result.source)
        elif result.outcome == "fallback":
            logger.warning("%s: spoken by the fallback voice (no clip)", key)
        else:
            logger.error("%s: failed, nothing could be spoken (last tried: %s)", key, result.source)
        first_key = report_key(self.install_id, occurrence)
        report = Report(phrase_id=occurrence.phrase_id, played_at=started.astimezone(UTC).isoformat(timespec="seconds"),
                        outcome=result.outcome, source=result.source,
                        key=repeat_key(first_key, repeat) if repeat else first_key,
                        scheduled_date=occurrence.local_date.isoformat(), scheduled_time=occurrence.time)
        try:
            self.reports.add(report)
        except OSError as exc:
            logger.error("%s: report not journaled: %s", key, exc)
        return result

    def _mark(self, key: str, state: str, at: dt.datetime) -> None:
        try:
            self.played.mark(key, state, at)
        except OSError as exc:
            # Speaking matters more than the log: this process still remembers the key.
            logger.error("%s: played log not written (%s): a restart may repeat it", key, exc)

    def send_reports(self) -> int:
        """Send waiting reports, oldest first, until one must wait. The number sent or dropped."""
        return self._send_journal("report", self.reports, self.client.report_send)

    def send_confirmations(self) -> int:
        """Send waiting confirmations, oldest first, until one must wait. The number sent or dropped."""
        return self._send_journal("confirmation", self.confirmations, self.client.confirmation_send)

    def _send_journal(self, what: str, journal: Any, send: Callable[[Any], Any]) -> int:
        done = 0
        for entry in journal.pending():
            if self._stop:  # a stop is prompt; the journal keeps them for the next start
                break
            sent = send(entry)
            if sent.delivery is Delivery.KEPT:
                logger.warning("%s %s kept for the next try: %s", what, entry.key, sent.detail)
                break
            journal.remove(entry)
            done += 1
            if sent.delivery is Delivery.SENT:
                logger.info("%s %s sent (%s)", what, entry.key, sent.detail)
            else:
                logger.error("%s %s dropped, the server refused it: %s", what, entry.key, sent.detail)
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


def _iana_name(zone: dt.tzinfo) -> str:
    """The zone's IANA name for the server, or "" when it has none (a copied /etc/localtime is read
    as "localtime"): the heartbeat then reports no zone rather than a name the server cannot use."""
    name = _zone_name(zone)
    if name == "localtime":
        return ""
    try:
        zoneinfo.ZoneInfo(name)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        return ""
    return name


def _offset_differs(name: str, zone: dt.tzinfo, now: dt.datetime) -> bool:
    try:
        other = zoneinfo.ZoneInfo(name)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        return False
    return now.astimezone(other).utcoffset() != now.astimezone(zone).utcoffset()
