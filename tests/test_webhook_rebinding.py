"""DNS rebinding: the host passes the SSRF check, then resolves to loopback when the HTTP client
connects. The connection's peer address is checked (voice_tts.services.webhook_targets) before a
byte of the request is written, for job webhooks and for care alerts alike.

The one thing stubbed here is name resolution, and only for the name `rebind.test`: the real DNS
cannot be made to rebind in a test. `socket.getaddrinfo` answers a public address (93.184.215.14)
the first time that name is asked for (the service's check) and 127.0.0.1 every time after (the
HTTP client's connect), where a real HTTP receiver listens. Every other name resolves for real.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.utils import timezone

from tests.webhook_receiver import WebhookReceiver
from voice_tts.models import CareAlert, Job, WebhookStatus
from voice_tts.services.care_alerts import care_alert_send
from voice_tts.services.webhooks import webhook_deliver

REBINDING_HOST = "rebind.test"


@pytest.fixture
def rebinding_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """`rebind.test`: public on the first lookup, 127.0.0.1 on later ones. Yields the answers given."""
    real: Callable[..., Any] = socket.getaddrinfo
    answers: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != REBINDING_HOST:
            return real(host, port, *args, **kwargs)
        address = "93.184.215.14" if not answers else "127.0.0.1"
        answers.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield answers


def _finished_job(owner: Any, url: str) -> Job:
    return Job.objects.create(owner=owner, text="hi", status="succeeded", webhook_url=url,
                              webhook_status=WebhookStatus.PENDING, finished_at=timezone.now())


def test_a_rebinding_job_webhook_reaches_nothing_and_is_not_retried(alice, settings, rebinding_dns,
                                                                    receiver: WebhookReceiver):
    settings.WEBHOOK_ALLOWED_NETWORKS = []  # loopback is forbidden, as in production
    job = _finished_job(alice, f"http://{REBINDING_HOST}:{receiver.port}/hooks/carepill")

    outcome = webhook_deliver(job_id=job.id, attempt=1)

    # The check saw the public address, the connection got loopback: both lookups happened.
    assert rebinding_dns == ["93.184.215.14", "127.0.0.1"]
    assert not outcome.delivered and not outcome.retryable
    assert receiver.deliveries == []
    job.refresh_from_db()
    assert job.webhook_status == WebhookStatus.FAILED
    record = job.webhook_deliveries.get()
    assert record.error.startswith("webhook_address_forbidden: ") and "127.0.0.1" in record.error
    assert record.status_code is None and not record.delivered


def test_a_rebinding_alert_webhook_reaches_nothing_and_fails_with_its_code(alice, settings, rebinding_dns,
                                                                          receiver: WebhookReceiver):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    alert = CareAlert.objects.create(owner=alice, kind=CareAlert.Kind.TEST, channel=CareAlert.Channel.WEBHOOK,
                                     subject_key="test:rebind", not_before=timezone.now(),
                                     recipient=f"http://{REBINDING_HOST}:{receiver.port}/hooks/carepill")

    assert care_alert_send(alert_id=alert.id) == CareAlert.Status.FAILED

    assert rebinding_dns == ["93.184.215.14", "127.0.0.1"]
    assert receiver.deliveries == []
    alert.refresh_from_db()
    assert alert.status == CareAlert.Status.FAILED and alert.attempts == 1  # failed for good, not put back
    assert alert.error.startswith("webhook_address_forbidden: ")


def test_an_allowed_network_still_gets_its_deliveries_through_the_checked_connection(alice, settings, rebinding_dns,
                                                                                      receiver: WebhookReceiver):
    """WEBHOOK_ALLOWED_NETWORKS=127.0.0.1/32 (tests/settings.py): the peer check lets it through,
    whether the URL names the address or a name that resolves to it when connecting."""
    direct = _finished_job(alice, receiver.url)
    assert webhook_deliver(job_id=direct.id, attempt=1).delivered
    rebound = _finished_job(alice, f"http://{REBINDING_HOST}:{receiver.port}/hooks/carepill")
    assert webhook_deliver(job_id=rebound.id, attempt=1).delivered
    receiver.wait_for(2)
    assert [d.headers["webhook-id"] for d in receiver.deliveries] == [f"msg_{direct.id.hex}", f"msg_{rebound.id.hex}"]
