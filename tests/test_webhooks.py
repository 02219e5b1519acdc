"""Job completion webhooks to a real HTTP server on 127.0.0.1, signatures verified
independently of the service's own signing code (Standard Webhooks spec)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from voice_tts.models import Job, WebhookDelivery
from voice_tts.services.jobs import job_enqueue

pytestmark = pytest.mark.worker


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks verification, written from the spec."""
    key = base64.b64decode(secret.split("_", 1)[1])
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    candidates = [sig.split(",", 1)[1] for sig in headers["webhook-signature"].split() if sig.startswith("v1,")]
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


def test_signed_webhook_is_delivered_when_the_job_ends(worker, alice_http, receiver):
    secret = alice_http.get("/api/tts/webhook-secret/").json()["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) >= 24
    alice_http.upload_voice(4.0)
    job = alice_http.post("/api/tts/jobs/", json={"text": "약 드세요", "webhook_url": receiver.url}).json()

    receiver.wait_for(1)
    delivery = receiver.deliveries[0]
    assert verify(secret, delivery.headers, delivery.body)
    assert not verify("whsec_" + base64.b64encode(b"x" * 32).decode(), delivery.headers, delivery.body)
    assert abs(int(delivery.headers["webhook-timestamp"]) - time.time()) < 300
    payload = json.loads(delivery.body)
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["id"] == job["id"] and payload["data"]["status"] == "succeeded"
    assert payload["data"]["audio_url"].endswith(f"/api/tts/jobs/{job['id']}/audio/")
    # The receiver's idempotency key is stable.
    assert delivery.headers["webhook-id"] == "msg_" + job["id"].replace("-", "")


def test_failed_job_sends_job_failed(worker, alice, alice_http, receiver):
    # A job whose voice was deleted before a worker reached it fails with a code.
    job = Job.objects.create(owner=alice, voice=None, text="hello", language="en", webhook_url=receiver.url)
    job_enqueue(job_id=job.id)

    receiver.wait_for(1)
    payload = json.loads(receiver.deliveries[0].body)
    assert payload["type"] == "job.failed"
    assert payload["data"]["id"] == str(job.id)
    assert payload["data"]["error"]["code"] == "voice_deleted"
    assert payload["data"]["audio_url"] is None


def test_receiver_errors_are_retried_and_every_attempt_recorded(worker, alice_http, receiver):
    receiver.statuses = [500, 503, 200]
    alice_http.upload_voice(4.0)
    job = alice_http.post("/api/tts/jobs/", json={"text": "retry me", "language": "en",
                                                  "webhook_url": receiver.url}).json()
    receiver.wait_for(3)
    ids = {d.headers["webhook-id"] for d in receiver.deliveries}
    assert len(ids) == 1  # same message id on every retry
    deadline = time.monotonic() + 10
    while WebhookDelivery.objects.filter(job_id=job["id"]).count() < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    attempts = list(WebhookDelivery.objects.filter(job_id=job["id"]).values_list("attempt", "status_code", "delivered"))
    assert attempts == [(1, 500, False), (2, 503, False), (3, 200, True)]
    assert alice_http.get(f"/api/tts/jobs/{job['id']}/").json()["status"] == "succeeded"
