"""/api/tts/phrases/ and /api/tts/phrases/<id>/: reminder phrases, owner only."""

from __future__ import annotations

import pytest

from voice_tts.models import ReminderPhrase


def test_create_list_get_update_delete(alice_api, alice):
    created = alice_api.post(
        "/api/tts/phrases/", {"text": "  약   드실 시간입니다 ", "times": ["20:30", "08:00", "08:00:59"]}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["text"] == "약 드실 시간입니다"  # normalised like a job's text: same cache key
    assert body["times"] == ["08:00", "20:30"] and body["daily"] is False
    assert body["language"] == "ko" and body["is_active"] is True

    daily = alice_api.post("/api/tts/phrases/", {"text": "Time for your pills", "language": "en"}, format="json")
    assert daily.status_code == 201 and daily.json()["daily"] is True and daily.json()["times"] == []

    listed = alice_api.get("/api/tts/phrases/").json()["results"]
    assert [p["id"] for p in listed] == [body["id"], daily.json()["id"]]

    url = f"/api/tts/phrases/{body['id']}/"
    assert alice_api.get(url).json() == body
    patched = alice_api.patch(url, {"is_active": False}, format="json")
    assert patched.status_code == 200
    assert patched.json()["is_active"] is False and patched.json()["times"] == ["08:00", "20:30"]
    patched = alice_api.patch(url, {"times": []}, format="json").json()
    assert patched["daily"] is True and patched["text"] == "약 드실 시간입니다"

    assert alice_api.delete(url).status_code == 204
    assert alice_api.get(url).status_code == 404
    assert ReminderPhrase.objects.filter(owner=alice).count() == 1


def test_other_users_phrases_are_404_and_not_listed(alice_api, bob_api):
    phrase = alice_api.post("/api/tts/phrases/", {"text": "점심 약 드세요"}, format="json").json()
    url = f"/api/tts/phrases/{phrase['id']}/"
    assert bob_api.get(url).status_code == 404
    assert bob_api.get(url).json()["code"] == "not_found"
    assert bob_api.patch(url, {"text": "hacked"}, format="json").status_code == 404
    assert bob_api.delete(url).status_code == 404
    assert bob_api.get("/api/tts/phrases/").json()["results"] == []
    assert alice_api.get(url).json()["text"] == "점심 약 드세요"


def test_duplicate_text_is_409_but_another_user_may_have_it(alice_api, bob_api):
    assert alice_api.post("/api/tts/phrases/", {"text": "약 드세요"}, format="json").status_code == 201
    again = alice_api.post("/api/tts/phrases/", {"text": " 약  드세요"}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "phrase_exists"
    english = alice_api.post("/api/tts/phrases/", {"text": "약 드세요", "language": "en"}, format="json")
    assert english.status_code == 201
    assert bob_api.post("/api/tts/phrases/", {"text": "약 드세요"}, format="json").status_code == 201


def test_update_to_an_existing_text_is_409(alice_api):
    alice_api.post("/api/tts/phrases/", {"text": "one"}, format="json")
    second = alice_api.post("/api/tts/phrases/", {"text": "two"}, format="json").json()
    response = alice_api.patch(f"/api/tts/phrases/{second['id']}/", {"text": "one"}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "phrase_exists"


@pytest.mark.parametrize(
    ("payload", "code"),
    [({"text": "   "}, "text_empty"), ({"text": "가" * 501}, "text_too_long"), ({"text": "?!"}, "text_unspeakable"),
     ({"text": "hi", "language": "fr"}, "invalid_input"), ({"text": "hi", "times": ["25:00"]}, "invalid_input"),
     ({"text": "hi", "times": "08:00"}, "invalid_input"),
     ({"text": "hi", "times": [f"{h:02d}:00" for h in range(24)] + ["00:30"]}, "invalid_input"),
     ({"text": "hi", "days": [0]}, "invalid_day"), ({"text": "hi", "days": [1, 8]}, "invalid_day"),
     ({"text": "hi", "days": ["mon"]}, "invalid_input"), ({"text": "hi", "days": [True]}, "invalid_input"),
     ({"text": "hi", "days": 1}, "invalid_input"), ({"text": "hi", "days": [1.5]}, "invalid_input")],
)
def test_bad_input_is_400_with_a_code(alice_api, payload, code):
    response = alice_api.post("/api/tts/phrases/", payload, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code and response.json()["message"]
    assert ReminderPhrase.objects.count() == 0


def test_creating_a_phrase_schedules_its_clip_after_commit(alice_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert alice_api.post("/api/tts/phrases/", {"text": "hello"}, format="json").status_code == 201
    assert len(callbacks) == 1
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        alice_api.post("/api/tts/phrases/", {"text": "later", "is_active": False}, format="json")
    assert callbacks == []  # an inactive phrase needs no clip


def test_unauthenticated_is_401(client):
    assert client.get("/api/tts/phrases/").status_code == 401
    assert client.get("/api/tts/phrases/bundle/").status_code == 401


def test_nul_in_phrase_text_gets_the_same_code_as_jobs(alice_api):
    response = alice_api.post("/api/tts/phrases/", {"text": "약\x00드세요"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "text_invalid_characters"


def test_days_are_iso_weekdays_sorted_and_unique(alice_api):
    created = alice_api.post("/api/tts/phrases/", {"text": "주말 약", "times": ["09:00"], "days": [7, 6, 6]},
                             format="json")
    assert created.status_code == 201, created.content
    assert created.json()["days"] == [6, 7]
    url = f"/api/tts/phrases/{created.json()['id']}/"
    assert alice_api.patch(url, {"text": "평일 약"}, format="json").json()["days"] == [6, 7]  # untouched
    assert alice_api.patch(url, {"days": [5, 1, 3]}, format="json").json()["days"] == [1, 3, 5]
    refused = alice_api.patch(url, {"days": [9]}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_day"
    assert alice_api.get(url).json()["days"] == [1, 3, 5]  # nothing half-written
    assert alice_api.patch(url, {"days": []}, format="json").json()["days"] == []  # every day again
    every_day = alice_api.post("/api/tts/phrases/", {"text": "매일 약"}, format="json").json()
    assert every_day["days"] == []
