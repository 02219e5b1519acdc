"""/api/tts/phrases/<id>/plays/: the Pi reports each play (stored once per key, even when the
report is resent or resent concurrently); the owner lists them, newest first."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest
import requests
from django.utils import timezone
from rest_framework.test import APIClient

from voice_tts.models import PhrasePlay, ReminderPhrase


@pytest.fixture
def phrase(alice) -> ReminderPhrase:
    return ReminderPhrase.objects.create(owner=alice, text="약 드실 시간입니다", times=["08:00"], days=[1, 2, 3])


def _report(at: dt.datetime | None = None, **changes: str) -> dict[str, str]:
    at = at or timezone.now()
    body = {"played_at": at.isoformat(), "outcome": "played", "source": "cache",
            "key": f"pi-1f3a:{at:%Y-%m-%d}:{at:%H:%M}"}
    return {**body, **changes}


def _device(alice_api: APIClient) -> tuple[APIClient, int]:
    created = alice_api.post("/api/tts/devices/", {"name": "안방 Pi"}, format="json").json()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {created['token']}")
    return client, created["id"]


def test_a_report_is_stored_once_and_a_resend_returns_it(alice_api, alice, phrase):
    url = f"/api/tts/phrases/{phrase.id}/plays/"
    body = _report(outcome="fallback", source="fallback")
    first = alice_api.post(url, body, format="json")
    assert first.status_code == 201, first.content
    stored = first.json()
    assert stored["phrase_id"] == phrase.id and stored["key"] == body["key"]
    assert (stored["outcome"], stored["source"], stored["device_id"]) == ("fallback", "fallback", None)
    assert dt.datetime.fromisoformat(stored["played_at"]) == dt.datetime.fromisoformat(body["played_at"])

    again = alice_api.post(url, {**body, "outcome": "played"}, format="json")  # a resend, maybe edited
    assert again.status_code == 200 and again.json() == stored  # the stored one, unchanged
    assert PhrasePlay.objects.filter(owner=alice).count() == 1


def test_the_same_key_for_another_phrase_is_409(alice_api, alice, phrase):
    other = ReminderPhrase.objects.create(owner=alice, text="저녁 약 드세요", times=["19:00"])
    body = _report()
    assert alice_api.post(f"/api/tts/phrases/{phrase.id}/plays/", body, format="json").status_code == 201
    clash = alice_api.post(f"/api/tts/phrases/{other.id}/plays/", body, format="json")
    assert clash.status_code == 409 and clash.json()["code"] == "play_key_conflict"
    assert list(PhrasePlay.objects.values_list("phrase_id", flat=True)) == [phrase.id]


def test_concurrent_resends_store_one_row(live_server, alice, phrase, transactional_db):
    # What a Pi on a flaky link does: the same report sent again before the first answer came.
    url = f"{live_server.url}/api/tts/phrases/{phrase.id}/plays/"
    body = _report()
    statuses: list[int] = []
    start = threading.Barrier(6)

    def send() -> None:
        start.wait()
        statuses.append(requests.post(url, json=body, headers={"Authorization": f"Token {alice.token}"},
                                      timeout=30).status_code)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 5 + [201]
    assert PhrasePlay.objects.filter(key=body["key"]).count() == 1


@pytest.mark.parametrize(
    ("changes", "code"),
    [({"outcome": "skipped"}, "invalid_input"), ({"source": "radio"}, "invalid_input"),
     ({"key": "has space"}, "invalid_input"), ({"key": "k" * 201}, "invalid_input"), ({"key": ""}, "invalid_input"),
     ({"played_at": "yesterday"}, "invalid_input"),
     ({"played_at": "1970-01-01T00:00:05+00:00"}, "played_at_out_of_range"),  # a Pi before its first time sync
     ({"played_at": (timezone.now() + dt.timedelta(days=3)).isoformat()}, "played_at_out_of_range")],
)
def test_bad_reports_are_400_with_a_code_and_store_nothing(alice_api, phrase, changes, code):
    response = alice_api.post(f"/api/tts/phrases/{phrase.id}/plays/", _report(**changes), format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code and response.json()["message"]
    assert PhrasePlay.objects.count() == 0


def test_the_owner_lists_plays_newest_first_in_pages(alice_api, alice, phrase):
    now = timezone.now()
    for minutes in range(105):
        at = now - dt.timedelta(minutes=minutes)
        PhrasePlay.objects.create(owner=alice, phrase=phrase, key=f"k{minutes}", played_at=at, outcome="played",
                                  source="cache")
    other = ReminderPhrase.objects.create(owner=alice, text="다른 알림")
    PhrasePlay.objects.create(owner=alice, phrase=other, key="elsewhere", played_at=now, outcome="played",
                              source="cache")

    page = alice_api.get(f"/api/tts/phrases/{phrase.id}/plays/").json()
    assert [p["key"] for p in page["results"]] == [f"k{m}" for m in range(100)]
    assert page["previous"] is None and page["next"]
    rest = alice_api.get(page["next"]).json()
    assert [p["key"] for p in rest["results"]] == [f"k{m}" for m in range(100, 105)] and rest["next"] is None


def test_another_users_phrase_is_404_and_their_plays_stay_private(alice_api, bob_api, alice, bob, phrase):
    assert alice_api.post(f"/api/tts/phrases/{phrase.id}/plays/", _report(), format="json").status_code == 201
    url = f"/api/tts/phrases/{phrase.id}/plays/"
    for response in (bob_api.get(url), bob_api.post(url, _report(), format="json")):
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert PhrasePlay.objects.filter(owner=bob).count() == 0
    # Keys are per owner: Bob's Pi may pick the same key for his own phrase.
    bobs = ReminderPhrase.objects.create(owner=bob, text="약 드실 시간입니다")
    key = PhrasePlay.objects.get(owner=alice).key
    assert bob_api.post(f"/api/tts/phrases/{bobs.id}/plays/", _report(key=key), format="json").status_code == 201
    assert [p["key"] for p in alice_api.get(url).json()["results"]] == [key]


def test_a_device_may_report_but_not_read_back(alice_api, alice, phrase):
    device, device_id = _device(alice_api)
    url = f"/api/tts/phrases/{phrase.id}/plays/"
    reported = device.post(url, _report(key=f"pi-{uuid.uuid4().hex[:8]}:x"), format="json")
    assert reported.status_code == 201 and reported.json()["device_id"] == device_id
    listed = device.get(url)
    assert (listed.status_code, listed.json()["code"]) == (403, "device_not_allowed")
    assert alice_api.get(url).json()["results"][0]["device_id"] == device_id


def test_deleting_the_phrase_deletes_its_plays(alice_api, alice, phrase):
    alice_api.post(f"/api/tts/phrases/{phrase.id}/plays/", _report(), format="json")
    assert alice_api.delete(f"/api/tts/phrases/{phrase.id}/").status_code == 204
    assert PhrasePlay.objects.count() == 0


def test_unauthenticated_is_401(client, phrase):
    assert client.get(f"/api/tts/phrases/{phrase.id}/plays/").status_code == 401
    assert client.post(f"/api/tts/phrases/{phrase.id}/plays/", _report(), content_type="application/json"
                       ).status_code == 401
    assert PhrasePlay.objects.count() == 0
