"""`carepill-voice run` against the real server: a live server with a real worker for the
bundle and the play reports (the server down in between is a closed port), and one real
run of the console script against a private stack (gunicorn + worker, tests/stack.py)
whose web is stopped before the reminder is due. The player and the fallback voice are
the recording scripts of tests/test_pi_client.py."""

from __future__ import annotations

import datetime as dt
import signal
import time
import zoneinfo

import pytest
from carepill_voice.client import Client
from carepill_voice.journal import ReportJournal

from tests import test_pi_client
from tests.stack import ServiceStack, StackClient
from tests.test_phrase_bundle_api import wait_bundle
from tests.test_pi_client import Pi
from tests.test_pi_schedule import FakeTime, run_until, wait_for_text

pytestmark = pytest.mark.worker

UTC = dt.UTC
SEOUL = zoneinfo.ZoneInfo("Asia/Seoul")

dead_url = test_pi_client.dead_url


def at(day: dt.date, hhmm: str, seconds: int = 0) -> dt.datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return dt.datetime(day.year, day.month, day.day, hours, minutes, seconds, tzinfo=SEOUL).astimezone(UTC)


@pytest.fixture
def alice_live(alice_http):
    """alice_http, its kept-alive connections closed after the test: one left open holds a
    live-server thread and its database connection, and PostgreSQL then refuses to drop the test
    database. (Session.close() alone leaves the sockets to the garbage collector with urllib3 2.)"""
    yield alice_http
    for adapter in alice_http.session.adapters.values():  # as Client.close() does
        pools = adapter.poolmanager.pools
        for key in pools.keys():
            pools[key].close()
    alice_http.session.close()


def test_reports_kept_offline_reach_the_server_once_and_other_weekdays_stay_silent(worker, alice_live, tmp_path,
                                                                                    dead_url):
    alice_http = alice_live
    alice_http.upload_voice(4.0)
    device = alice_http.post("/api/tts/devices/", json={"name": "거실 Pi"}).json()
    # Yesterday (the server takes plays of the last 90 days), as a fake clock in Seoul.
    day = dt.datetime.now(SEOUL).date() - dt.timedelta(days=1)
    others = [d for d in range(1, 8) if d != day.isoweekday()]
    made = {}
    for name, payload in {
        "today": {"text": "Morning pills", "times": ["08:00"], "days": [day.isoweekday()]},
        "other_days": {"text": "Not on this weekday", "times": ["08:00"], "days": others},
        "every_day": {"text": "Vitamins", "times": ["08:01"]},
        "deleted": {"text": "Soon deleted", "times": ["08:02"]},
    }.items():
        response = alice_http.post("/api/tts/phrases/", json={"language": "en", **payload})
        assert response.status_code == 201, response.text
        made[name] = response.json()["id"]
    bundle = wait_bundle(alice_http, ready=4)
    entries = {p["id"]: p for p in bundle["phrases"]}
    assert entries[made["other_days"]]["days"] == others and entries[made["every_day"]]["days"] == []
    shas = {name: entries[made[name]]["sha256"] for name in made}
    pi = Pi(tmp_path, alice_http.base_url, device["token"])
    online = Client(pi.config())
    assert online.sync().downloaded == 4  # synced while the server was up

    # The server goes away before 08:00: everything due plays from the cache, reports wait.
    run_until(pi, FakeTime(at(day, "07:59", 30), until=at(day, "08:04")), server_url=dead_url)
    assert pi.played() == [shas["today"], shas["every_day"], shas["deleted"]]  # not "other_days"
    journal = ReportJournal(pi.cache)
    waiting = {r.phrase_id: r for r in journal.pending()}
    assert set(waiting) == {made["today"], made["every_day"], made["deleted"]}
    assert alice_http.delete(f"/api/tts/phrases/{made['deleted']}/").status_code == 204

    # Back: the first sync sends them (the deleted phrase's report is refused for good: 404, dropped).
    back = run_until(pi, FakeTime(at(day, "08:04"), until=at(day, "08:05")))
    assert journal.pending() == []
    for name, hhmm in (("today", "08:00"), ("every_day", "08:01")):
        plays = alice_http.get(f"/api/tts/phrases/{made[name]}/plays/").json()["results"]
        key = f"{back.install_id}:{made[name]}:{day.isoformat()}:{hhmm}"
        assert [(p["key"], p["outcome"], p["source"], p["device_id"]) for p in plays] == [
            (key, "played", "cache", device["id"])]
        assert dt.datetime.fromisoformat(plays[0]["played_at"]) == at(day, hhmm)
    assert alice_http.get(f"/api/tts/phrases/{made['other_days']}/plays/").json()["results"] == []

    # A resend (say the answer was lost) is harmless: 200, still one play with that key.
    journal.add(waiting[made["today"]])
    run_until(pi, FakeTime(at(day, "08:05"), until=at(day, "08:06")))
    assert journal.pending() == []
    assert len(alice_http.get(f"/api/tts/phrases/{made['today']}/plays/").json()["results"]) == 1

    # A lost clip while the server is up: downloaded at play time, then played.
    (pi.cache / "clips" / f"{shas['today']}.wav").unlink()
    played = online.play_due(entries[made["today"]])
    assert (played.outcome, played.source) == ("played", "server") and pi.played()[-1] == shas["today"]
    assert (pi.cache / "clips" / f"{shas['today']}.wav").is_file()
    online.close()  # (a Runner closes its own at the end of run())


@pytest.fixture
def stack(transactional_db):
    stack = ServiceStack(engine="tone")
    try:
        yield stack.start()
    finally:  # also when it did not start: its Redis may be running
        stack.shutdown()


def test_a_real_run_speaks_the_cached_clip_with_the_server_stopped(stack, alice, tmp_path):
    api = StackClient(stack, alice.token)
    assert api.upload_voice().status_code == 201
    device = api.post("/api/tts/devices/", json={"name": "Pi"}).json()
    # Due at the next local minute at least 20 s away: time to sync and stop the web first.
    zone = zoneinfo.ZoneInfo("Asia/Kolkata")  # +05:30: a zone that is neither UTC nor whole hours
    due = (dt.datetime.now(zone) + dt.timedelta(seconds=20)).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    phrase = api.post("/api/tts/phrases/", json={"text": "Your noon pills", "language": "en",
                                                 "times": [due.strftime("%H:%M")], "days": [due.isoweekday()]})
    assert phrase.status_code == 201, phrase.text
    phrase_id = phrase.json()["id"]
    sha = wait_ready(api)

    pi = Pi(tmp_path, stack.base_url, device["token"])
    log = tmp_path / "run.log"
    proc = pi.start_run(log, CAREPILL_TIMEZONE="Asia/Kolkata")
    try:
        wait_for_text(log, "sync: updated, downloaded 1", proc)
        stack.stop("web")  # from here on the Pi is on its own

        seconds_left = (due - dt.datetime.now(zone)).total_seconds()
        wait_for_text(log, ": played, from the cache", proc, timeout=max(seconds_left, 0) + 90)
        proc.send_signal(signal.SIGHUP)  # sync now: fails (web down), and the next tick must not replay
        wait_for_text(log, "sync: failed", proc)
        stack.start_web()
        proc.send_signal(signal.SIGHUP)  # back: this sync sends the waiting report
        wait_for_text(log, "sent (HTTP 201)", proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert pi.played() == [sha], text  # exactly once, the cached clip
    assert "run: stopped" in text and "Traceback" not in text
    plays = api.get(f"/api/tts/phrases/{phrase_id}/plays/").json()["results"]
    assert [(p["outcome"], p["source"], p["key"].split(":", 1)[1]) for p in plays] == [
        ("played", "cache", f"{phrase_id}:{due.date().isoformat()}:{due.strftime('%H:%M')}")]


def wait_ready(api: StackClient, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        body = api.get("/api/tts/phrases/bundle/").json()
        if body["phrases"] and body["phrases"][0]["status"] == "ready":
            return body["phrases"][0]["sha256"]
        if time.monotonic() > deadline:
            raise AssertionError(f"bundle not ready after {timeout}s: {body}\n{api.stack.log('worker')}")
        time.sleep(0.2)
