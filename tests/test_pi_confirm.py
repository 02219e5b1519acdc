"""`carepill-voice confirm`: the senior says "heard it, took it", and the repeats stop.

Offline, with the real console script in subprocesses (exit statuses, the files it writes and
the one it must not, waking a running `run`, never signalling a stranger), the fake clock of
tests/test_pi_schedule.py for what the runner then does, and a real HTTP stand-in on 127.0.0.1
(tests/test_pi_repeat.py's FakeServer) that records what arrives. Then against the real
server: a private stack (gunicorn + worker, tests/stack.py) with the console scripts `run` and
`confirm` as the Pi runs them, the web stopped and started again in between."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import zoneinfo

import pytest
from carepill_voice import confirm
from carepill_voice.client import Client, Delivery, Outcome
from carepill_voice.config import ConfigError, load_config
from carepill_voice.journal import (
    Confirmation,
    ConfirmationJournal,
    ConfirmedMarks,
    PlayedLog,
    Report,
    ReportJournal,
)

from tests import test_pi_client
from tests.stack import ServiceStack, StackClient
from tests.test_pi_client import Pi
from tests.test_pi_repeat import KEY, plays_at, with_window
from tests.test_pi_schedule import MONDAY, SEOUL, FakeTime, bundle_on_disk, local, phrase, run_until, wait_for_text

UTC = dt.UTC
dead_url = test_pi_client.dead_url


def minutes_ago(minutes: float) -> dt.datetime:
    """A due instant (a whole minute, UTC) that many minutes before now on the real clock."""
    return (dt.datetime.now(UTC) - dt.timedelta(minutes=minutes)).replace(second=0, microsecond=0)


def played_key(phrase_id: int, due: dt.datetime) -> str:
    return f"{phrase_id}:{due.date().isoformat()}:{due.strftime('%H:%M')}"


# --- which reminder is waiting -------------------------------------------------------------


def test_the_waiting_reminder_is_the_one_heard_last_unconfirmed_inside_its_window(tmp_path):
    log, marks = PlayedLog(tmp_path), ConfirmedMarks(tmp_path)
    now = local(MONDAY, "08:20")
    window = dt.timedelta(minutes=30)

    def waiting() -> str | None:
        heard, _ = confirm.waiting(PlayedLog(tmp_path), marks, SEOUL, now, window)
        return heard.key if heard else None

    assert confirm.waiting(log, marks, SEOUL, now, window) == (None, "nothing was heard within the last 30 min "
                                                                     "(the window)")
    log.mark("1:2027-06-07:07:45", "played", local(MONDAY, "07:45"))  # its window closed at 08:15
    assert waiting() is None
    log.mark("2:2027-06-07:08:00", "played", local(MONDAY, "08:00"))
    log.mark("3:2027-06-07:08:05", "fallback", local(MONDAY, "08:05"))
    assert waiting() == "3:2027-06-07:08:05"
    log.mark("2:2027-06-07:08:00:r1", "played", local(MONDAY, "08:10"))  # its repeat was heard last
    assert waiting() == "2:2027-06-07:08:00"
    log.mark("4:2027-06-07:08:12", "failed", local(MONDAY, "08:12"))  # nothing was heard: nothing to confirm
    log.mark("5:2027-06-07:08:13", "missed", local(MONDAY, "08:13"))
    assert waiting() == "2:2027-06-07:08:00"
    marks.mark("2:2027-06-07:08:00", now, "confirm")
    assert waiting() == "3:2027-06-07:08:05"
    log.mark("6:2027-06-07:08:19", "playing", local(MONDAY, "08:19"))  # being spoken now (or cut by a crash)
    assert waiting() == "6:2027-06-07:08:19"
    marks.mark("6:2027-06-07:08:19", now, "button")
    marks.mark("3:2027-06-07:08:05", now, "button")
    heard, why = confirm.waiting(PlayedLog(tmp_path), marks, SEOUL, now, window)
    assert heard is None and why.startswith("already confirmed: 2:2027-06-07:08:00, 3:2027-06-07:08:05")


# --- `carepill-voice confirm` as a command --------------------------------------------------


def test_confirm_exit_statuses_and_the_files_it_writes(tmp_path, dead_url):
    pi = Pi(tmp_path, dead_url, "t")
    now_due, old_due, failed_due = minutes_ago(3), minutes_ago(45), minutes_ago(1)
    bundle_on_disk(pi, [phrase(1, [now_due.strftime("%H:%M")]), phrase(2, [old_due.strftime("%H:%M")]),
                        phrase(3, [failed_due.strftime("%H:%M")])])
    utc = {"CAREPILL_TIMEZONE": "UTC"}

    nothing = pi.run("confirm", **utc)
    assert nothing.returncode == Outcome.NOTHING_WAITING == 6, nothing.stderr
    assert "no reminder is waiting for a confirmation (nothing was heard" in nothing.stderr

    log = PlayedLog(pi.cache)  # written here as `run` writes it
    log.mark(played_key(2, old_due), "played", old_due)  # 45 min ago: its 30-minute window has closed
    assert pi.run("confirm", **utc).returncode == Outcome.NOTHING_WAITING
    log.mark(played_key(1, now_due), "played", now_due)
    log.mark(played_key(3, failed_due), "failed", failed_due)  # later, but nothing was heard
    before = (pi.cache / "played.json").read_bytes(), (pi.cache / "played.json").stat().st_mtime_ns

    done = pi.run("confirm", **utc)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"confirm: confirmed phrase 1 of {now_due.date()} {now_due:%H:%M}; the server will "
                                  "get it later")
    assert "no running run to tell" in done.stdout
    assert ((pi.cache / "played.json").read_bytes(), (pi.cache / "played.json").stat().st_mtime_ns) == before
    assert ConfirmedMarks(pi.cache).get(played_key(1, now_due))["by"] == "confirm"
    [waiting] = ConfirmationJournal(pi.cache).pending()
    install = (pi.cache / "install_id").read_text().strip()
    assert waiting.body() == {"phrase_id": 1, "scheduled_date": now_due.date().isoformat(),
                              "scheduled_time": f"{now_due:%H:%M}", "confirmed_at": waiting.confirmed_at,
                              "key": f"{install}:{played_key(1, now_due)}:confirm"}
    assert dt.datetime.fromisoformat(waiting.confirmed_at) >= now_due + dt.timedelta(minutes=3)

    again = pi.run("confirm", **utc)
    assert again.returncode == Outcome.NOTHING_WAITING and "already confirmed" in again.stderr

    # The window is the bundle's dose_alert_minutes: an hour reopens the one of 45 minutes ago.
    with_window(pi, 60)
    wider = pi.run("confirm", **utc)
    assert wider.returncode == 0 and "confirmed phrase 2 of" in wider.stdout
    assert pi.run("confirm", **utc).returncode == Outcome.NOTHING_WAITING
    assert len(ConfirmationJournal(pi.cache).pending()) == 2

    bad = pi.run("confirm", CAREPILL_REPEAT_MINUTES="0", **utc)
    assert bad.returncode == Outcome.USAGE and "repeat_minutes" in bad.stderr
    assert "6  confirm: no reminder is waiting" in pi.run("confirm", "--help").stdout


def test_confirm_wakes_the_running_run_whose_repeat_then_never_plays_and_never_signals_a_stranger(tmp_path,
                                                                                                  dead_url):
    pi = Pi(tmp_path, dead_url, "t")
    utc = {"CAREPILL_TIMEZONE": "UTC", "CAREPILL_REPEAT_MINUTES": "1", "CAREPILL_REPEAT_TIMES": "2"}
    # A stale run.pid naming another program (a run killed hard; its number reused): SIGUSR1
    # would end that program. Something is waiting, so confirm gets as far as waking.
    stranger = subprocess.Popen(["sleep", "600"])
    try:
        heard = minutes_ago(2)
        bundle_on_disk(pi, [phrase(9, [heard.strftime("%H:%M")])])
        PlayedLog(pi.cache).mark(played_key(9, heard), "played", heard)
        (pi.cache / "run.pid").write_text(f"{stranger.pid}\n")
        done = pi.run("confirm", **utc)
        assert done.returncode == 0 and "no running run to tell" in done.stdout, done.stderr
        assert stranger.poll() is None  # still running
    finally:
        stranger.kill()
        stranger.wait()

    # Due at this minute (it plays at start, a few seconds late), or the next one when this one
    # has less than 20 s left before its first repeat: time for `confirm` to come first.
    now = dt.datetime.now(UTC)
    due = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1 if now.second > 40 else 0)
    shas = bundle_on_disk(pi, [phrase(1, [due.strftime("%H:%M")])])
    key = played_key(1, due)
    run_log = tmp_path / "run.log"
    proc = pi.start_run(run_log, **utc)
    try:
        wait_for_text(run_log, f"{key}: played, from the cache", proc, timeout=120)
        assert (pi.cache / "run.pid").read_text().strip() == str(proc.pid)
        done = pi.run("confirm", **utc)
        assert done.returncode == 0, done.stderr
        assert f"confirmed phrase 1 of {due.date()} {due:%H:%M}" in done.stdout
        assert "the running run was told" in done.stdout
        wait_for_text(run_log, "woken by `carepill-voice confirm`", proc)
        wait_for_text(run_log, f"{key}: confirmed, not repeated", proc, timeout=150)  # at due + 1 min
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, run_log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert pi.played() == [shas[1]], run_log.read_text()
    assert f"{key}:r1" not in PlayedLog(pi.cache).keys()
    assert not (pi.cache / "run.pid").exists()  # removed at the stop


# --- sending confirmations ----------------------------------------------------------------------


def test_a_confirmation_made_offline_is_sent_later_exactly_once(tmp_path, dead_url, fake_server, capsys):
    pi = Pi(tmp_path, dead_url, "t")
    shas = bundle_on_disk(pi, [phrase(1, ["08:00"])])
    settings = {"repeat_minutes": 5.0, "repeat_times": 2}
    runner = run_until(pi, FakeTime(local(MONDAY, "07:59"), until=local(MONDAY, "08:02")), **settings)
    # `confirm` at 08:01 with the server down: confirmed on the Pi, journaled.
    offline = Client(pi.config(timezone="Asia/Seoul", **settings))
    assert confirm.command(offline, SEOUL, local(MONDAY, "08:01")) == Outcome.OK
    assert "the server will get it later" in capsys.readouterr().out
    assert len(ConfirmationJournal(pi.cache).pending()) == 1

    # The server is back; `run` sends it with the waiting report, once.
    clock = FakeTime(local(MONDAY, "08:02"), until=local(MONDAY, "08:12"))
    server = fake_server(clock, pi)
    run_until(pi, clock, server_url=server.url, **settings)
    [sent] = server.posts("/api/tts/doses/confirmations/")
    assert sent["body"] == {"phrase_id": 1, "scheduled_date": "2027-06-07", "scheduled_time": "08:00",
                            "confirmed_at": "2027-06-06T23:01:00+00:00",
                            "key": f"{runner.install_id}:1:2027-06-07:08:00:confirm"}
    assert sent["auth"] == "Token t" and sent["at"] == local(MONDAY, "08:02")
    [report] = server.posts("/api/tts/phrases/1/plays/")
    assert report["body"]["scheduled_date"] == "2027-06-07" and report["body"]["scheduled_time"] == "08:00"
    assert ConfirmationJournal(pi.cache).pending() == [] and pi.played() == [shas[1]]  # and no repeat
    assert list(plays_at(pi)) == [KEY]

    clock = FakeTime(local(MONDAY, "08:12"), until=local(MONDAY, "08:14"))
    server.clock = clock
    run_until(pi, clock, server_url=server.url, **settings)
    assert len(server.posts("/api/tts/doses/confirmations/")) == 1


def test_confirm_sends_at_once_when_the_server_answers_and_what_each_answer_means(tmp_path, fake_server, capsys):
    clock = FakeTime(local(MONDAY, "08:01"), until=local(MONDAY, "08:02"))
    pi = Pi(tmp_path, "http://unused", "t")
    server = fake_server(clock, pi)
    bundle_on_disk(pi, [phrase(1, ["08:00"])])
    PlayedLog(pi.cache).mark(KEY, "played", local(MONDAY, "08:00"))
    client = Client(pi.config(server_url=server.url))
    assert confirm.command(client, SEOUL, clock.now) == Outcome.OK
    assert "sent to the server" in capsys.readouterr().out
    assert len(server.posts("/api/tts/doses/confirmations/")) == 1 and ConfirmationJournal(pi.cache).pending() == []

    rules = {201: Delivery.SENT, 200: Delivery.SENT, 404: Delivery.DROPPED, 400: Delivery.DROPPED,
             503: Delivery.KEPT, 429: Delivery.KEPT, 408: Delivery.KEPT, 401: Delivery.KEPT}
    server.confirmation_statuses = list(rules)
    confirmation = Confirmation(1, "2027-06-07", "08:00", "2027-06-06T23:01:00+00:00", "abc:1:2027-06-07:08:00:confirm")
    assert [client.confirmation_send(confirmation).delivery for _ in rules] == list(rules.values())


def test_an_old_journaled_report_without_the_occurrence_still_sends(tmp_path, fake_server):
    clock = FakeTime(local(MONDAY, "08:01"), until=local(MONDAY, "08:02"))
    pi = Pi(tmp_path, "http://unused", "t")
    server = fake_server(clock, pi)
    # As the previous client journaled it: no scheduled_date / scheduled_time.
    old = {"phrase_id": 1, "played_at": "2027-06-06T23:00:00+00:00", "outcome": "played", "source": "cache",
           "key": "abc:1:2027-06-07:08:00"}
    (pi.cache / "reports").mkdir(parents=True)
    (pi.cache / "reports" / "abc_1_2027-06-07_08_00.json").write_text(json.dumps(old))
    [report] = ReportJournal(pi.cache).pending()
    assert report == Report(1, old["played_at"], "played", "cache", old["key"])
    assert Client(pi.config(server_url=server.url)).report_send(report).delivery is Delivery.SENT
    assert server.posts("/api/tts/phrases/1/plays/")[0]["body"] == {k: v for k, v in old.items() if k != "phrase_id"}


# --- settings -----------------------------------------------------------------------------------


def test_repeat_and_button_settings(tmp_path):
    none = tmp_path / "none.ini"
    config = load_config(none, env={})
    assert (config.repeat_minutes, config.repeat_times, config.button_pin) == (5.0, 2, None)
    config = load_config(none, env={"CAREPILL_REPEAT_MINUTES": "1", "CAREPILL_REPEAT_TIMES": "0",
                                    "CAREPILL_BUTTON_PIN": "17"})
    assert (config.repeat_minutes, config.repeat_times, config.button_pin) == (1.0, 0, 17)
    ini = tmp_path / "config.ini"
    ini.write_text("[carepill]\nrepeat_minutes = 2.5\nrepeat_times = 4\nbutton_pin =\n")
    config = load_config(ini, env={})
    assert (config.repeat_minutes, config.repeat_times, config.button_pin) == (2.5, 4, None)
    ini.write_text("[carepill]\nbutton_pin = 27\n")
    assert load_config(ini, env={}).button_pin == 27
    for name, bad, says in (("REPEAT_MINUTES", "0", "repeat_minutes must be 1 or more"),
                            ("REPEAT_MINUTES", "0.5", "repeat_minutes must be 1 or more"),
                            ("REPEAT_MINUTES", "nan", "repeat_minutes must be 1 or more"),
                            ("REPEAT_MINUTES", "soon", "repeat_minutes must be a number"),
                            ("REPEAT_TIMES", "-1", "repeat_times must be 0 or more"),
                            ("REPEAT_TIMES", "1.5", "repeat_times must be a number"),
                            ("BUTTON_PIN", "-1", "button_pin must be a BCM GPIO number"),
                            ("BUTTON_PIN", "28", "button_pin must be a BCM GPIO number"),
                            ("BUTTON_PIN", "GPIO17", "button_pin must be a whole number or empty")):
        with pytest.raises(ConfigError, match=says):
            load_config(none, env={f"CAREPILL_{name}": bad})
    bad = Pi(tmp_path, "http://127.0.0.1:9", "t").run("run", CAREPILL_REPEAT_TIMES="-2")
    assert bad.returncode == Outcome.USAGE and "repeat_times" in bad.stderr


# --- against the real server --------------------------------------------------------------------


@pytest.fixture
def stack(transactional_db):
    stack = ServiceStack(engine="tone")
    try:
        yield stack.start()
    finally:  # also when it did not start: its Redis may be running
        stack.shutdown()


@pytest.mark.worker
def test_real_run_and_confirm_repeat_the_unconfirmed_and_the_confirmation_made_offline_arrives_once(stack, alice,
                                                                                                   tmp_path):
    """(a) a confirmed reminder plays once; (b) an unconfirmed one plays 1 + repeat_times times;
    (c) the confirmation, made while the web is down, reaches the server later, once."""
    from voice_tts.models import Dose

    api = StackClient(stack, alice.token)
    assert api.upload_voice().status_code == 201
    device = api.post("/api/tts/devices/", json={"name": "Pi"}).json()
    zone = zoneinfo.ZoneInfo("Asia/Seoul")  # the household's zone (the server's default)
    # Both due at this minute (they play at start, a little late), or the next one when this
    # one has less than 30 s left before the first repeat.
    now = dt.datetime.now(zone)
    due = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1 if now.second > 30 else 0)
    ids = {}
    for name in ("unheard", "heard"):  # played in id order: "heard" last, so `confirm` picks it
        made = api.post("/api/tts/phrases/", json={"text": f"{name} pills", "language": "en",
                                                   "times": [due.strftime("%H:%M")]})
        assert made.status_code == 201, made.text
        ids[name] = made.json()["id"]
    bundle = wait_all_ready(api, 2)
    assert bundle["dose_alert_minutes"] == 30
    shas = {name: next(p["sha256"] for p in bundle["phrases"] if p["id"] == ids[name]) for name in ids}

    pi = Pi(tmp_path, stack.base_url, device["token"])
    env = {"CAREPILL_TIMEZONE": "Asia/Seoul", "CAREPILL_REPEAT_MINUTES": "1", "CAREPILL_REPEAT_TIMES": "2"}
    keys = {name: f"{ids[name]}:{due.date().isoformat()}:{due:%H:%M}" for name in ids}
    log = tmp_path / "run.log"
    proc = pi.start_run(log, **env)
    try:
        wait_for_text(log, f"{keys['heard']}: played, from the cache", proc, timeout=120)
        wait_for_text(log, "heartbeat: heard by the server", proc)
        stack.stop("web")  # from here on the Pi is on its own
        done = pi.run("confirm", **env)
        assert done.returncode == 0, done.stderr
        assert f"confirmed phrase {ids['heard']} of" in done.stdout and "the server will get it later" in done.stdout
        assert "the running run was told" in done.stdout
        wait_for_text(log, "woken by `carepill-voice confirm`", proc)
        wait_for_text(log, f"{keys['heard']}: confirmed, not repeated", proc, timeout=150)
        wait_for_text(log, f"{keys['unheard']}:r2: played, from the cache", proc, timeout=150)
        wait_for_text(log, "heartbeat: not heard by the server", proc)
        stack.start_web()
        proc.send_signal(signal.SIGHUP)  # back: this sync sends the waiting reports and the confirmation
        wait_for_text(log, f"{keys['unheard']}:r2 sent (HTTP 201)", proc)  # reports first,
        wait_for_text(log, f"{keys['heard']}:confirm sent (HTTP 201)", proc)  # then confirmations
        wait_for_text(log, "heartbeat: heard by the server again", proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "Traceback" not in text and "dropped" not in text, text
    assert sorted(pi.played()) == sorted([shas["heard"]] + [shas["unheard"]] * 3), text
    assert ConfirmationJournal(pi.cache).pending() == [] and ReportJournal(pi.cache).pending() == []

    doses = {d["phrase_id"]: d for d in api.get("/api/tts/doses/", params={"date": due.date().isoformat()}).json()[
        "results"]}
    assert doses[ids["heard"]]["state"] == "confirmed" and doses[ids["heard"]]["plays"] == 1
    assert doses[ids["unheard"]]["state"] == "played" and doses[ids["unheard"]]["plays"] == 3
    plays = api.get(f"/api/tts/phrases/{ids['unheard']}/plays/").json()["results"]
    assert sorted(p["key"].split(":", 1)[1] for p in plays) == [keys["unheard"], f"{keys['unheard']}:r1",
                                                                f"{keys['unheard']}:r2"]
    # One confirmation stored, with the Pi's key; a resend (the answer lost) changes nothing: 200.
    dose = Dose.objects.filter(phrase_id=ids["heard"], local_date=due.date(), local_time=f"{due:%H:%M}")
    [stored] = dose.values("confirmation_key", "confirmed_at")
    install = (pi.cache / "install_id").read_text().strip()
    assert stored["confirmation_key"] == f"{install}:{keys['heard']}:confirm"
    resend = api.post("/api/tts/doses/confirmations/", json={
        "phrase_id": ids["heard"], "scheduled_date": due.date().isoformat(), "scheduled_time": f"{due:%H:%M}",
        "confirmed_at": dt.datetime.now(UTC).isoformat(), "key": stored["confirmation_key"]})
    assert resend.status_code == 200, resend.text
    assert list(dose.values("confirmation_key", "confirmed_at")) == [stored]


def wait_all_ready(api: StackClient, count: int, timeout: float = 90.0) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while True:
        body = api.get("/api/tts/phrases/bundle/").json()
        if len(body["phrases"]) == count and all(p["status"] == "ready" for p in body["phrases"]):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"bundle not ready after {timeout}s: {body}\n{api.stack.log('worker')}")
        time.sleep(0.2)
