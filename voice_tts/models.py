"""Voices, synthesis jobs and the clips they produce.

The database row is the source of truth: a file on disk without its row is garbage,
and a row is only written once its file has been renamed into place.
"""

from __future__ import annotations

import base64
import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

# How a finished style search ended (Voice.adaptation_outcome).
ADAPTATION_OUTCOMES = ("adapted", "unchanged")


class AdaptationState(models.TextChoices):
    """Where a voice's own style search (issue 26, services/voice_adaptation.py) stands."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    NOT_APPLICABLE = "not_applicable"


class Voice(models.Model):
    """A caregiver's reference clip, normalised (mono 16-bit WAV, fixed rate, loudness).

    Uploading a new voice deactivates the previous one but keeps it: jobs point at the
    exact voice they were made with.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="voices")
    audio = models.FileField(max_length=255)
    duration_seconds = models.FloatField()
    sample_rate = models.PositiveIntegerField()
    transcript = models.TextField(blank=True, default="")
    language = models.CharField(max_length=8, default="ko")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The neural_cpu engine's style search for this speaker (services/voice_adaptation.py). The
    # voice speaks with today's matching until the state is done; then with its own table.
    adaptation_state = models.CharField(max_length=16, choices=AdaptationState.choices,
                                        default=AdaptationState.NOT_APPLICABLE)
    adaptation_progress = models.FloatField(default=0.0)
    adaptation_error_code = models.CharField(max_length=64, blank=True, default="")
    # Storage names: the finished table, and the search state between slices (both beside the
    # reference, `<audio>.style-*` / `<audio>.adapt-*`, removed with it).
    adaptation_style = models.CharField(max_length=255, blank=True, default="")
    adaptation_style_sha = models.CharField(max_length=64, blank=True, default="")
    adaptation_state_file = models.CharField(max_length=255, blank=True, default="")
    # A slice's claim: set by a conditional UPDATE, cleared when the slice stores its state; a
    # claim whose worker died expires and the next slice takes over from the stored state.
    adaptation_claim = models.CharField(max_length=36, blank=True, default="")
    adaptation_claimed_until = models.DateTimeField(null=True, blank=True)
    adaptation_slices = models.PositiveIntegerField(default=0)
    # When a slice was last sent or stored: a search silent for long lost its message (the sweep resends).
    adaptation_touched_at = models.DateTimeField(null=True, blank=True)
    adaptation_summary = models.JSONField(default=dict, blank=True)
    # Storage names of the "before and after" preview (16-bit WAV beside the reference,
    # `<audio>.preview-*`, removed with it): one sentence spoken with today's matching and with the
    # finished table. Set in the same UPDATE that marks the search done; empty when none was made.
    adaptation_preview_before = models.CharField(max_length=255, blank=True, default="")
    adaptation_preview_after = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["owner"], condition=Q(is_active=True), name="one_active_voice_per_owner"),
        ]

    def __str__(self) -> str:
        return f"voice {self.id} of {self.owner_id}"

    @property
    def adaptation_outcome(self) -> str | None:
        """Once the search is done: "adapted" (its own table is in use) or "unchanged" (no candidate
        passed every judge, so today's matching stays); None before, or for a failed search."""
        if self.adaptation_state != AdaptationState.DONE:
            return None
        adapted, unchanged = ADAPTATION_OUTCOMES
        return adapted if self.adaptation_style else unchanged


class Clip(models.Model):
    """A synthesised utterance, cached under a key that names everything that shaped it.

    Unique on (owner, cache_key): two identical concurrent requests can never produce two
    rows, and the file name is derived from the key, so never two files either.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="clips")
    voice = models.ForeignKey(Voice, on_delete=models.CASCADE, related_name="clips")
    cache_key = models.CharField(max_length=64)
    text = models.TextField()
    language = models.CharField(max_length=8)
    params = models.JSONField(default=dict, blank=True)
    engine = models.CharField(max_length=32)
    model_version = models.CharField(max_length=128)
    audio = models.FileField(max_length=255)
    duration_seconds = models.FloatField()
    sample_rate = models.PositiveIntegerField()
    access_count = models.PositiveIntegerField(default=0)
    last_accessed_at = models.DateTimeField(null=True, blank=True)
    # Pinned clips (a reminder phrase needs them) are never evicted by the quota.
    pinned = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # sha256 of the WAV bytes, so clients (the Pi) can verify downloads without the
    # server re-reading every file per request; blank for clips stored before 0002.
    sha256 = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "cache_key"], name="one_clip_per_owner_key")]
        indexes = [models.Index(fields=["owner", "pinned", "last_accessed_at"])]

    def __str__(self) -> str:
        return f"clip {self.cache_key[:12]} of {self.owner_id}"


class ClipEncoding(models.Model):
    """A clip's audio in another format (opus, mp3, flac), encoded once from its WAV
    (services/clip_formats.py) and stored beside it.

    The file is named by its own sha256, and `source_sha256` is the sha256 of the WAV it was made
    from: a clip re-synthesised under the same WAV name never serves an old encoding (the row is
    only used while `source_sha256` equals the clip's `sha256`). The row goes with the clip
    (CASCADE) and the file with the row (voice_tts.receivers, after the commit).
    """

    clip = models.ForeignKey(Clip, on_delete=models.CASCADE, related_name="encodings")
    audio_format = models.CharField(max_length=8)
    audio = models.FileField(max_length=255)
    source_sha256 = models.CharField(max_length=64)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["clip", "audio_format"], name="one_encoding_per_clip_format"),
        ]

    def __str__(self) -> str:
        return f"{self.audio_format} of clip {self.clip_id}"


class AccessToken(models.Model):
    """An API token, stored as the SHA-256 digest of its key only.

    The key is shown once, when it is issued (`services.tokens.token_issue`); a copy of the
    database or of a backup holds nothing that authenticates. A key has 256 random bits, so its
    digest needs no salt or slow hash to resist guessing.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_tokens")
    digest = models.CharField(max_length=64, unique=True)
    # The key's first characters, to tell tokens apart in the admin (not enough to use one).
    prefix = models.CharField(max_length=12)
    # A device's token (the Pi) has its name and may only do what a player needs
    # (apis/permissions.py: DeviceScope); a login's token has none.
    device_name = models.CharField(max_length=100, blank=True, default="")
    # The clip format a device last asked its bundle in (services/device_formats.py): the worker
    # stores the owner's clips in these formats as it makes them, so the bundle never encodes.
    audio_format = models.CharField(max_length=8, default="wav")
    last_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # None: until revoked (devices); a login's token expires ACCESS_TOKEN_DAYS after it.
    expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"token {self.prefix}... of {self.owner_id}"

    @property
    def is_device(self) -> bool:
        return bool(self.device_name)


class EngineVersion(models.Model):
    """The weights a speech engine's workers last loaded (`model_version`, part of every cache key).

    Workers publish it here and in Redis when they load; the web reads Redis and falls back to
    this row, so the clip cache never mixes up weights, with or without Redis.
    """

    engine = models.CharField(max_length=32, unique=True)
    model_version = models.CharField(max_length=128)
    loaded_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.engine} {self.model_version}"


class WebhookStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    DISABLED = "disabled"


class Job(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    class Priority(models.IntegerChoices):
        # Lower goes first: a caregiver's request, a /v1 stream's sentence, a reminder spoken now.
        INTERACTIVE = 0
        # Nightly pre-generation (the batch queue): runs when no interactive work is waiting.
        BATCH = 1

    FINISHED = (Status.SUCCEEDED, Status.FAILED)
    # Handed to the broker and not finished: what JOBS_IN_FLIGHT_PER_USER counts (services.turns).
    IN_FLIGHT = (Status.QUEUED, Status.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tts_jobs")
    # A deleted voice takes its clips with it (biometric data), but the job history stays.
    voice = models.ForeignKey(Voice, on_delete=models.SET_NULL, null=True, related_name="jobs")
    text = models.TextField()
    language = models.CharField(max_length=8, default="ko")
    params = models.JSONField(default=dict, blank=True)
    use_cache = models.BooleanField(default=True)
    webhook_url = models.URLField(max_length=2000, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    cache_hit = models.BooleanField(default=False)
    cache_key = models.CharField(max_length=64, blank=True, default="")
    clip = models.ForeignKey(Clip, on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs")
    # Claims so far (a worker that dies mid-job makes the next claim count again).
    attempts = models.PositiveIntegerField(default=0)
    # When a task message for this job was last sent, and how many were sent: the
    # sweeper re-sends messages lost with a Redis restart, a bounded number of times.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    enqueue_count = models.PositiveIntegerField(default=0)
    webhook_status = models.CharField(max_length=16, choices=WebhookStatus.choices, blank=True, default="")
    # Queue the job's messages go to ("" = the interactive synthesis queue).
    queue = models.CharField(max_length=64, blank=True, default="")
    # Celery task id of the message that claimed the job (see services.jobs.job_claim).
    task_id = models.CharField(max_length=64, blank=True, default="")
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.INTERACTIVE)
    # Waiting in our own queue (services.turns): `queued` to clients, but no message was sent yet;
    # its owner's turn releases it. False for every row written before fair turns (they were sent),
    # so only job_create holds a job.
    held = models.BooleanField(default=False)
    # When its turn came (the first message was sent); the round-robin orders users by their latest.
    released_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    processing_time_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            # services.turns: the held jobs, per owner in turn order; the jobs in flight, per owner.
            models.Index(fields=["owner", "priority", "created_at"], condition=Q(status="queued", held=True),
                         name="job_held_turn"),
            models.Index(fields=["owner"], condition=Q(status__in=["queued", "running"], held=False),
                         name="job_in_flight"),
            models.Index(fields=["released_at"], condition=Q(released_at__isnull=False), name="job_released_at"),
        ]

    def __str__(self) -> str:
        return f"job {self.id} ({self.status})"


def _new_webhook_secret() -> str:
    # Standard Webhooks format: "whsec_" + base64 of the raw key bytes.
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookSecret(models.Model):
    """Per-user signing secret for Standard Webhooks signatures.

    After a rotation the previous secret stays valid for a grace period, and both
    signatures are sent, so receivers can switch without missing an event.
    """

    owner = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_secret")
    secret = models.CharField(max_length=128, default=_new_webhook_secret)
    previous_secret = models.CharField(max_length=128, blank=True, default="")
    previous_valid_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"webhook secret of {self.owner_id}"


class WebhookDelivery(models.Model):
    """One attempt to deliver a job's completion event; every attempt is kept."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="webhook_deliveries")
    message_id = models.CharField(max_length=64)
    url = models.URLField(max_length=2000)
    attempt = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    delivered = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job", "attempt"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"delivery {self.attempt} of job {self.job_id}"


class DisabledWebhookUrl(models.Model):
    """A URL that answered 410 Gone: no more deliveries to it for this user."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="disabled_webhook_urls")
    url = models.URLField(max_length=2000)
    disabled_at = models.DateTimeField(auto_now_add=True)
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "url"], name="one_disabled_row_per_owner_url")]

    def __str__(self) -> str:
        return f"{self.url} (disabled for {self.owner_id})"


class ReminderPhrase(models.Model):
    """A sentence the Pi speaks every day ("약 드실 시간입니다"), pre-generated each night.

    `times` lists local "HH:MM" times of the Pi's clock; empty means "daily" without a
    fixed time (the CarePill side decides when, and `carepill-voice run` never plays it).
    `days` lists ISO weekdays (1 = Monday … 7 = Sunday); empty means every day. Text is
    stored normalised, exactly as a job would carry it, so the phrase's cache key equals
    the key of an API job with the same text.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reminder_phrases")
    text = models.TextField()
    language = models.CharField(max_length=8, default="ko")
    times = models.JSONField(default=list, blank=True)
    days = models.JSONField(default=list, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["owner", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "language", "text"], name="one_phrase_per_owner_text"),
        ]

    def __str__(self) -> str:
        return f"phrase {self.id} of {self.owner_id}: {self.text[:40]}"


class PhrasePlay(models.Model):
    """One time a Pi spoke (or failed to speak) a reminder, as the Pi reported it.

    `key` is chosen by the Pi (its install id, the phrase, the local date and time), so a
    report resent after a lost answer is stored once: (owner, key) is unique.
    """

    class Outcome(models.TextChoices):
        PLAYED = "played"  # the family voice's clip
        FALLBACK = "fallback"  # the Pi's local voice: no clip could be had
        FAILED = "failed"  # nothing was spoken

    class Source(models.TextChoices):
        CACHE = "cache"
        SERVER = "server"
        FALLBACK = "fallback"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="phrase_plays")
    phrase = models.ForeignKey(ReminderPhrase, on_delete=models.CASCADE, related_name="plays")
    key = models.CharField(max_length=200)
    played_at = models.DateTimeField()
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    source = models.CharField(max_length=16, choices=Source.choices)
    # The device whose token reported it (null: a caregiver's own token).
    device = models.ForeignKey(
        "AccessToken", on_delete=models.SET_NULL, null=True, blank=True, related_name="plays"
    )
    received_at = models.DateTimeField(auto_now_add=True)
    # The occurrence it played (reports from Pis that say which; services/doses.py). The Dose
    # model is defined below: referenced by name.
    dose = models.ForeignKey("Dose", on_delete=models.SET_NULL, null=True, blank=True, related_name="play_reports")

    class Meta:
        ordering = ["-played_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="one_play_per_owner_key")]
        indexes = [models.Index(fields=["phrase", "-played_at"], name="play_phrase_recent")]

    def __str__(self) -> str:
        return f"phrase {self.phrase_id} {self.outcome} at {self.played_at:%Y-%m-%d %H:%M}"


class CareSettings(models.Model):
    """One household's reminder loop (the account is the household): its zone, where alerts go,
    and what the server last heard from its Pi.

    The zone the doses are made in is `timezone` (set by the caregiver) or else `device_timezone`
    (reported by the Pi), or else settings.TIME_ZONE; when both are set and differ, the pages say
    so rather than guess (services.care.household_zone).
    """

    class Language(models.TextChoices):
        KO = "ko", "한국어"
        EN = "en", "English"

    owner = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="care_settings")
    timezone = models.CharField(max_length=64, blank=True, default="")
    device_timezone = models.CharField(max_length=64, blank=True, default="")
    # Blank: the account's own email.
    alert_email = models.EmailField(blank=True, default="")
    alert_webhook_url = models.URLField(max_length=2000, blank=True, default="")
    alert_language = models.CharField(max_length=8, choices=Language.choices, default=Language.KO)
    # Alerts that fall between these local times wait until the end (None: no quiet hours).
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)
    # Set when a "the Pi is silent" alert was raised; cleared (with a "back" note) when it returns.
    device_silent_since = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "care settings"

    def __str__(self) -> str:
        return f"care settings of {self.owner_id}"


class Dose(models.Model):
    """One occurrence of a reminder (phrase, household-local date, time), made ahead from the
    schedule, and what became of it.

    upcoming → played (reported, waiting for confirmation) → confirmed; a window after its time
    (DOSE_ALERT_MINUTES) a played dose becomes `unconfirmed` and one never played `missed`.
    Every transition is a conditional UPDATE (services/doses.py), so two beat runs, or a late
    report, never count twice.
    """

    class State(models.TextChoices):
        UPCOMING = "upcoming"
        PLAYED = "played"
        CONFIRMED = "confirmed"
        UNCONFIRMED = "unconfirmed"
        MISSED = "missed"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="doses")
    phrase = models.ForeignKey(ReminderPhrase, on_delete=models.CASCADE, related_name="doses")
    # The words as they were when the dose was made (a phrase edited later keeps its history).
    text = models.TextField()
    local_date = models.DateField()
    local_time = models.CharField(max_length=5)  # "HH:MM"
    timezone = models.CharField(max_length=64)
    scheduled_for = models.DateTimeField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.UPCOMING)
    plays = models.PositiveIntegerField(default=0)
    first_played_at = models.DateTimeField(null=True, blank=True)
    last_played_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirmation_key = models.CharField(max_length=200, blank=True, default="")
    # When the window closed on it (unconfirmed or missed).
    closed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["scheduled_for", "phrase_id"]
        constraints = [
            models.UniqueConstraint(fields=["phrase", "local_date", "local_time"], name="one_dose_per_occurrence"),
        ]
        indexes = [
            models.Index(fields=["owner", "local_date"], name="dose_owner_date"),
            models.Index(fields=["state", "scheduled_for"], name="dose_state_due"),
        ]

    def __str__(self) -> str:
        return f"dose of phrase {self.phrase_id} at {self.local_date} {self.local_time} ({self.state})"


class CareAlert(models.Model):
    """One message to the caregiver on one channel. Sent once: a worker claims it with a
    conditional UPDATE (pending → sending) *before* it sends, so a rerun, a second beat or a
    retry after a crash finds nothing to send (services/care_alerts.py says why that order)."""

    class Kind(models.TextChoices):
        DOSE_UNCONFIRMED = "dose.unconfirmed"
        DOSE_MISSED = "dose.missed"
        DEVICE_SILENT = "device.silent"
        DEVICE_BACK = "device.back"
        TEST = "test"

    class Channel(models.TextChoices):
        EMAIL = "email"
        WEBHOOK = "webhook"

    class Status(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"
        # Claimed, then nothing recorded (the worker died mid-send): never resent, so never twice.
        UNKNOWN = "unknown"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="care_alerts")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    # What the alert is about, unique per owner and channel: "dose:<id>", "silent:<since>", "test:<uuid>".
    subject_key = models.CharField(max_length=100)
    dose = models.ForeignKey(Dose, on_delete=models.CASCADE, null=True, blank=True, related_name="alerts")
    # For device alerts: the last contact the alert reports.
    last_contact_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # Quiet hours (or a retry's backoff) hold it until then.
    not_before = models.DateTimeField()
    recipient = models.CharField(max_length=2000, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    enqueued_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "kind", "subject_key", "channel"], name="one_alert_per_subject"),
        ]
        indexes = [models.Index(fields=["status", "not_before"], name="alert_status_due")]

    def __str__(self) -> str:
        return f"{self.kind} by {self.channel} to {self.owner_id} ({self.status})"
