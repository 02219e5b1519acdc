"""Alerts to the caregiver (mail, and a signed webhook when the account has one), and the beat's
tick that raises them.

**Sent once.** A worker claims an alert with a conditional UPDATE (pending → sending) *before* it
sends, then records `sent`. A rerun of the task, a second beat run or a retry after a crash finds the
row already claimed and sends nothing. The price of that order is that a worker killed between the
claim and the send loses that one message (the row stays `sending`, and the tick marks it `unknown`
after ALERT_SENDING_STALE, visible in the admin) — for a family, one missing mail is better than a
stream of duplicates on every crash loop, and the next event still alerts. The opposite order (record
after sending) would send twice after any crash between the two.

Only failures where nothing can have reached the recipient are retried: the SMTP server refused the
connection (nothing was sent yet), or a webhook answered 5xx/429 or could not be connected to (and a
webhook carries a stable `webhook-id` for the receiver to drop repeats). Retries wait on the row
(`not_before`, with backoff) and the tick sends them again: no worker sleeps on them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import smtplib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import requests
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from voice_tts.dispatch import care_alert_send_send
from voice_tts.errors import ServiceError
from voice_tts.models import AccessToken, CareAlert, CareSettings, Dose
from voice_tts.services.care import alert_email_of, care_settings_get, devices_last_contacts, in_quiet_hours
from voice_tts.services.doses import dose_close, doses_due_to_close, doses_schedule, household_zone
from voice_tts.services.webhook_targets import webhook_url_check
from voice_tts.services.webhooks import webhook_post_signed

logger = logging.getLogger(__name__)

# A claimed alert not recorded as sent or failed after this long: its worker died mid-send.
ALERT_SENDING_STALE = dt.timedelta(minutes=10)
# A pending alert's task is sent again (the broker lost it, or no worker ran) after this long.
ALERT_REDISPATCH = dt.timedelta(minutes=5)
RETRY_BASE = dt.timedelta(minutes=1)
RETRY_CAP = dt.timedelta(minutes=30)

KIND_OF_STATE = {Dose.State.UNCONFIRMED: CareAlert.Kind.DOSE_UNCONFIRMED, Dose.State.MISSED: CareAlert.Kind.DOSE_MISSED}


# --- Raising ------------------------------------------------------------------------------------


def alerts_raise(
    *,
    care: CareSettings,
    kind: str,
    subject_key: str,
    now: dt.datetime,
    dose: Dose | None = None,
    last_contact_at: dt.datetime | None = None,
    quiet: bool = True,
) -> list[CareAlert]:
    """One alert row per channel the household has (mail to its address, its webhook). Quiet hours
    hold them until they end (`quiet=False` for the test message the caregiver asked for). A
    subject already raised (the same dose, the same silence) makes no second row."""
    not_before = now
    if quiet:
        ends = in_quiet_hours(care=care, local=now.astimezone(household_zone(care)))
        if ends is not None:
            not_before = ends.astimezone(dt.UTC)
    rows = []
    email = alert_email_of(care=care)
    if email:
        rows.append(CareAlert.Channel.EMAIL)
    if care.alert_webhook_url:
        rows.append(CareAlert.Channel.WEBHOOK)
    alerts = [
        CareAlert(owner_id=care.owner_id, kind=kind, channel=channel, subject_key=subject_key, dose=dose,
                  last_contact_at=last_contact_at, not_before=not_before,
                  recipient=email if channel == CareAlert.Channel.EMAIL else care.alert_webhook_url)
        for channel in rows
    ]
    CareAlert.objects.bulk_create(alerts, ignore_conflicts=True)
    return alerts


def care_alert_test(*, owner_id: int) -> list[CareAlert]:
    """The pages' "시험 알림 보내기": a real message on every channel, now, whatever the quiet hours."""
    care = care_settings_get(owner_id=owner_id)
    if not alert_email_of(care=care) and not care.alert_webhook_url:
        raise ServiceError("no_alert_channel", "Set an alert address (or a webhook) first.")
    now = timezone.now()
    with transaction.atomic():
        raised = alerts_raise(care=care, kind=CareAlert.Kind.TEST, subject_key=f"test:{uuid.uuid4().hex}", now=now,
                              quiet=False)
        ids = list(CareAlert.objects.filter(owner_id=owner_id, subject_key=raised[0].subject_key)
                   .values_list("id", flat=True))
        _dispatch_after_commit(ids, now=now)
    return list(CareAlert.objects.filter(id__in=ids))


def care_alerts_recent(*, owner_id: int, limit: int = 10) -> list[CareAlert]:
    """The household's latest alerts, newest first (the alert page shows what became of each)."""
    alerts = CareAlert.objects.filter(owner_id=owner_id).order_by("-created_at", "-id")
    return list(alerts[:limit])


def _dispatch_after_commit(alert_ids: Iterable[int], *, now: dt.datetime) -> None:
    ids = list(alert_ids)
    if not ids:
        return
    CareAlert.objects.filter(id__in=ids).update(enqueued_at=now)
    transaction.on_commit(lambda: [care_alert_send_send(alert_id=alert_id) for alert_id in ids])


# --- The tick -----------------------------------------------------------------------------------


@dataclass
class TickSummary:
    doses_made: int = 0
    unconfirmed: int = 0
    missed: int = 0
    silent: int = 0
    back: int = 0
    stale_sends: int = 0
    dispatched: int = 0


def care_tick(*, now: dt.datetime | None = None) -> TickSummary:
    """Beat, every CARE_TICK_SECONDS (and safe to run twice at once): make doses ahead, close the
    windows that passed, watch for silent Pis, and send the alerts that are due."""
    now = now or timezone.now()
    summary = TickSummary()
    summary.doses_made = doses_schedule(now=now).made
    with_device = set(AccessToken.objects.exclude(device_name="").values_list("owner_id", flat=True).distinct())
    for dose in doses_due_to_close(now=now):
        with transaction.atomic():
            state = dose_close(dose=dose, now=now)
            # A household with no Pi yet is not alerted: nothing could have played it.
            if state is not None and dose.owner_id in with_device:
                alerts_raise(care=care_settings_get(owner_id=dose.owner_id), kind=KIND_OF_STATE[state],
                             subject_key=f"dose:{dose.id}", dose=dose, now=now)
        if state == Dose.State.MISSED:
            summary.missed += 1
        elif state == Dose.State.UNCONFIRMED:
            summary.unconfirmed += 1
    summary.silent, summary.back = _devices_watch(now=now)
    summary.stale_sends = CareAlert.objects.filter(
        status=CareAlert.Status.SENDING, claimed_at__lt=now - ALERT_SENDING_STALE,
    ).update(status=CareAlert.Status.UNKNOWN, error="claimed, then never recorded: the worker stopped mid-send")
    due = CareAlert.objects.filter(status=CareAlert.Status.PENDING, not_before__lte=now).filter(
        # Never sent; sent long ago and still pending (a lost message); or a retry whose backoff ended.
        Q(enqueued_at=None) | Q(enqueued_at__lt=now - ALERT_REDISPATCH) | Q(enqueued_at__lt=F("not_before"))
    )
    with transaction.atomic():
        ids = list(due.values_list("id", flat=True))
        _dispatch_after_commit(ids, now=now)
    summary.dispatched = len(ids)
    return summary


def _devices_watch(*, now: dt.datetime) -> tuple[int, int]:
    """Households whose Pi fell silent (one alert, its last contact in it) or came back (one note)."""
    window = dt.timedelta(minutes=settings.DEVICE_SILENT_MINUTES)
    contacts = devices_last_contacts()
    silent = back = 0
    for owner_id, last in contacts.items():
        care = CareSettings.objects.filter(owner_id=owner_id).first()
        if last < now - window and (care is None or care.device_silent_since is None):
            if care is None:
                care, _ = CareSettings.objects.get_or_create(owner_id=owner_id)
            with transaction.atomic():
                if CareSettings.objects.filter(id=care.id, device_silent_since=None).update(device_silent_since=now):
                    alerts_raise(care=care, kind=CareAlert.Kind.DEVICE_SILENT, subject_key=f"silent:{now.isoformat()}",
                                 last_contact_at=last, now=now)
                    silent += 1
        elif care is not None and care.device_silent_since is not None and last > care.device_silent_since:
            since = care.device_silent_since
            with transaction.atomic():
                if CareSettings.objects.filter(id=care.id, device_silent_since=since).update(device_silent_since=None):
                    alerts_raise(care=care, kind=CareAlert.Kind.DEVICE_BACK, subject_key=f"back:{since.isoformat()}",
                                 last_contact_at=last, now=now)
                    back += 1
    return silent, back


# --- Words ----------------------------------------------------------------------------------------

_WORDS = {
    "ko": {
        CareAlert.Kind.DOSE_UNCONFIRMED: (
            "[CarePill] {time} 약 알림을 확인하지 않으셨습니다",
            "{date} {time} 알림 “{text}”이(가) {plays}번 재생되었지만 {window}분 안에 확인되지 않았습니다.\n"
            "전화로 안부를 확인해 주세요.",
        ),
        CareAlert.Kind.DOSE_MISSED: (
            "[CarePill] {time} 약 알림이 재생되지 않았습니다",
            "{date} {time} 알림 “{text}”이(가) 재생되지 않았습니다.\n"
            "Pi의 전원과 스피커를 확인해 주세요.",
        ),
        CareAlert.Kind.DEVICE_SILENT: (
            "[CarePill] Pi가 응답하지 않습니다",
            "Pi가 {silent}분 넘게 연결되지 않았습니다. 마지막 연결: {last_contact}.\n"
            "전원과 인터넷 연결을 확인해 주세요. 그동안 알림은 Pi에 저장된 목소리로 재생됩니다.",
        ),
        CareAlert.Kind.DEVICE_BACK: (
            "[CarePill] Pi가 다시 연결되었습니다",
            "Pi가 다시 연결되었습니다. 마지막 연결: {last_contact}.",
        ),
        CareAlert.Kind.TEST: (
            "[CarePill] 시험 알림",
            "시험 알림입니다. 이 메시지를 받으셨다면 알림이 제대로 설정되었습니다.",
        ),
        "footer": "\n\n자세히 보기: {pages}\n(시각은 {zone} 기준입니다.)\n",
    },
    "en": {
        CareAlert.Kind.DOSE_UNCONFIRMED: (
            "[CarePill] The {time} reminder was not confirmed",
            "The reminder “{text}” of {date} {time} played {plays} time(s) but was not confirmed within {window} "
            "minutes.\nPlease call to check in.",
        ),
        CareAlert.Kind.DOSE_MISSED: (
            "[CarePill] The {time} reminder did not play",
            "The reminder “{text}” of {date} {time} was not played.\nPlease check the Pi's power and speaker.",
        ),
        CareAlert.Kind.DEVICE_SILENT: (
            "[CarePill] The Pi is silent",
            "The Pi has not been heard from for more than {silent} minutes. Last contact: {last_contact}.\n"
            "Please check its power and network. Meanwhile it plays reminders from what it has stored.",
        ),
        CareAlert.Kind.DEVICE_BACK: (
            "[CarePill] The Pi is back",
            "The Pi is connected again. Last contact: {last_contact}.",
        ),
        CareAlert.Kind.TEST: (
            "[CarePill] Test alert",
            "This is a test alert. If you received it, alerts are set up correctly.",
        ),
        "footer": "\n\nSee it all: {pages}\n(Times are in {zone}.)\n",
    },
}


@dataclass(frozen=True)
class AlertMessage:
    subject: str
    body: str
    data: dict  # the webhook's `data`


def alert_message(*, alert: CareAlert, care: CareSettings) -> AlertMessage:
    """The alert in the household's language (Korean by default), times in household time."""
    zone = household_zone(care)
    words = _WORDS.get(care.alert_language, _WORDS["ko"])
    dose = alert.dose
    fields = {
        "pages": settings.CARE_PAGES_URL, "zone": str(zone), "window": settings.DOSE_ALERT_MINUTES,
        "silent": settings.DEVICE_SILENT_MINUTES,
        "last_contact": (alert.last_contact_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
                         if alert.last_contact_at else "-"),
    }
    data: dict = {"household_timezone": str(zone)}
    if dose is not None:
        fields.update(text=dose.text, date=dose.local_date.isoformat(), time=dose.local_time, plays=dose.plays)
        data["dose"] = {
            "id": dose.id, "phrase_id": dose.phrase_id, "text": dose.text, "state": dose.state, "plays": dose.plays,
            "scheduled_for": dose.scheduled_for.astimezone(zone).isoformat(),
            "first_played_at": dose.first_played_at.isoformat() if dose.first_played_at else None,
        }
    if alert.last_contact_at is not None:
        data["last_contact_at"] = alert.last_contact_at.isoformat()
    subject, body = words[alert.kind]
    return AlertMessage(subject=subject.format(**fields), body=body.format(**fields) + words["footer"].format(**fields),
                        data=data)


# --- Sending ------------------------------------------------------------------------------------


class AlertNotSent(Exception):
    """Nothing reached the recipient (the connection was refused, or the webhook said 5xx/429):
    safe to try again."""


def care_alert_send(*, alert_id: int, now: dt.datetime | None = None) -> str:
    """Send one alert, once; its status afterwards. A rerun after it was claimed does nothing."""
    now = now or timezone.now()
    claimed = CareAlert.objects.filter(id=alert_id, status=CareAlert.Status.PENDING, not_before__lte=now).update(
        status=CareAlert.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    alert = CareAlert.objects.select_related("dose").filter(id=alert_id).first()
    if not claimed or alert is None:
        return alert.status if alert is not None else "gone"
    care = care_settings_get(owner_id=alert.owner_id)
    message = alert_message(alert=alert, care=care)
    try:
        if alert.channel == CareAlert.Channel.EMAIL:
            _mail_send(alert=alert, message=message)
        else:
            _webhook_send(alert=alert, message=message, now=now)
    except AlertNotSent as exc:
        return _not_sent(alert=alert, error=str(exc), now=now)
    except (ServiceError, smtplib.SMTPException, OSError, requests.RequestException) as exc:
        # Refused for good (a bad address, a forbidden webhook), or failed mid-send: not retried.
        error = f"{exc.code}: {exc.message}" if isinstance(exc, ServiceError) else f"{type(exc).__name__}: {exc}"
        CareAlert.objects.filter(id=alert.id).update(status=CareAlert.Status.FAILED, error=error[:2000])
        logger.warning("alert %s (%s by %s) failed: %s", alert.id, alert.kind, alert.channel, error)
        return CareAlert.Status.FAILED
    CareAlert.objects.filter(id=alert.id).update(status=CareAlert.Status.SENT, sent_at=timezone.now(), error="")
    return CareAlert.Status.SENT


def _not_sent(*, alert: CareAlert, error: str, now: dt.datetime) -> str:
    if alert.attempts > settings.ALERT_SEND_RETRIES:
        CareAlert.objects.filter(id=alert.id).update(status=CareAlert.Status.FAILED, error=error[:2000])
        return CareAlert.Status.FAILED
    wait = min(RETRY_CAP, RETRY_BASE * 2 ** (alert.attempts - 1))
    CareAlert.objects.filter(id=alert.id, status=CareAlert.Status.SENDING).update(
        status=CareAlert.Status.PENDING, not_before=now + wait, error=error[:2000])
    return CareAlert.Status.PENDING


def _mail_send(*, alert: CareAlert, message: AlertMessage) -> None:
    connection = get_connection(fail_silently=False)
    try:
        # Opening sends no mail: a refusal here is safe to retry.
        connection.open()
    except (TimeoutError, smtplib.SMTPConnectError, smtplib.SMTPServerDisconnected, ConnectionError) as exc:
        raise AlertNotSent(f"{type(exc).__name__}: {exc}") from exc
    try:
        EmailMessage(subject=message.subject, body=message.body, to=[alert.recipient],
                     connection=connection, headers={"Auto-Submitted": "auto-generated"}).send()
    finally:
        connection.close()


def _webhook_send(*, alert: CareAlert, message: AlertMessage, now: dt.datetime) -> None:
    webhook_url_check(url=alert.recipient, owner_id=alert.owner_id)
    event = alert.kind if alert.kind != CareAlert.Kind.TEST else "alert.test"
    body = json.dumps({"type": event, "timestamp": now.isoformat(),
                       "data": {**message.data, "subject": message.subject}},
                      separators=(",", ":"), ensure_ascii=False).encode()
    try:
        response = webhook_post_signed(owner_id=alert.owner_id, url=alert.recipient,
                                       message_id=f"msg_alert_{alert.id}", body=body)
    except (requests.ConnectionError, requests.Timeout) as exc:
        # The receiver drops a repeat by its webhook-id (Standard Webhooks), so a retry is safe here.
        raise AlertNotSent(f"{type(exc).__name__}: {exc}") from exc
    if response.status_code in (408, 429) or response.status_code >= 500:
        raise AlertNotSent(f"HTTP {response.status_code}")
    if not 200 <= response.status_code < 300:
        raise ServiceError("webhook_refused", f"HTTP {response.status_code}: {response.text[:200]}")
