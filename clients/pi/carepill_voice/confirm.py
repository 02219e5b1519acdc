"""`carepill-voice confirm` (and the button of `run`): "I heard it, I took it".

The reminder waiting for a confirmation is the one most recently heard (its first play or a
repeat: outcome played or fallback, or a play still in progress) that is not confirmed yet and
whose confirmation window is still open: now < due + window, the window being the bundle's
`dose_alert_minutes` (30 if it has none). Two reminders heard together need two presses.

Confirming one, under cache_dir:

1. writes confirmed/<phrase>_<date>_<HH_MM>.json (atomic, one file per reminder): `run` reads
   it before every repeat, so from this moment on no repeat of it plays, after a restart too;
2. journals the confirmation for the server in confirmations/ (like a play report);
3. `confirm` then tries to send it once, with the config's timeout (a server that is down only
   leaves it in the journal: `run` sends it with the reports), and wakes the running `run`
   (SIGUSR1 to the process named in run.pid) so it logs it and sends what is waiting.

played.json is never written here: `run` is its only writer.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carepill_voice import schedule
from carepill_voice.cache import Cache, atomic_write
from carepill_voice.client import Client, Delivery, Outcome
from carepill_voice.journal import (
    HEARD,
    Confirmation,
    ConfirmationJournal,
    ConfirmedMarks,
    PlayedLog,
    confirmation_key,
    install_id,
    parse_played_key,
)

logger = logging.getLogger("carepill_voice")

UTC = dt.timezone.utc
# The confirmation window when the bundle does not say (the server's DOSE_ALERT_MINUTES default).
DEFAULT_WINDOW_MINUTES = 30
PID_FILE = "run.pid"


def dose_window(bundle_body: Any) -> dt.timedelta:
    """The bundle's `dose_alert_minutes` (a whole number, 1 or more), else 30 minutes."""
    minutes = bundle_body.get("dose_alert_minutes") if isinstance(bundle_body, dict) else None
    if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes < 1:
        minutes = DEFAULT_WINDOW_MINUTES
    return dt.timedelta(minutes=minutes)


def cached_window(root: Path) -> dt.timedelta:
    return dose_window(Cache(root).bundle().get("body"))


@dataclass(frozen=True)
class Heard:
    """A reminder heard on this Pi: its played-log key (phrase:date:time) and when."""

    key: str
    phrase_id: int
    local_date: dt.date
    time: str
    due: dt.datetime
    last_heard: dt.datetime  # the start of its latest play (the first one, or a repeat)


def heard_reminders(played: PlayedLog, zone: dt.tzinfo) -> list[Heard]:
    """Every reminder of the played log with at least one play heard (or in progress)."""
    latest: dict[str, dt.datetime] = {}
    for key in played.keys():
        parsed = parse_played_key(key)
        entry = played.get(key) or {}
        at = parse_instant(entry.get("at"))
        if parsed is None or at is None or entry.get("state") not in HEARD:
            continue
        base = f"{parsed[0]}:{parsed[1].isoformat()}:{parsed[2]}"
        latest[base] = max(at, latest.get(base, at))
    found = []
    for base, at in latest.items():
        phrase_id, day, hhmm, _ = parse_played_key(base) or (0, dt.date.min, "", 0)
        clock = schedule.parse_time(hhmm)
        if clock is None:
            continue
        found.append(Heard(base, phrase_id, day, hhmm, schedule.due_instant(day, clock, zone), at))
    return found


def waiting(played: PlayedLog, marks: ConfirmedMarks, zone: dt.tzinfo, now: dt.datetime,
            window: dt.timedelta) -> tuple[Heard | None, str]:
    """The reminder waiting for a confirmation, or None and why none is."""
    open_ = [h for h in heard_reminders(played, zone) if now < h.due + window]
    if not open_:
        return None, f"nothing was heard within the last {window.total_seconds() / 60:.0f} min (the window)"
    unconfirmed = [h for h in open_ if h.key not in marks]
    if not unconfirmed:
        return None, f"already confirmed: {', '.join(sorted(h.key for h in open_))}"
    return max(unconfirmed, key=lambda h: (h.last_heard, h.due, h.phrase_id)), ""


def confirm_waiting(root: Path, zone: dt.tzinfo, now: dt.datetime, *, by: str,
                    window: dt.timedelta | None = None) -> tuple[Confirmation | None, str]:
    """Confirm the waiting reminder: mark it, journal its confirmation. (None, why) if none waits."""
    root = Path(root)
    played = PlayedLog(root)  # read only: run is the played log's only writer
    marks = ConfirmedMarks(root)
    heard, why = waiting(played, marks, zone, now, window if window is not None else cached_window(root))
    if heard is None:
        return None, why
    marks.mark(heard.key, now, by)  # from here on, no repeat of it plays
    confirmation = Confirmation(phrase_id=heard.phrase_id, scheduled_date=heard.local_date.isoformat(),
                                scheduled_time=heard.time,
                                confirmed_at=now.astimezone(UTC).isoformat(timespec="seconds"),
                                key=confirmation_key(install_id(root), heard.key))
    ConfirmationJournal(root).add(confirmation)
    logger.info("%s: confirmed (%s)", heard.key, by)
    return confirmation, ""


def command(client: Client, zone: dt.tzinfo, now: dt.datetime) -> Outcome:
    """`carepill-voice confirm`: OK when it confirmed one, NOTHING_WAITING when none waits."""
    root = Path(client.config.cache_dir)
    confirmation, why = confirm_waiting(root, zone, now, by="confirm")
    if confirmation is None:
        print(f"confirm: no reminder is waiting for a confirmation ({why})", file=sys.stderr)
        return Outcome.NOTHING_WAITING
    what = f"phrase {confirmation.phrase_id} of {confirmation.scheduled_date} {confirmation.scheduled_time}"
    sent = client.confirmation_send(confirmation)  # once, now; else `run` sends it
    if sent.delivery is Delivery.KEPT:
        told = f"the server will get it later ({sent.detail})"
    else:
        ConfirmationJournal(root).remove(confirmation)
        told = ("sent to the server" if sent.delivery is Delivery.SENT
                else f"the server refused it ({sent.detail})")
        if sent.delivery is Delivery.DROPPED:
            logger.error("confirmation %s dropped, the server refused it: %s", confirmation.key, sent.detail)
    woken = wake_run(root)
    client.close()
    print(f"confirm: confirmed {what}; {told}; {'the running run was told' if woken else 'no running run to tell'}")
    return Outcome.OK


# --- waking the running `run` ---------------------------------------------------------------


def write_run_pid(root: Path) -> None:
    atomic_write(Path(root) / PID_FILE, f"{os.getpid()}\n".encode("ascii"))


def remove_run_pid(root: Path) -> None:
    path = Path(root) / PID_FILE
    try:
        if path.read_text(encoding="ascii").strip() == str(os.getpid()):
            path.unlink()
    except (OSError, ValueError):
        pass


def wake_run(root: Path) -> bool:
    """SIGUSR1 to the running `run` of this cache directory; False if there is none to wake.

    The pid file outlives a run killed hard, and its number may belong to another process by
    now (SIGUSR1 would end most programs): it is signalled only if /proc shows it is a
    `carepill-voice run`. Without /proc nothing is signalled: run still reads the confirmation
    before its next repeat, it only logs and sends it later."""
    try:
        pid = int((Path(root) / PID_FILE).read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return False
    if pid <= 1 or pid == os.getpid():
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if not any(b"carepill" in part for part in argv) or b"run" not in argv:
        return False
    try:
        os.kill(pid, signal.SIGUSR1)
    except OSError as exc:  # gone, or another user's process
        logger.warning("could not wake the running `run` (pid %s): %s", pid, exc)
        return False
    return True


def parse_instant(value: object) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
