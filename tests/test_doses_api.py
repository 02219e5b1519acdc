"""GET /api/tts/doses/, POST /api/tts/doses/confirmations/, the plays' occurrence fields and
POST /api/tts/devices/heartbeat/: doses made ahead in the household's zone, plays counted once,
confirmations idempotent, and nothing of one household reaching another."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import pytest

from tests.conftest import api_client
from voice_tts.models import AccessToken, CareSettings, Dose
from voice_tts.services.doses import doses_schedule

SEOUL = zoneinfo.ZoneInfo("Asia/Seoul")


def _device_api(user_api: Any) -> tuple[Any, int]:
    made = user_api.post("/api/tts/devices/", {"name": "거실 Pi"}, format="json")
    assert made.status_code == 201, made.content
    client = api_client(None)
    client.credentials(HTTP_AUTHORIZATION=f"Token {made.json()['token']}")
    return client, made.json()["id"]


def _phrase(user_api: Any, text: str, times: list[str], days: list[int] | None = None) -> int:
    made = user_api.post("/api/tts/phrases/", {"text": text, "times": times, "days": days or []}, format="json")
    assert made.status_code == 201, made.content
    return made.json()["id"]


@pytest.fixture
def noon() -> dt.datetime:
    """Today at 12:00 in Seoul: the schedule's clock for the tests that count today's doses (at 01:00 in Seoul
    today's 08:00 is still ahead, at 13:00 it is not; and London's date is Seoul's only from 09:00)."""
    return dt.datetime.combine(dt.datetime.now(SEOUL).date(), dt.time(12), SEOUL)


@pytest.fixture
def tomorrow() -> dt.date:
    return dt.datetime.now(SEOUL).date() + dt.timedelta(days=1)


def test_doses_are_made_ahead_in_the_household_zone_and_stay_private(alice, bob, alice_api, bob_api, tomorrow):
    phrase = _phrase(alice_api, "아침 약 드실 시간입니다", ["08:00", "20:30"])
    _phrase(bob_api, "밥의 약", ["09:00"])
    summary = doses_schedule()
    assert summary.made >= 3  # tomorrow's, at least (today's only where still ahead)
    assert doses_schedule().made == 0  # a rerun makes nothing new

    body = alice_api.get("/api/tts/doses/", {"date": tomorrow.isoformat()}).json()
    assert body["date"] == tomorrow.isoformat()
    assert [(d["phrase_id"], d["local_time"], d["state"]) for d in body["results"]] == [
        (phrase, "08:00", "upcoming"), (phrase, "20:30", "upcoming"),
    ]
    first = body["results"][0]
    assert first["scheduled_for"] == f"{tomorrow.isoformat()}T08:00:00+09:00"
    assert first["text"] == "아침 약 드실 시간입니다" and first["plays"] == 0 and first["confirmed_at"] is None
    # Bob's dose is his alone, by his token and by his device's.
    bob_device, _ = _device_api(bob_api)
    for client in (bob_api, bob_device):
        seen = client.get("/api/tts/doses/", {"date": tomorrow.isoformat()}).json()["results"]
        assert [d["text"] for d in seen] == ["밥의 약"]
    assert alice_api.get("/api/tts/doses/", {"date": "tomorrow"}).json()["code"] == "invalid_date"


def test_a_zone_set_on_the_pages_moves_the_upcoming_doses(alice, alice_api, tomorrow, noon):
    _phrase(alice_api, "Evening pills", ["20:00"])
    doses_schedule(now=noon)
    CareSettings.objects.create(owner=alice, timezone="Europe/London")
    summary = doses_schedule(now=noon)
    dose = Dose.objects.get(owner=alice, local_date=tomorrow)
    assert summary.moved >= 1
    assert dose.timezone == "Europe/London"
    assert dose.scheduled_for == dt.datetime.combine(tomorrow, dt.time(20), zoneinfo.ZoneInfo("Europe/London"))


def test_weekdays_and_paused_phrases(alice, alice_api, tomorrow, noon):
    other_day = tomorrow.isoweekday() % 7 + 1
    _phrase(alice_api, "Only on another weekday", ["08:00"], [other_day])
    paused = _phrase(alice_api, "Soon paused", ["08:00"])
    doses_schedule(now=noon)
    assert [d.text for d in Dose.objects.filter(local_date=tomorrow)] == ["Soon paused"]
    assert alice_api.patch(f"/api/tts/phrases/{paused}/", {"is_active": False}, format="json").status_code == 200
    assert doses_schedule(now=noon).removed == 1  # tomorrow's (today's 08:00 has passed at noon)
    assert not Dose.objects.filter(local_date=tomorrow).exists()


def _play(client: Any, phrase: int, key: str, day: dt.date, hhmm: str, at: dt.datetime, outcome: str = "played"):
    return client.post(f"/api/tts/phrases/{phrase}/plays/", {
        "played_at": at.isoformat(), "outcome": outcome, "source": "cache", "key": key,
        "scheduled_date": day.isoformat(), "scheduled_time": hhmm,
    }, format="json")


def test_plays_attach_to_their_dose_and_count_once(alice, alice_api):
    device, _ = _device_api(alice_api)
    phrase = _phrase(alice_api, "Morning pills", ["08:00"])
    today = dt.datetime.now(SEOUL).date()
    due = dt.datetime.combine(today, dt.time(8), SEOUL)
    first = _play(device, phrase, "pi:1:d:08:00", today, "08:00", due + dt.timedelta(seconds=2))
    assert first.status_code == 201, first.content
    dose_id = first.json()["dose_id"]
    assert dose_id is not None
    assert _play(device, phrase, "pi:1:d:08:00", today, "08:00", due).status_code == 200  # a resend
    assert _play(device, phrase, "pi:1:d:08:00:r1", today, "08:00", due + dt.timedelta(minutes=5)).status_code == 201
    assert _play(device, phrase, "pi:1:d:08:00:r2", today, "08:00", due + dt.timedelta(minutes=10),
                 outcome="failed").status_code == 201  # nothing spoken: attached, not counted
    dose = Dose.objects.get(id=dose_id)
    assert (dose.state, dose.plays) == ("played", 2)
    assert dose.first_played_at == due + dt.timedelta(seconds=2)
    assert dose.last_played_at == due + dt.timedelta(minutes=5)
    # Half an occurrence is refused, and a play without one is stored unattached, as before.
    half = device.post(f"/api/tts/phrases/{phrase}/plays/", {
        "played_at": due.isoformat(), "outcome": "played", "source": "cache", "key": "pi:x",
        "scheduled_date": today.isoformat()}, format="json")
    assert half.status_code == 400 and half.json()["code"] == "occurrence_incomplete"
    bad_time = _play(device, phrase, "pi:y", today, "8:00", due)
    assert bad_time.status_code == 400 and bad_time.json()["code"] == "invalid_input"


def test_a_late_play_turns_missed_into_unconfirmed(alice, alice_api):
    device, _ = _device_api(alice_api)
    phrase = _phrase(alice_api, "Morning pills", ["08:00"])
    today = dt.datetime.now(SEOUL).date()
    due = dt.datetime.combine(today, dt.time(8), SEOUL)
    dose_id = _play(device, phrase, "pi:a", today, "08:00", due, outcome="failed").json()["dose_id"]
    Dose.objects.filter(id=dose_id).update(state="missed")
    _play(device, phrase, "pi:b", today, "08:00", due + dt.timedelta(minutes=9))
    assert Dose.objects.get(id=dose_id).state == "unconfirmed"


def test_confirmations_are_idempotent_and_private(alice, bob, alice_api, bob_api):
    device, _ = _device_api(alice_api)
    phrase = _phrase(alice_api, "Morning pills", ["08:00"])
    today = dt.datetime.now(SEOUL).date()
    confirmed_at = dt.datetime.combine(today, dt.time(8, 2), SEOUL)
    body = {"phrase_id": phrase, "scheduled_date": today.isoformat(), "scheduled_time": "08:00",
            "confirmed_at": confirmed_at.isoformat(), "key": "pi:1:d:08:00:confirm"}
    first = device.post("/api/tts/doses/confirmations/", body, format="json")
    assert first.status_code == 201, first.content
    assert first.json()["state"] == "confirmed"
    assert dt.datetime.fromisoformat(first.json()["confirmed_at"]) == confirmed_at
    again = device.post("/api/tts/doses/confirmations/", body, format="json")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    later = (confirmed_at + dt.timedelta(minutes=1)).isoformat()
    other = device.post("/api/tts/doses/confirmations/", {**body, "key": "button:2", "confirmed_at": later},
                        format="json")
    assert other.status_code == 200
    dose = Dose.objects.get(id=first.json()["id"])
    assert (dose.confirmed_at, dose.confirmation_key) == (confirmed_at, "pi:1:d:08:00:confirm")
    # Bob cannot confirm (or learn of) Alice's reminder.
    refused = bob_api.post("/api/tts/doses/confirmations/", {**body, "key": "bob"}, format="json")
    assert refused.status_code == 404 and refused.json()["code"] == "not_found"
    assert bob_api.get("/api/tts/doses/", {"date": today.isoformat()}).json()["results"] == []
    stale = device.post("/api/tts/doses/confirmations/",
                        {**body, "key": "old", "confirmed_at": "1970-01-01T09:00:00+09:00"}, format="json")
    assert stale.status_code == 400 and stale.json()["code"] == "confirmed_at_out_of_range"


def test_heartbeat_is_a_device_s_records_its_contact_and_zone(alice, alice_api):
    refused = alice_api.post("/api/tts/devices/heartbeat/", {"timezone": "Asia/Seoul"}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "not_a_device"
    device, device_id = _device_api(alice_api)
    AccessToken.objects.filter(id=device_id).update(last_seen_at=None)
    beat = device.post("/api/tts/devices/heartbeat/", {"timezone": "Asia/Seoul"}, format="json")
    assert beat.status_code == 200, beat.content
    assert beat.json()["timezone"] == "Asia/Seoul" and beat.json()["timezone_mismatch"] is False
    assert AccessToken.objects.get(id=device_id).last_seen_at is not None
    assert CareSettings.objects.get(owner=alice).device_timezone == "Asia/Seoul"
    # The caregiver set another zone on the pages: the mismatch is reported, not resolved by guessing.
    CareSettings.objects.filter(owner=alice).update(timezone="Europe/Berlin")
    beat = device.post("/api/tts/devices/heartbeat/", {"timezone": "Asia/Seoul"}, format="json").json()
    assert beat["timezone"] == "Europe/Berlin" and beat["timezone_mismatch"] is True
    bundle = device.get("/api/tts/phrases/bundle/").json()
    assert bundle["timezone"] == "Europe/Berlin" and bundle["dose_alert_minutes"] == 30
    wrong = device.post("/api/tts/devices/heartbeat/", {"timezone": "Mars/Olympus"}, format="json")
    assert wrong.status_code == 400 and wrong.json()["code"] == "invalid_timezone"
