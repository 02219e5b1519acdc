"""Job completion webhooks, signed per Standard Webhooks (standardwebhooks.com).

`webhook-id` is stable across retries (the receiver's idempotency key); the signature
covers "{id}.{timestamp}.{body}" with HMAC-SHA256 under the user's secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from voice_tts.audio_links import job_audio_url
from voice_tts.errors import ServiceError
from voice_tts.models import DisabledWebhookUrl, Job, WebhookDelivery, WebhookSecret, WebhookStatus
from voice_tts.presenters import job_json
from voice_tts.result_cache import job_state_of
from voice_tts.services.webhook_targets import webhook_session, webhook_url_check

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebhookOutcome:
    delivered: bool
    retryable: bool
    retry_after: float | None = None


def webhook_secret_get(*, owner_id: int) -> WebhookSecret:
    secret, _ = WebhookSecret.objects.get_or_create(owner_id=owner_id)
    return secret


def webhook_secret_rotate(*, owner_id: int) -> WebhookSecret:
    """New secret now; the old one keeps signing alongside it for the grace period."""
    with transaction.atomic():
        secret, _ = WebhookSecret.objects.select_for_update().get_or_create(owner_id=owner_id)
        now = timezone.now()
        secret.previous_secret = secret.secret
        secret.previous_valid_until = now + timedelta(seconds=settings.WEBHOOK_SECRET_GRACE_SECONDS)
        secret.secret = WebhookSecret._meta.get_field("secret").get_default()
        secret.rotated_at = now
        secret.save()
    return secret


def webhook_signing_secrets(secret: WebhookSecret) -> list[str]:
    secrets = [secret.secret]
    if secret.previous_secret and secret.previous_valid_until and secret.previous_valid_until > timezone.now():
        secrets.append(secret.previous_secret)
    return secrets


def webhook_sign(*, secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_message_id(job: Job) -> str:
    return f"msg_{job.id.hex}"


def _retry_after_seconds(response: requests.Response) -> float | None:
    """Retry-After as delay-seconds or as an HTTP date (RFC 9110)."""
    value = (response.headers.get("Retry-After") or "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - timezone.now()).total_seconds())


def webhook_post_signed(*, owner_id: int, url: str, message_id: str, body: bytes) -> requests.Response:
    """POST `body` to `url`, signed with the owner's secret(s); job webhooks and care alerts alike.
    Raises requests' ConnectionError or Timeout as they come, and ServiceError `webhook_address_forbidden`
    when the connection reached an address webhook_url_check refuses (DNS rebinding): nothing was sent."""
    timestamp = int(time.time())
    # Several signatures, space-separated, while a rotated-out secret is still valid.
    signature = " ".join(
        webhook_sign(secret=secret, message_id=message_id, timestamp=timestamp, body=body)
        for secret in webhook_signing_secrets(webhook_secret_get(owner_id=owner_id))
    )
    headers = {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
        "user-agent": "CarePill-Voice-Webhooks/1",
    }
    # No redirects: a redirect could point the signed payload anywhere.
    with webhook_session() as session:
        return session.post(url, data=body, headers=headers, timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
                            allow_redirects=False)


def webhook_status_set(*, job_id: Any, status: str) -> None:
    Job.objects.filter(id=job_id).update(webhook_status=status)


def webhook_deliver(*, job_id: Any, attempt: int) -> WebhookOutcome:
    """POST the job's final state to its webhook URL once; record the attempt.

    Never touches the job's own status: a webhook problem is not a job problem.
    """
    job = Job.objects.select_related("clip").get(id=job_id)
    if not job.webhook_url or job.status not in Job.FINISHED or job.webhook_status != WebhookStatus.PENDING:
        return WebhookOutcome(delivered=False, retryable=False)
    record = WebhookDelivery(job=job, message_id=webhook_message_id(job), url=job.webhook_url, attempt=attempt)
    body = json.dumps(
        {"type": f"job.{job.status}", "data": job_json(
            job_state_of(job), audio_url=job_audio_url(job.id, base_url=settings.PUBLIC_BASE_URL))},
        separators=(",", ":"),
    ).encode()
    try:
        webhook_url_check(url=job.webhook_url, owner_id=job.owner_id)
        response = webhook_post_signed(owner_id=job.owner_id, url=job.webhook_url, message_id=record.message_id,
                                       body=body)
    except ServiceError as exc:
        # Refused before anything was sent (the URL, or the address the connection reached): not retried.
        record.error = f"{exc.code}: {exc.message}"
        record.save()
        webhook_status_set(job_id=job.id, status=WebhookStatus.DISABLED if exc.code == "webhook_url_disabled"
                           else WebhookStatus.FAILED)
        return WebhookOutcome(delivered=False, retryable=False)
    except (requests.ConnectionError, requests.Timeout) as exc:
        record.error = f"{type(exc).__name__}: {exc}"[:2000]
        record.save()
        return WebhookOutcome(delivered=False, retryable=True)
    record.status_code = response.status_code
    record.delivered = 200 <= response.status_code < 300
    if not record.delivered:
        record.error = response.text[:500]
    record.save()
    if record.delivered:
        webhook_status_set(job_id=job.id, status=WebhookStatus.DELIVERED)
        return WebhookOutcome(delivered=True, retryable=False)
    if response.status_code == 410:
        # The receiver says this endpoint is gone for good: stop sending to it.
        DisabledWebhookUrl.objects.get_or_create(owner_id=job.owner_id, url=job.webhook_url, defaults={"job": job})
        webhook_status_set(job_id=job.id, status=WebhookStatus.DISABLED)
        return WebhookOutcome(delivered=False, retryable=False)
    retryable = response.status_code in (408, 425, 429) or response.status_code >= 500
    if not retryable:
        webhook_status_set(job_id=job.id, status=WebhookStatus.FAILED)
    return WebhookOutcome(delivered=False, retryable=retryable, retry_after=_retry_after_seconds(response))
