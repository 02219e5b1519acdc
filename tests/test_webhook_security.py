"""SSRF guard on webhook URLs and secret rotation (both signatures during the grace)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.audio_samples import wav_bytes
from tests.webhook_receiver import WebhookReceiver
from voice_tts.models import Job, WebhookSecret
from voice_tts.services.voices import voice_create
from voice_tts.services.webhooks import webhook_deliver


@pytest.fixture
def enrolled(alice):
    voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    return alice


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://127.0.0.1:8000/hook", "webhook_url_forbidden"),
        ("http://localhost/hook", "webhook_url_forbidden"),
        ("http://[::1]/hook", "webhook_url_forbidden"),
        ("http://10.0.0.5/hook", "webhook_url_forbidden"),
        ("http://192.168.1.20/hook", "webhook_url_forbidden"),
        ("http://172.16.0.1/hook", "webhook_url_forbidden"),
        ("http://169.254.169.254/latest/meta-data/", "webhook_url_forbidden"),
        ("http://[fd00:ec2::254]/", "webhook_url_forbidden"),
        ("http://0.0.0.0/", "webhook_url_forbidden"),
        ("http://metadata.google.internal/computeMetadata/v1/", "webhook_url_forbidden"),
        ("http://user:secret@93.184.216.34/hook", "webhook_url_invalid"),
        ("http://no-such-host.invalid/hook", "webhook_url_unresolvable"),
    ],
)
def test_private_and_metadata_targets_are_refused(alice_api, enrolled, settings, url, code):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    response = alice_api.post("/api/tts/jobs/", {"text": "hi", "language": "en", "webhook_url": url}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    assert Job.objects.count() == 0


def test_non_http_schemes_are_refused(alice_api, enrolled):
    for url in ("ftp://93.184.216.34/x", "gopher://93.184.216.34/", "file:///etc/passwd"):
        response = alice_api.post("/api/tts/jobs/", {"text": "hi", "webhook_url": url}, format="json")
        assert response.status_code == 400, url


def test_a_public_address_is_accepted(alice_api, enrolled, settings, django_capture_on_commit_callbacks):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    with django_capture_on_commit_callbacks(execute=False):
        response = alice_api.post("/api/tts/jobs/", {"text": "hi", "webhook_url": "http://93.184.216.34/hook"},
                                  format="json")
    assert response.status_code == 202


def test_target_is_checked_again_at_delivery(enrolled, settings):
    """DNS or settings may change between job creation and delivery."""
    job = Job.objects.create(owner=enrolled, text="hi", status="succeeded", webhook_url="http://127.0.0.1:9/x",
                             webhook_status="pending", finished_at=timezone.now())
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    outcome = webhook_deliver(job_id=job.id, attempt=1)
    assert not outcome.delivered and not outcome.retryable
    job.refresh_from_db()
    assert job.webhook_status == "failed"
    assert "webhook_url_forbidden" in job.webhook_deliveries.get().error


def _valid(secret: str, headers: dict, body: bytes) -> bool:
    key = base64.b64decode(secret.split("_", 1)[1])
    mac = base64.b64encode(hmac.new(key, f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body,
                                    hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(mac, part.split(",", 1)[1]) for part in headers["webhook-signature"].split())


def test_rotation_keeps_the_old_secret_valid_for_the_grace_period(alice_api, enrolled):
    old = alice_api.get("/api/tts/webhook-secret/").json()["secret"]
    rotated = alice_api.post("/api/tts/webhook-secret/rotate/").json()
    new = rotated["secret"]
    assert new != old and rotated["previous_secret_valid_until"]

    receiver = WebhookReceiver().start()
    try:
        job = Job.objects.create(owner=enrolled, text="hi", status="failed", error_code="x", webhook_url=receiver.url,
                                 webhook_status="pending", finished_at=timezone.now())
        assert webhook_deliver(job_id=job.id, attempt=1).delivered
        delivery = receiver.deliveries[0]
        assert len(delivery.headers["webhook-signature"].split()) == 2
        assert _valid(new, delivery.headers, delivery.body) and _valid(old, delivery.headers, delivery.body)
        assert json.loads(delivery.body)["type"] == "job.failed"

        WebhookSecret.objects.filter(owner=enrolled).update(previous_valid_until=timezone.now() - timedelta(seconds=1))
        Job.objects.filter(id=job.id).update(webhook_status="pending")
        assert webhook_deliver(job_id=job.id, attempt=2).delivered
        later = receiver.deliveries[1]
        assert len(later.headers["webhook-signature"].split()) == 1
        assert _valid(new, later.headers, later.body) and not _valid(old, later.headers, later.body)
    finally:
        receiver.stop()


def test_secrets_are_per_user(alice_api, bob_api):
    assert alice_api.get("/api/tts/webhook-secret/").json()["secret"] != bob_api.get(
        "/api/tts/webhook-secret/").json()["secret"]
