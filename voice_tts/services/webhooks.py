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
from typing import Any

import requests
from django.conf import settings

from voice_tts.models import Job, WebhookDelivery, WebhookSecret
from voice_tts.presenters import job_representation

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebhookOutcome:
    delivered: bool
    retryable: bool
    retry_after: float | None = None


def webhook_secret_get(*, owner_id: int) -> str:
    secret, _ = WebhookSecret.objects.get_or_create(owner_id=owner_id)
    return secret.secret


def webhook_sign(*, secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_message_id(job: Job) -> str:
    return f"msg_{job.id.hex}"


def _retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


def webhook_deliver(*, job_id: Any, attempt: int) -> WebhookOutcome:
    """POST the job's final state to its webhook URL once; record the attempt."""
    job = Job.objects.select_related("clip").get(id=job_id)
    if not job.webhook_url or job.status not in Job.FINISHED:
        return WebhookOutcome(delivered=False, retryable=False)
    body = json.dumps(
        {"type": f"job.{job.status}", "data": job_representation(job, base_url=settings.PUBLIC_BASE_URL)},
        separators=(",", ":"),
    ).encode()
    message_id = webhook_message_id(job)
    timestamp = int(time.time())
    signature = webhook_sign(
        secret=webhook_secret_get(owner_id=job.owner_id), message_id=message_id, timestamp=timestamp, body=body
    )
    headers = {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
        "user-agent": "CarePill-Voice-Webhooks/1",
    }
    record = WebhookDelivery(job=job, message_id=message_id, url=job.webhook_url, attempt=attempt)
    try:
        # No redirects: a redirect could point the signed payload anywhere.
        response = requests.post(
            job.webhook_url, data=body, headers=headers, timeout=settings.WEBHOOK_TIMEOUT_SECONDS, allow_redirects=False
        )
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
        return WebhookOutcome(delivered=True, retryable=False)
    retryable = response.status_code in (408, 425, 429) or response.status_code >= 500
    return WebhookOutcome(delivered=False, retryable=retryable, retry_after=_retry_after_seconds(response))
