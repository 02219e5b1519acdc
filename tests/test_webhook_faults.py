"""Webhook receivers that are down, slow, failing or gone: retried with backoff for a
bounded schedule, Retry-After honoured, 410 disables the URL, every attempt recorded,
and the job itself never affected. Real HTTP servers on 127.0.0.1, real worker."""

from __future__ import annotations

import socket
import time

import pytest

from tests.webhook_receiver import WebhookReceiver
from voice_tts.models import DisabledWebhookUrl, Job, WebhookDelivery

pytestmark = pytest.mark.worker


@pytest.fixture
def receiver():
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


def deliveries(job_id: str, count: int, timeout: float = 30.0) -> list[WebhookDelivery]:
    deadline = time.monotonic() + timeout
    while True:
        rows = list(WebhookDelivery.objects.filter(job_id=job_id).order_by("attempt"))
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def webhook_status(job_id: str, wanted: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        value = Job.objects.get(id=job_id).webhook_status
        if value == wanted or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def job_with_webhook(api, url: str, text: str) -> dict:
    api.upload_voice(4.0)
    response = api.post("/api/tts/jobs/", json={"text": text, "language": "en", "webhook_url": url})
    assert response.status_code in (200, 202), response.text
    return response.json()


def test_receiver_down_is_retried_a_bounded_number_of_times(worker, alice_http, settings):
    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    job = job_with_webhook(alice_http, f"http://127.0.0.1:{port}/hook", "nobody listens")

    assert webhook_status(job["id"], "failed") == "failed"
    rows = deliveries(job["id"], settings.WEBHOOK_MAX_ATTEMPTS)
    assert [r.attempt for r in rows] == list(range(1, settings.WEBHOOK_MAX_ATTEMPTS + 1))
    assert all(r.status_code is None and "ConnectionError" in r.error for r in rows)
    assert alice_http.wait_job(job["id"])["status"] == "succeeded"  # the job is not affected


def test_slow_receiver_times_out_and_the_retry_succeeds(worker, alice_http, receiver):
    receiver.delays = [3.0]  # longer than WEBHOOK_TIMEOUT_SECONDS (1 s in tests)
    job = job_with_webhook(alice_http, receiver.url, "slow receiver")

    assert webhook_status(job["id"], "delivered") == "delivered"
    first, second = deliveries(job["id"], 2)
    assert "Timeout" in first.error and first.status_code is None
    assert second.delivered and second.status_code == 200


def test_retry_after_is_honoured(worker, alice_http, receiver):
    receiver.statuses = [503, 200]
    receiver.extra_headers = {"Retry-After": "2"}
    job = job_with_webhook(alice_http, receiver.url, "come back later")

    receiver.wait_for(2)
    assert receiver.deliveries[1].received_at - receiver.deliveries[0].received_at >= 1.9
    assert webhook_status(job["id"], "delivered") == "delivered"


def test_410_gone_disables_the_url_for_that_user(worker, alice, alice_http, bob_http, receiver):
    receiver.statuses = [410]
    job = job_with_webhook(alice_http, receiver.url, "gone for good")

    assert webhook_status(job["id"], "disabled") == "disabled"
    assert len(deliveries(job["id"], 1)) == 1  # no retry after 410
    assert DisabledWebhookUrl.objects.filter(owner=alice, url=receiver.url).exists()
    again = alice_http.post("/api/tts/jobs/", json={"text": "again", "language": "en", "webhook_url": receiver.url})
    assert again.status_code == 400 and again.json()["code"] == "webhook_url_disabled"
    # Bob's use of the same URL is his own business.
    bob_http.upload_voice(4.0)
    assert bob_http.post("/api/tts/jobs/", json={"text": "mine", "language": "en",
                                                 "webhook_url": receiver.url}).status_code in (200, 202)
