"""`carepill-voice run` repeats a reminder nobody confirmed, and tells the server it is alive.

With the fake clock and sleeper of tests/test_pi_schedule.py (a sleep moves the clock) and the
recording player of tests/test_pi_client.py: the instants of each play (the played log's "at"),
the window from the bundle's dose_alert_minutes, a confirmation between plays, restarts that
decide from the files on disk, a late start, a crash mid-repeat, a failed play; and the
heartbeat against a real HTTP stand-in on 127.0.0.1 that records the fake time of each call.
The server is a closed port wherever one is not needed."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

import pytest
from carepill_voice import confirm
from carepill_voice.cache import Cache
from carepill_voice.journal import ConfirmationJournal, PlayedLog

from tests import test_pi_client
from tests.loopback import LoopbackServer
from tests.test_pi_client import Pi
from tests.test_pi_schedule import (
    MONDAY,
    SEOUL,
    FakeTime,
    bundle_on_disk,
    local,
    pending,
    phrase,
    played_log,
    run_until,
)

UTC = dt.UTC
dead_url = test_pi_client.dead_url
KEY = "1:2027-06-07:08:00"


class Timeline(FakeTime):
    """FakeTime that also runs `actions` (instant, callable) once the clock reaches each instant,
    between two wakes of the runner, as another process or a button press would."""

    def __init__(self, start: dt.datetime, until: dt.datetime,
                 actions: list[tuple[dt.datetime, Callable[[], object]]] | None = None) -> None:
        super().__init__(start, until)
        self.actions = sorted(actions or [], key=lambda action: action[0])
        self.done: list[tuple[dt.datetime, object]] = []

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        while self.actions and self.now >= self.actions[0][0]:
            self.done.append((self.now, self.actions.pop(0)[1]()))


def with_window(pi: Pi, minutes: int | None) -> None:
    """Give the cached bundle a dose_alert_minutes (None: the bundle has none)."""
    cache = Cache(pi.cache)
    saved = cache.bundle()
    body = {k: v for k, v in saved["body"].items() if k != "dose_alert_minutes"}
    if minutes is not None:
        body["dose_alert_minutes"] = minutes
    cache.bundle_save(body=body, etag=saved["etag"])


def plays_at(pi: Pi) -> dict[str, tuple[str, str]]:
    """Played-log key -> (state, local HH:MM:SS in Seoul) of every play."""
    return {key: (entry["state"], dt.datetime.fromisoformat(entry["at"]).astimezone(SEOUL).strftime("%H:%M:%S"))
            for key, entry in played_log(pi).items() if "2027-06-07" in key}


def confirm_now(pi: Pi, clock: FakeTime) -> Callable[[], object]:
    """What `carepill-voice confirm` does to the files, at the fake clock's time."""
    return lambda: confirm.confirm_waiting(pi.cache, SEOUL, clock.now, by="confirm")[0]


def test_an_unconfirmed_reminder_plays_1_plus_repeat_times_times_and_a_restart_goes_on_from_disk(tmp_path, dead_url):
    pi = Pi(tmp_path, dead_url, "t")
    shas = bundle_on_disk(pi, [phrase(1, ["08:00"])])
    settings = {"repeat_minutes": 5.0, "repeat_times": 2}

    # Stopped (a restart) between the first repeat and the second.
    first = FakeTime(local(MONDAY, "07:59", seconds=40), until=local(MONDAY, "08:07"))
    runner = run_until(pi, first, **settings)
    assert local(MONDAY, "08:05") in first.wakes  # woken at the repeat's instant
    run_until(pi, FakeTime(local(MONDAY, "08:07"), until=local(MONDAY, "08:40")), **settings)

    assert pi.played() == [shas[1]] * 3
    assert plays_at(pi) == {KEY: ("played", "08:00:00"), f"{KEY}:r1": ("played", "08:05:00"),
                            f"{KEY}:r2": ("played", "08:10:00")}
    reports = pending(pi)  # the server is down: all three wait, each with the occurrence it belongs to
    assert [(r.key, r.played_at) for r in reports] == [
        (f"{runner.install_id}:{KEY}", "2027-06-06T23:00:00+00:00"),
        (f"{runner.install_id}:{KEY}:r1", "2027-06-06T23:05:00+00:00"),
        (f"{runner.install_id}:{KEY}:r2", "2027-06-06T23:10:00+00:00")]
    assert {(r.scheduled_date, r.scheduled_time) for r in reports} == {("2027-06-07", "08:00")}
    assert reports[1].body() == {"played_at": "2027-06-06T23:05:00+00:00", "outcome": "played", "source": "cache",
                                 "key": f"{runner.install_id}:{KEY}:r1", "scheduled_date": "2027-06-07",
                                 "scheduled_time": "08:00"}

    # repeat_times = 0: never repeated.
    (tmp_path / "once").mkdir()
    once = Pi(tmp_path / "once", dead_url, "t")
    bundle_on_disk(once, [phrase(1, ["08:00"])])
    run_until(once, FakeTime(local(MONDAY, "07:59"), until=local(MONDAY, "08:40")), repeat_times=0)
    assert list(plays_at(once)) == [KEY] and len(once.played()) == 1


@pytest.mark.parametrize(("window", "expected"), [
    (None, ["08:00:00", "08:05:00", "08:10:00", "08:15:00", "08:20:00", "08:25:00"]),  # 30 by default: not 08:30
    (12, ["08:00:00", "08:05:00", "08:10:00"]),
    (10, ["08:00:00", "08:05:00"]),  # due + window is closed already: 08:10 is not inside
])
def test_repeats_only_inside_the_confirmation_window_of_the_bundle(tmp_path, dead_url, window, expected):
    pi = Pi(tmp_path, dead_url, "t")
    bundle_on_disk(pi, [phrase(1, ["08:00"])])
    with_window(pi, window)
    run_until(pi, FakeTime(local(MONDAY, "07:59"), until=local(MONDAY, "09:00")), repeat_minutes=5.0,
              repeat_times=8)
    assert sorted(at for _, at in plays_at(pi).values()) == expected
    assert len(pi.played()) == len(expected)


def test_a_confirmation_between_plays_stops_the_rest_and_a_restart_never_repeats_it(tmp_path, dead_url, caplog):
    caplog.set_level(logging.INFO, logger="carepill_voice")
    pi = Pi(tmp_path, dead_url, "t")
    shas = bundle_on_disk(pi, [phrase(1, ["08:00"]), phrase(2, ["08:01"])])
    settings = {"repeat_minutes": 5.0, "repeat_times": 3}
    clock = Timeline(local(MONDAY, "07:59"), until=local(MONDAY, "08:08"))
    clock.actions.append((local(MONDAY, "08:05", seconds=30), confirm_now(pi, clock)))
    run_until(pi, clock, **settings)
    [(when, made)] = clock.done
    # The one heard last: phrase 1's repeat at 08:05 came after phrase 2's first play at 08:01.
    assert (made.phrase_id, made.scheduled_time) == (1, "08:00")
    assert made.confirmed_at == when.isoformat(timespec="seconds")

    # Restarted: phrase 1 is never repeated again; phrase 2, not confirmed, goes on.
    run_until(pi, FakeTime(local(MONDAY, "08:08"), until=local(MONDAY, "08:40")), **settings)
    two = "2:2027-06-07:08:01"
    assert plays_at(pi) == {KEY: ("played", "08:00:00"), f"{KEY}:r1": ("played", "08:05:00"),
                            two: ("played", "08:01:00"), f"{two}:r1": ("played", "08:06:00"),
                            f"{two}:r2": ("played", "08:11:00"), f"{two}:r3": ("played", "08:16:00")}
    assert pi.played() == [shas[1], shas[2], shas[1], shas[2], shas[2], shas[2]]
    assert caplog.text.count(f"{KEY}: confirmed, not repeated") == 1  # once, at 08:10, by the restarted run
    assert [c.key.split(":", 1)[1] for c in ConfirmationJournal(pi.cache).pending()] == [f"{KEY}:confirm"]


def test_a_late_start_skips_a_repeat_due_too_soon_and_a_crash_mid_repeat_never_replays_it(tmp_path, dead_url):
    pi = Pi(tmp_path, dead_url, "t")
    bundle_on_disk(pi, [phrase(1, ["08:00"]), phrase(2, ["09:00"])])
    settings = {"repeat_minutes": 5.0, "repeat_times": 2}
    # Power back at 08:04: the first play is 4 min late; its repeat due at 08:05 would follow a
    # minute after it: skipped; the one at 08:10 plays.
    run_until(pi, FakeTime(local(MONDAY, "08:04"), until=local(MONDAY, "08:30")), **settings)
    assert plays_at(pi)[KEY] == ("played", "08:04:00")
    assert plays_at(pi)[f"{KEY}:r1"][0] == "skipped" and plays_at(pi)[f"{KEY}:r2"] == ("played", "08:10:00")
    assert len(pi.played()) == 2

    # 09:00's first repeat was being played when the power went (as run marks it: "playing").
    log = PlayedLog(pi.cache)
    log.mark("2:2027-06-07:09:00", "played", local(MONDAY, "09:00"))
    log.mark("2:2027-06-07:09:00:r1", "playing", local(MONDAY, "09:05"))
    run_until(pi, FakeTime(local(MONDAY, "09:06"), until=local(MONDAY, "09:30")), **settings)
    assert plays_at(pi)["2:2027-06-07:09:00:r1"] == ("playing", "09:05:00")  # not replayed
    assert plays_at(pi)["2:2027-06-07:09:00:r2"] == ("played", "09:10:00")
    assert len(pi.played()) == 3


def test_a_failed_play_is_repeated_and_a_missed_one_is_not(tmp_path, dead_url):
    pi = Pi(tmp_path, dead_url, "t")
    bundle_on_disk(pi, [phrase(1, ["08:00"], clip=False), phrase(2, ["06:00"])])
    # No clip and no fallback voice: nothing can be spoken. Started at 08:00; 06:00 was missed.
    run_until(pi, FakeTime(local(MONDAY, "07:59"), until=local(MONDAY, "08:40")), fallback_tts="",
              repeat_minutes=5.0, repeat_times=2)
    states = plays_at(pi)
    assert {k: v[0] for k, v in states.items()} == {KEY: "failed", f"{KEY}:r1": "failed", f"{KEY}:r2": "failed",
                                                   "2:2027-06-07:06:00": "missed"}
    assert [(r.outcome, r.key.split(":", 1)[1]) for r in pending(pi)] == [
        ("failed", KEY), ("failed", f"{KEY}:r1"), ("failed", f"{KEY}:r2")]


def test_the_played_log_prunes_old_repeats_and_old_confirmation_marks(tmp_path, dead_url):
    pi = Pi(tmp_path, dead_url, "t")
    bundle_on_disk(pi, [])
    old = MONDAY - dt.timedelta(days=30)
    log = PlayedLog(pi.cache)
    log.mark(f"1:{old}:08:00", "played", local(old, "08:00"))
    log.mark(f"1:{old}:08:00:r1", "played", local(old, "08:05"))
    log.mark(f"1:{MONDAY}:08:00:r1", "played", local(MONDAY, "08:05"))
    confirm.ConfirmedMarks(pi.cache).mark(f"1:{old}:08:00", local(old, "08:06"), "confirm")
    confirm.ConfirmedMarks(pi.cache).mark(f"1:{MONDAY}:08:00", local(MONDAY, "08:06"), "confirm")
    run_until(pi, FakeTime(local(MONDAY, "09:00"), until=local(MONDAY, "09:01")))
    assert list(played_log(pi)) == [f"1:{MONDAY}:08:00:r1"]
    assert sorted(p.name for p in (pi.cache / "confirmed").iterdir()) == [f"1_{MONDAY}_08_00.json"]


# --- the button (gpiozero) ------------------------------------------------------------------

# A stand-in for gpiozero's Button: this machine has no GPIO. Like gpiozero, it calls
# when_pressed on a thread of its own.
GPIOZERO_STAND_IN = '''
import threading

made = []


class Button:
    def __init__(self, pin, *, pull_up=True, bounce_time=None):
        self.pin, self.pull_up, self.bounce_time = pin, pull_up, bounce_time
        self.when_pressed = None
        self.closed = False
        made.append(self)

    def press(self):
        thread = threading.Thread(target=self.when_pressed)
        thread.start()
        thread.join()

    def close(self):
        self.closed = True
'''


@pytest.fixture
def gpiozero_stand_in(tmp_path, monkeypatch):
    folder = tmp_path / "stand-in"
    folder.mkdir()
    (folder / "gpiozero.py").write_text(GPIOZERO_STAND_IN)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "gpiozero", raising=False)
    import gpiozero

    yield gpiozero
    monkeypatch.delitem(sys.modules, "gpiozero", raising=False)


def test_the_button_confirms_the_reminder_just_heard_inside_run(tmp_path, dead_url, gpiozero_stand_in, caplog):
    caplog.set_level(logging.INFO, logger="carepill_voice")
    pi = Pi(tmp_path, dead_url, "t")
    bundle_on_disk(pi, [phrase(1, ["08:00"])])
    clock = Timeline(local(MONDAY, "07:59"), until=local(MONDAY, "08:30"))
    press = lambda: gpiozero_stand_in.made[0].press()  # noqa: E731
    clock.actions += [(local(MONDAY, "07:59", seconds=30), press),  # nothing heard yet
                      (local(MONDAY, "08:06"), press), (local(MONDAY, "08:07"), press)]
    run_until(pi, clock, button_pin=17, repeat_minutes=5.0, repeat_times=3)

    [button] = gpiozero_stand_in.made
    assert (button.pin, button.pull_up, button.closed) == (17, True, True)
    assert sorted(plays_at(pi)) == [KEY, f"{KEY}:r1"]  # 08:10 and 08:15 never played
    assert caplog.text.count("button: pressed, no reminder is waiting") == 2  # before 08:00, and the second press
    assert "already confirmed" in caplog.text and "button: confirmed phrase 1 of 2027-06-07 08:00" in caplog.text
    mark = json.loads((pi.cache / "confirmed" / "1_2027-06-07_08_00.json").read_text())
    assert mark == {"key": KEY, "at": local(MONDAY, "08:06").isoformat(), "by": "button"}
    [made] = ConfirmationJournal(pi.cache).pending()  # the server is down: kept for later
    assert (made.phrase_id, made.scheduled_date, made.scheduled_time) == (1, "2027-06-07", "08:00")


def test_a_button_pin_without_gpiozero_warns_once_and_changes_nothing_else(tmp_path, dead_url, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="carepill_voice")
    monkeypatch.setitem(sys.modules, "gpiozero", None)  # not installed: `import gpiozero` raises ImportError
    pi = Pi(tmp_path, dead_url, "t")
    bundle_on_disk(pi, [phrase(1, ["08:00"])])
    run_until(pi, FakeTime(local(MONDAY, "07:59"), until=local(MONDAY, "08:20")), button_pin=17,
              repeat_minutes=5.0, repeat_times=1)
    assert caplog.text.count("button_pin = 17 but gpiozero is not installed") == 1
    assert sorted(plays_at(pi)) == [KEY, f"{KEY}:r1"]


# --- the heartbeat --------------------------------------------------------------------------


class FakeServer(LoopbackServer):
    """The Pi's routes on 127.0.0.1: the bundle (304, the cached one is current), play reports and
    confirmations (201, or the statuses queued in `confirmation_statuses`), the heartbeat (200, or
    503 while `heartbeat_down(clock.now)`). Records each request with the fake clock's time."""

    def __init__(self, clock: FakeTime, pi: Pi) -> None:
        self.clock, self.pi = clock, pi
        self.requests: list[dict] = []
        self.heartbeat_down: Callable[[dt.datetime], bool] = lambda now: False
        self.zone_at: Callable[[dt.datetime], str] = lambda now: "Asia/Seoul"
        self.confirmation_statuses: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: dict | None = None) -> None:
                payload = json.dumps(body or {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                outer.requests.append({"method": "GET", "path": self.path, "at": outer.clock.now})
                if self.path.startswith("/api/tts/phrases/bundle/"):
                    self.send_response(304)
                    self.end_headers()
                else:
                    self._answer(404)

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                now = outer.clock.now
                outer.requests.append({"method": "POST", "path": self.path, "body": body, "at": now,
                                       "plays_so_far": len(outer.pi.played()),
                                       "auth": self.headers.get("Authorization")})
                if self.path == "/api/tts/devices/heartbeat/":
                    if outer.heartbeat_down(now):
                        self._answer(503)
                    else:
                        zone = outer.zone_at(now)
                        self._answer(200, {"received_at": now.isoformat(), "timezone": zone,
                                           "timezone_mismatch": zone != body.get("timezone")})
                elif self.path == "/api/tts/doses/confirmations/":
                    self._answer(outer.confirmation_statuses.pop(0) if outer.confirmation_statuses else 201,
                                 {"id": 1})
                elif re.fullmatch(r"/api/tts/phrases/\d+/plays/", self.path):
                    self._answer(201, {"dose_id": None})
                else:
                    self._answer(404)

            def log_message(self, *args: object) -> None:
                pass

        self.serve(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def posts(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == "POST" and r["path"] == path]


def test_heartbeat_every_minute_after_each_sync_never_before_a_due_play(tmp_path, fake_server, caplog):
    caplog.set_level(logging.INFO, logger="carepill_voice")
    start = local(MONDAY, "07:57", seconds=40)
    clock = FakeTime(start, until=local(MONDAY, "08:12"))
    pi = Pi(tmp_path, "http://unused", "device-token")
    server = fake_server(clock, pi)
    bundle_on_disk(pi, [phrase(1, ["08:00"])])
    # Down from 08:03 to 08:05 (503), then answering with another household zone from 08:08 on.
    server.heartbeat_down = lambda now: local(MONDAY, "08:03") <= now < local(MONDAY, "08:05")
    server.zone_at = lambda now: "Europe/London" if now >= local(MONDAY, "08:08") else "Asia/Seoul"
    run_until(pi, clock, server_url=server.url, sync_minutes=5.0)

    beats = server.posts("/api/tts/devices/heartbeat/")
    assert {json.dumps(b["body"]) for b in beats} == {'{"timezone": "Asia/Seoul"}'}
    assert {b["auth"] for b in beats} == {"Token device-token"}
    instants = [b["at"] for b in beats]
    assert instants[0] == start and max(b - a for a, b in zip(instants, instants[1:], strict=False)) <= dt.timedelta(
        seconds=60)
    # Right after each sync (at start, then every 5 minutes).
    syncs = [r["at"] for r in server.requests if r["method"] == "GET"]
    assert syncs == [start + dt.timedelta(minutes=5 * n) for n in range(3)] and set(syncs) <= set(instants)
    # 07:59:55 would be 5 s before the 08:00 reminder (the guard is 2 x timeout + 1 = 5 s): the
    # play first, then the heartbeat, which saw the play already done.
    assert not [t for t in instants if local(MONDAY, "07:59", seconds=50) < t < local(MONDAY, "08:00")]
    [at_due] = [b for b in beats if b["at"] == local(MONDAY, "08:00")]
    assert at_due["plays_so_far"] == 1
    # Failures logged once per outage; the recovery once; a zone mismatch once.
    assert caplog.text.count("heartbeat: not heard by the server (POST /api/tts/devices/heartbeat/: HTTP 503") == 1
    assert caplog.text.count("heartbeat: heard by the server again") == 1
    assert caplog.text.count("the server's household zone is Europe/London") == 1
    assert any(local(MONDAY, "08:03") <= t < local(MONDAY, "08:05") for t in instants)  # it kept trying
