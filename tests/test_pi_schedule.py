"""`carepill-voice run`'s decisions, with a fake clock and a fake sleeper (sleeping moves
the clock): the schedule's pure functions (weekdays, daylight saving), the runner over a
cached bundle with the recording player and fallback scripts of tests/test_pi_client.py
(a restart, a late start, clock jumps, both DST changes), the journal's files, the
install id, and the report rules against a real HTTP stand-in that answers set statuses.
The server is a closed port wherever one is not needed: the Pi must not need it."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import re
import signal
import subprocess
import threading
import time
import zoneinfo
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from carepill_voice import cache as cache_module
from carepill_voice import schedule
from carepill_voice.cache import Cache
from carepill_voice.client import Client, Delivery
from carepill_voice.config import ConfigError, load_config
from carepill_voice.journal import KEEP_DAYS, PlayedLog, Report, ReportJournal, install_id, report_key
from carepill_voice.runner import AlreadyRunning, PipeSleeper, Runner

from tests import test_pi_client
from tests.loopback import LoopbackServer
from tests.test_pi_client import CLI, Pi

UTC = dt.UTC
SEOUL = zoneinfo.ZoneInfo("Asia/Seoul")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
# 2027-06-07 is a Monday.
MONDAY = dt.date(2027, 6, 7)


# A closed port on 127.0.0.1: the server is down (connection refused).
dead_url = test_pi_client.dead_url


class FakeTime:
    """The runner's clock and sleeper in one: a sleep moves the clock on by its length,
    `jumps` move it elsewhere once it reaches a given instant, and the runner is stopped
    once the clock reaches `until`."""

    def __init__(self, start: dt.datetime, until: dt.datetime,
                 jumps: list[tuple[dt.datetime, dt.datetime]] | None = None) -> None:
        self.now = start
        self.until = until
        self.jumps = list(jumps or [])
        self.runner: Runner | None = None
        self.wakes: list[dt.datetime] = []

    def __call__(self) -> dt.datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)
        if self.jumps and self.now >= self.jumps[0][0]:
            self.now = self.jumps.pop(0)[1]
        self.wakes.append(self.now)
        if self.now >= self.until and not self.jumps:
            assert self.runner is not None
            self.runner.stop()

    def wake(self) -> None:
        pass


def local(day: dt.date, hhmm: str, zone: dt.tzinfo = SEOUL, seconds: int = 0) -> dt.datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return dt.datetime(day.year, day.month, day.day, hours, minutes, seconds, tzinfo=zone).astimezone(UTC)


def wav(tag: str) -> bytes:
    return b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\0" * 28 + tag.encode()


def phrase(phrase_id: int, times: list[str], days: list[int] | None = None, *, clip: bool = True,
           server: str = "http://127.0.0.1:9") -> dict:
    return {"id": phrase_id, "text": f"reminder {phrase_id}", "language": "en", "times": times, "days": days or [],
            "status": "ready" if clip else "pending", "clip": clip, "audio_url": f"{server}/clip/{phrase_id}/"}


def bundle_on_disk(pi: Pi, phrases: list[dict]) -> dict[int, str]:
    """Write a bundle (and the clips of the phrases that have one) into the Pi's cache."""
    cache = Cache(pi.cache)
    shas = {}
    body = []
    for entry in phrases:
        entry = dict(entry)
        if entry.pop("clip"):
            shas[entry["id"]], _ = cache.clip_store(wav(str(entry["id"])))
            entry["sha256"] = shas[entry["id"]]
        else:
            entry.update(sha256=None, audio_url=None)
        body.append(entry)
    cache.bundle_save(body={"timezone": "Asia/Seoul", "phrases": body}, etag='"e"')
    return shas


def run_until(pi: Pi, clock: FakeTime, zone: str = "Asia/Seoul", **config: object) -> Runner:
    runner = Runner(pi.config(timezone=zone, **config), clock=clock, sleeper=clock)
    clock.runner = runner
    assert runner.run() == 0
    return runner


def played_log(pi: Pi) -> dict[str, dict[str, str]]:
    return json.loads((pi.cache / "played.json").read_text())


def pending(pi: Pi) -> list[Report]:
    return ReportJournal(pi.cache).pending()


# --- the schedule: pure functions ----------------------------------------------------------


def test_weekdays_times_and_local_dates():
    phrases = [phrase(1, ["08:00", "20:30"], [1, 3]), phrase(2, ["12:00"]), phrase(3, []),
               {"id": 4, "times": ["25:00", "7:00", "09:15"], "days": [0, 8, "1"]}]
    week = schedule.occurrences(phrases, SEOUL, local(MONDAY, "00:00"), local(MONDAY + dt.timedelta(days=7), "00:00"))
    mine = [(o.local_date.isoweekday(), o.time) for o in week if o.phrase_id == 1]
    assert mine == [(1, "08:00"), (1, "20:30"), (3, "08:00"), (3, "20:30")]
    # Days are local days: Monday 08:00 in Seoul is Sunday 23:00 UTC.
    first = next(o for o in week if o.phrase_id == 1)
    assert first.due == dt.datetime(2027, 6, 6, 23, 0, tzinfo=UTC) and first.key == "1:2027-06-07:08:00"
    assert sorted({o.local_date for o in week if o.phrase_id == 2}) == [MONDAY + dt.timedelta(days=n) for n in range(7)]
    # No fixed time: never scheduled. Nothing usable (bad times, only bad weekdays): never guessed.
    assert {o.phrase_id for o in week} == {1, 2}
    assert [o.due for o in week] == sorted(o.due for o in week)
    assert schedule.phrase_problems(phrases[3]) == ["bad time '25:00'", "bad time '7:00'", "bad weekday 0",
                                                    "bad weekday 8", "bad weekday '1'"]
    assert schedule.phrase_problems(phrases[0]) == []
    assert schedule.next_due(phrases, SEOUL, local(MONDAY, "08:00"), dt.timedelta(days=1)) == local(MONDAY, "12:00")
    assert schedule.next_due(phrases, SEOUL, local(MONDAY, "08:00"), dt.timedelta(hours=1)) is None


def test_due_instants_across_daylight_saving_changes():
    due = schedule.due_instant
    spring, fall = dt.date(2027, 3, 14), dt.date(2027, 11, 7)
    # Spring forward: 02:00 EST jumps to 03:00 EDT (07:00 UTC); a skipped time plays at the jump.
    assert due(spring, dt.time(1, 59), NEW_YORK) == dt.datetime(2027, 3, 14, 6, 59, tzinfo=UTC)
    assert due(spring, dt.time(2, 0), NEW_YORK) == dt.datetime(2027, 3, 14, 7, 0, tzinfo=UTC)
    assert due(spring, dt.time(2, 30), NEW_YORK) == dt.datetime(2027, 3, 14, 7, 0, tzinfo=UTC)
    assert due(spring, dt.time(3, 0), NEW_YORK) == dt.datetime(2027, 3, 14, 7, 0, tzinfo=UTC)
    # Fall back: 02:00 EDT goes back to 01:00 EST; a repeated time is due the first time (EDT).
    assert due(fall, dt.time(1, 30), NEW_YORK) == dt.datetime(2027, 11, 7, 5, 30, tzinfo=UTC)
    assert due(fall, dt.time(2, 0), NEW_YORK) == dt.datetime(2027, 11, 7, 7, 0, tzinfo=UTC)
    # A half-hour change (Lord Howe Island: 02:00 -> 02:30): the jump again, not an offset's guess.
    lord_howe = zoneinfo.ZoneInfo("Australia/Lord_Howe")
    assert due(dt.date(2027, 10, 3), dt.time(2, 15), lord_howe) == dt.datetime(2027, 10, 2, 15, 30, tzinfo=UTC)
    repeated = schedule.occurrences([phrase(1, ["01:30"])], NEW_YORK, dt.datetime(2027, 11, 7, 4, tzinfo=UTC),
                                    dt.datetime(2027, 11, 7, 8, tzinfo=UTC))
    assert [(o.key, o.due.hour) for o in repeated] == [("1:2027-11-07:01:30", 5)]


# --- the runner over a cached bundle, no server ---------------------------------------------


def test_a_reminder_due_now_plays_once_and_a_restart_in_that_minute_does_not_replay(tmp_path, dead_url, caplog):
    caplog.set_level(logging.INFO, logger="carepill_voice")
    pi = Pi(tmp_path, dead_url, "t")
    shas = bundle_on_disk(pi, [phrase(1, ["08:00"]), phrase(2, ["09:00"])])

    clock = FakeTime(local(MONDAY, "07:59", seconds=40), until=local(MONDAY, "08:03"))
    first = run_until(pi, clock)
    assert pi.played() == [shas[1]]
    assert local(MONDAY, "08:00") in clock.wakes  # woken at the due instant, not at the next 30 s step
    assert max(b - a for a, b in zip(clock.wakes, clock.wakes[1:], strict=False)) <= dt.timedelta(seconds=30)
    key = "1:2027-06-07:08:00"
    assert played_log(pi)[key] == {"state": "played", "at": "2027-06-06T23:00:00+00:00"}
    [report] = pending(pi)  # the server is down: journaled, kept for later
    assert report == Report(phrase_id=1, played_at="2027-06-06T23:00:00+00:00", outcome="played", source="cache",
                            key=f"{first.install_id}:{key}", scheduled_date="2027-06-07", scheduled_time="08:00")
    assert "kept for the next try" in caplog.text

    caplog.clear()
    again = run_until(pi, FakeTime(local(MONDAY, "08:00", seconds=40), until=local(MONDAY, "08:05")))
    assert pi.played() == [shas[1]]  # not replayed
    assert again.install_id == first.install_id
    assert f"{key}: already played" in caplog.text and len(pending(pi)) == 1


def test_late_start_plays_within_the_catch_up_window_and_logs_older_ones_as_missed(tmp_path, dead_url, caplog):
    caplog.set_level(logging.INFO, logger="carepill_voice")
    pi = Pi(tmp_path, dead_url, "t")
    shas = bundle_on_disk(pi, [phrase(1, ["08:00"]), phrase(2, ["08:20"]), phrase(3, ["08:30"])])

    # Power back at 08:25: 08:20 is 5 min late (within 10) and plays; 08:00 is 25 min late.
    run_until(pi, FakeTime(local(MONDAY, "08:25"), until=local(MONDAY, "08:40")))
    assert pi.played() == [shas[2], shas[3]]
    assert played_log(pi)["1:2027-06-07:08:00"]["state"] == "missed"
    assert caplog.text.count("1:2027-06-07:08:00: missed") == 1
    assert [r.phrase_id for r in pending(pi)] == [2, 3]  # a missed one is not a play

    # A restart never considers it again; a shorter window is a setting.
    caplog.clear()
    run_until(pi, FakeTime(local(MONDAY, "08:41"), until=local(MONDAY, "08:45")))
    assert "missed" not in caplog.text and pi.played() == [shas[2], shas[3]]
    (tmp_path / "other").mkdir()
    other = Pi(tmp_path / "other", dead_url, "t")
    other_shas = bundle_on_disk(other, [phrase(1, ["08:00"])])
    run_until(other, FakeTime(local(MONDAY, "08:03"), until=local(MONDAY, "08:04")), catch_up_minutes=2.0)
    assert other.played() == [] and played_log(other)["1:2027-06-07:08:00"]["state"] == "missed"
    run_until(other, FakeTime(local(MONDAY, "08:02"), until=local(MONDAY, "08:03")), catch_up_minutes=5.0)
    assert other.played() == [] and other_shas[1] not in other.played()  # marked: a wider window does not revive it


def test_clock_jumps_back_never_replay_and_forward_follow_the_same_rules(tmp_path, dead_url):
    pi = Pi(tmp_path, dead_url, "t")
    shas = bundle_on_disk(pi, [phrase(1, ["08:00"]), phrase(2, ["08:30"]), phrase(3, ["09:00"])])
    clock = FakeTime(local(MONDAY, "07:59"), until=local(MONDAY, "09:05"), jumps=[
        (local(MONDAY, "08:01"), local(MONDAY, "07:58")),  # back 3 minutes, through 08:00 again
        (local(MONDAY, "08:05"), local(MONDAY, "09:04")),  # forward an hour: 08:30 missed, 09:00 in the window
    ])
    run_until(pi, clock)
    assert pi.played() == [shas[1], shas[3]]
    states = {k: v["state"] for k, v in played_log(pi).items() if "2027-06-07" in k}  # yesterday's: missed
    assert states == {"1:2027-06-07:08:00": "played", "2:2027-06-07:08:30": "missed", "3:2027-06-07:09:00": "played"}
    # Restarted with the clock an hour and more behind (a Pi without a battery clock boots at
    # its last shutdown time, until NTP answers): nothing replays.
    run_until(pi, FakeTime(local(MONDAY, "07:50"), until=local(MONDAY, "09:10")))
    assert pi.played() == [shas[1], shas[3]]


def test_daylight_saving_spring_forward_plays_at_the_jump_and_fall_back_plays_once(tmp_path, dead_url):
    pi = Pi(tmp_path, dead_url, "t")
    shas = bundle_on_disk(pi, [phrase(1, ["02:30"]), phrase(2, ["01:30"])])

    run_until(pi, FakeTime(dt.datetime(2027, 3, 14, 6, 25, tzinfo=UTC), until=dt.datetime(2027, 3, 14, 7, 20,
                                                                                        tzinfo=UTC)),
              zone="America/New_York")
    assert pi.played() == [shas[2], shas[1]]
    plays = {r.phrase_id: r.played_at for r in pending(pi)}
    assert plays == {2: "2027-03-14T06:30:00+00:00",  # 01:30 EST
                     1: "2027-03-14T07:00:00+00:00"}  # 02:30 does not exist: 03:00 EDT, the jump

    # Fall back: 01:00-02:00 happens twice; 01:30 plays at the first (EDT), not the second (EST).
    run_until(pi, FakeTime(dt.datetime(2027, 11, 7, 5, 0, tzinfo=UTC), until=dt.datetime(2027, 11, 7, 7, 10,
                                                                                       tzinfo=UTC)),
              zone="America/New_York")
    assert pi.played() == [shas[2], shas[1], shas[2]]
    fall = [r for r in pending(pi) if "2027-11-07" in r.key]
    assert [(r.phrase_id, r.played_at) for r in fall] == [(2, "2027-11-07T05:30:00+00:00")]


def test_no_clip_speaks_with_the_fallback_voice_and_without_one_fails(tmp_path, dead_url, caplog):
    caplog.set_level(logging.INFO, logger="carepill_voice")
    pi = Pi(tmp_path, dead_url, "t")
    shas = bundle_on_disk(pi, [phrase(1, ["08:00"], clip=False), phrase(2, ["08:01"], server=dead_url)])
    (pi.cache / "clips" / f"{shas[2]}.wav").unlink()  # lost; the server that has it is down
    run_until(pi, FakeTime(local(MONDAY, "07:59"), until=local(MONDAY, "08:02")))
    assert pi.played() == [] and pi.spoken() == ["en|reminder 1", "en|reminder 2"]
    assert [(r.outcome, r.source) for r in pending(pi)] == [("fallback", "fallback")] * 2

    (tmp_path / "silent").mkdir()
    silent = Pi(tmp_path / "silent", dead_url, "t")
    bundle_on_disk(silent, [phrase(1, ["08:00"], clip=False)])
    run_until(silent, FakeTime(local(MONDAY, "07:59"), until=local(MONDAY, "08:02")), fallback_tts="")
    assert [(r.outcome, r.source) for r in pending(silent)] == [("failed", "fallback")]
    assert played_log(silent)["1:2027-06-07:08:00"]["state"] == "failed"
    assert "nothing could be spoken" in caplog.text


def test_only_one_runner_per_cache_directory(tmp_path, dead_url):
    pi = Pi(tmp_path, dead_url, "t")
    bundle_on_disk(pi, [])
    pi.cache.mkdir(parents=True, exist_ok=True)
    with open(pi.cache / "run.lock", "a+b") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running `carepill-voice run` holds it
        with pytest.raises(AlreadyRunning):
            run_until(pi, FakeTime(local(MONDAY, "07:59"), until=local(MONDAY, "08:00")))
    run_until(pi, FakeTime(local(MONDAY, "07:59"), until=local(MONDAY, "08:00")))  # free again


def test_the_sleeper_wakes_early():
    sleeper = PipeSleeper()

    def an_hour_ends(wake_first: bool) -> bool:
        done = threading.Event()

        def sleep_an_hour() -> None:
            sleeper.sleep(3600)
            done.set()

        if wake_first:  # a wake just before the sleep (a signal between the loop's check and its sleep)
            sleeper.wake()
        thread = threading.Thread(target=sleep_an_hour, daemon=True)
        thread.start()
        if not wake_first:
            sleeper.wake()
        thread.join(timeout=120)  # an hour's sleep that ended was woken, however fast that was
        return done.is_set()

    assert an_hour_ends(wake_first=False)
    assert an_hour_ends(wake_first=True)
    sleeper.close()


# --- the journal and the install id -----------------------------------------------------------


def test_journal_writes_are_atomic_and_old_keys_are_pruned(tmp_path, monkeypatch):
    log = PlayedLog(tmp_path)
    at = dt.datetime(2027, 6, 7, 8, tzinfo=UTC)
    log.mark("1:2027-06-07:08:00", "playing", at)
    assert json.loads((tmp_path / "played.json").read_text()) == {
        "1:2027-06-07:08:00": {"state": "playing", "at": "2027-06-07T08:00:00+00:00"}}

    # A power cut between the fsync and the rename (os.replace never runs): the old file
    # stays whole, and no temp file is left to confuse the next start.
    def power_cut(src: str, dst: str) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(cache_module.os, "replace", power_cut)
    with pytest.raises(OSError, match="power cut"):
        log.mark("1:2027-06-07:08:00", "played", at)
    with pytest.raises(OSError, match="power cut"):
        ReportJournal(tmp_path).add(Report(1, at.isoformat(), "played", "cache", "abc:1:2027-06-07:08:00"))
    monkeypatch.undo()
    assert PlayedLog(tmp_path).get("1:2027-06-07:08:00") == {"state": "playing", "at": "2027-06-07T08:00:00+00:00"}
    assert [p.name for p in tmp_path.rglob(".tmp-*")] == []
    assert ReportJournal(tmp_path).pending() == []

    # Kept KEEP_DAYS local days, then pruned; a key that does not parse is kept (never guess).
    today = dt.date(2027, 6, 20)
    for days_ago in (0, KEEP_DAYS, KEEP_DAYS + 1, 30):
        log.mark(f"2:{today - dt.timedelta(days=days_ago)}:08:00", "played", at)
    log.mark("odd-key", "played", at)
    assert log.prune(today) == 3  # 8, 30 days old, and the 2027-06-07 one (13 days)
    assert sorted(PlayedLog(tmp_path).keys()) == ["2:2027-06-13:08:00", "2:2027-06-20:08:00", "odd-key"]


def test_report_journal_files(tmp_path, caplog):
    journal = ReportJournal(tmp_path)
    first = Report(3, "2027-06-07T08:00:05+00:00", "played", "cache", "abcd1234abcd1234:3:2027-06-07:08:00")
    later = Report(4, "2027-06-07T09:00:00+00:00", "fallback", "fallback", "abcd1234abcd1234:4:2027-06-07:09:00")
    journal.add(later)
    journal.add(first)
    journal.add(first)  # the same key again: still one file
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == [
        "abcd1234abcd1234_3_2027-06-07_08_00.json", "abcd1234abcd1234_4_2027-06-07_09_00.json"]
    assert journal.pending() == [first, later]
    (tmp_path / "reports" / ".tmp-half").write_text("{")  # a temp file from a cut write
    (tmp_path / "reports" / "garbage.json").write_text("{not json")
    assert journal.pending() == [first, later]
    assert not (tmp_path / "reports" / "garbage.json").exists() and "garbage.json unreadable" in caplog.text
    journal.remove(first)
    assert journal.pending() == [later]
    with pytest.raises(ValueError):
        journal.add(Report(1, "x", "played", "cache", "bad key/../x"))


def test_install_id_is_made_once_and_differs_per_installation(tmp_path):
    made = install_id(tmp_path / "a")
    assert re.fullmatch(r"[0-9a-f]{16}", made)
    assert install_id(tmp_path / "a") == made == (tmp_path / "a" / "install_id").read_text().strip()
    assert install_id(tmp_path / "b") != made
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "install_id").write_text("not an id\n")
    replaced = install_id(tmp_path / "c")
    assert re.fullmatch(r"[0-9a-f]{16}", replaced) and install_id(tmp_path / "c") == replaced
    occurrence = schedule.Occurrence(12, dt.date(2027, 6, 7), "08:00", dt.datetime(2027, 6, 6, 23, tzinfo=UTC))
    key = report_key(made, occurrence)
    assert key == f"{made}:12:2027-06-07:08:00"
    assert re.fullmatch(r"[A-Za-z0-9:._-]{1,200}", key)  # the server's rule


# --- reports: what each answer means -------------------------------------------------------


class StatusServer(LoopbackServer):
    """Answers POST .../phrases/<id>/plays/ with the status `statuses[id]`, and records the requests."""

    def __init__(self, statuses: dict[int, int]) -> None:
        self.statuses = statuses
        self.requests: list[tuple[str, dict, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((self.path, body, self.headers.get("Authorization", "")))
                match = re.fullmatch(r"/api/tts/phrases/(\d+)/plays/", self.path)
                status = outer.statuses.get(int(match.group(1)), 404) if match else 404
                payload = json.dumps({"code": "x", "message": f"status {status}"}).encode()
                self.send_response(status)
                if status == 301:
                    self.send_header("Location", "/elsewhere/")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.serve(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def status_server():
    server = StatusServer({})
    yield server
    server.stop()


def test_report_answers_decide_what_the_journal_keeps(tmp_path, status_server, dead_url, caplog):
    rules = {201: Delivery.SENT, 200: Delivery.SENT, 400: Delivery.DROPPED, 404: Delivery.DROPPED,
             403: Delivery.DROPPED, 401: Delivery.KEPT, 408: Delivery.KEPT, 429: Delivery.KEPT, 500: Delivery.KEPT,
             503: Delivery.KEPT, 301: Delivery.KEPT}
    status_server.statuses.update({status: status for status in rules})  # phrase id N answers HTTP N
    pi = Pi(tmp_path, status_server.url, "device-token")
    client = Client(pi.config())
    for status, expected in rules.items():
        report = Report(status, "2027-06-07T08:00:00+00:00", "played", "cache", f"id:{status}:2027-06-07:08:00")
        assert client.report_send(report).delivery is expected, status
    path, body, auth = status_server.requests[0]
    assert path == "/api/tts/phrases/201/plays/" and auth == "Token device-token"
    assert body == {"played_at": "2027-06-07T08:00:00+00:00", "outcome": "played", "source": "cache",
                    "key": "id:201:2027-06-07:08:00"}
    assert len(status_server.requests) == len(rules)  # the 301 was not followed
    assert Client(pi.config(server_url=dead_url)).report_send(report).delivery is Delivery.KEPT

    # The runner: oldest first; stored and refused ones leave the journal; at the first that
    # must wait it stops (the server is struggling); the next round sends the rest.
    caplog.set_level(logging.INFO, logger="carepill_voice")
    bundle_on_disk(pi, [])
    journal = ReportJournal(pi.cache)
    for minute, phrase_id in enumerate((201, 404, 503, 200)):
        journal.add(Report(phrase_id, f"2027-06-07T08:0{minute}:00+00:00", "played", "cache",
                           f"id:{phrase_id}:2027-06-07:08:00"))
    runner = Runner(pi.config(timezone="Asia/Seoul"), clock=lambda: local(MONDAY, "08:10"), sleeper=PipeSleeper())
    assert runner.send_reports() == 2
    assert [r.phrase_id for r in journal.pending()] == [503, 200]
    assert "dropped, the server refused it: HTTP 404" in caplog.text
    assert "kept for the next try: POST /api/tts/phrases/503/plays/: HTTP 503" in caplog.text
    status_server.statuses[503] = 201
    assert runner.send_reports() == 2 and journal.pending() == []


def test_run_settings_from_the_environment(tmp_path):
    config = load_config(tmp_path / "none.ini", env={})
    assert (config.sync_minutes, config.catch_up_minutes, config.timezone) == (30.0, 10.0, "")
    config = load_config(tmp_path / "none.ini", env={"CAREPILL_SYNC_MINUTES": "5", "CAREPILL_CATCH_UP_MINUTES": "2.5",
                                                      "CAREPILL_TIMEZONE": "Asia/Seoul"})
    assert (config.sync_minutes, config.catch_up_minutes, config.timezone) == (5.0, 2.5, "Asia/Seoul")
    ini = tmp_path / "config.ini"
    ini.write_text("[carepill]\ntimezone = Mars/Olympus_Mons\n")
    with pytest.raises(ConfigError, match="not a known IANA zone"):
        load_config(ini, env={})
    for name, bad in (("SYNC_MINUTES", "0"), ("SYNC_MINUTES", "nan"), ("CATCH_UP_MINUTES", "0.5")):
        with pytest.raises(ConfigError, match=name.lower()):
            load_config(tmp_path / "none.ini", env={f"CAREPILL_{name}": bad})
    bad = Pi(tmp_path, "http://127.0.0.1:9", "t").run("run", CAREPILL_TIMEZONE="Nowhere/Land")
    assert bad.returncode == 2 and "configuration error" in bad.stderr


def test_cli_run_stops_on_sigterm_before_any_reminder(tmp_path, dead_url):
    pi = Pi(tmp_path, dead_url, "t")
    bundle_on_disk(pi, [phrase(1, ["08:00"])])
    log = tmp_path / "run.log"
    proc = pi.start_run(log, CAREPILL_TIMEZONE="Asia/Seoul")
    try:
        wait_for_text(log, "sync: failed", proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "run: stopped" in log.read_text()


def test_a_crash_in_the_middle_of_a_play_never_replays_it(tmp_path, dead_url):
    pi = Pi(tmp_path, dead_url, "t")
    # Due a minute ago on the real clock: within the catch-up window, so it plays at start.
    due = (dt.datetime.now(UTC) - dt.timedelta(minutes=1)).strftime("%H:%M")
    bundle_on_disk(pi, [phrase(1, [due])])
    crashing = tmp_path / "crashing-player.sh"
    crashing.write_text('#!/bin/sh\nkill -9 $PPID\nsleep 1\n')  # the power goes mid-play
    crashing.chmod(0o755)
    env = {**pi.env, "CAREPILL_TIMEZONE": "UTC"}
    died = subprocess.run([CLI, "run"], env={**env, "CAREPILL_PLAYER": str(crashing)}, capture_output=True, text=True,
                          timeout=120)
    assert died.returncode == -signal.SIGKILL, died.stderr
    [(key, entry)] = played_log(pi).items()
    assert entry["state"] == "playing"  # written before the player started

    log = tmp_path / "run.log"
    proc = pi.start_run(log, CAREPILL_TIMEZONE="UTC")
    try:
        wait_for_text(log, f"{key}: interrupted during an earlier play", proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert pi.played() == [] and played_log(pi)[key]["state"] == "playing"
    assert pending(pi) == []  # no report for a play that never finished


def wait_for_text(path: Path, text: str, proc, *, timeout: float = 60.0, count: int = 1) -> str:
    """Wait until the file holds `text` `count` times (a process's log), failing if the process ends."""
    deadline = time.monotonic() + timeout
    while True:
        content = path.read_text(errors="replace") if path.exists() else ""
        if content.count(text) >= count:
            return content
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{text!r} x{count} not in the log (exit {proc.poll()}):\n{content[-4000:]}")
        time.sleep(0.1)
