"""GET /api/tts/health/: what live workers report through Redis."""

import pytest


@pytest.mark.worker
def test_health_reports_the_live_workers_engine(worker, client):
    body = client.get("/api/tts/health/").json()
    assert body["status"] == "ok"
    assert body["engine"] == "espeak" and body["model_loaded"] is True and body["device"] == "cpu"
    assert body["model_version"].startswith("espeak-ng")
    assert len(body["workers"]) >= 2 and all(w["loads"] == 1 for w in body["workers"])
    assert "hostname" not in body["workers"][0] and "pid" not in body["workers"][0]


def test_health_without_workers_says_so(client, settings):
    settings.REDIS_KEY_PREFIX = "carepill-test-no-workers-here:"
    body = client.get("/api/tts/health/").json()
    assert body["status"] == "no_workers" and body["model_loaded"] is False and body["workers"] == []


def test_health_with_redis_down_is_503(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/api/tts/health/")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
