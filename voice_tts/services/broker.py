"""The broker watch: re-send, within a minute, the jobs whose messages the broker lost.

A Redis restarted without its data (no persistence, a failover to an empty replica, a
FLUSHALL) takes every queued task message with it while the job rows stay `queued`. The
sweeper re-sends those only after JOB_QUEUED_DEADLINE_SECONDS (10 minutes); this module
finds them within BROKER_WATCH_SECONDS of the broker being back.

Detection: a sentinel key in the broker's Redis, written without expiry. Redis keeps it
across a restart with intact persistence and across a failover to a replica that has the
data, so those cost nothing; it is gone exactly when the data is gone (a restart without
persistence, an empty replica, a flush). Redis' `run_id` would change on every restart, data
kept or not, and not at all on a flush, so it says less about what matters here. The sentinel
only tells (a log line, a metric): the repair is the comparison below, which runs on every
check, so a loss the sentinel cannot see (a replica promoted with the sentinel but without the
latest messages) is repaired too.

Comparison: the queued rows (sent more than BROKER_RECONCILE_GRACE_SECONDS ago, so a message
on its way to the broker is not mistaken for a lost one) against the task messages the broker
still holds, read the way kombu's Redis transport stores them: each queue is a list (plus one
list per priority step, `<queue><sep><step>`), and the messages reserved by workers are the
`unacked` hash, all under the transport's `global_keyprefix`. A row with no message is sent
again through `job_enqueue` (which records it on the row). A duplicate message is harmless:
the first claim of a job is a conditional UPDATE and a second one finds it taken.

Bounded: at most _BATCH rows per run (the next run continues, since it compares again), and
the broker is read only when such rows exist and holds at most BROKER_RECONCILE_SCAN_LIMIT
messages (beyond that the comparison is skipped and logged; the sweeper's deadline remains
the safety net). No Redis call happens inside a database transaction, and nothing is retried
here: a broker still down is logged and the next run tries again.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone
from kombu.transport.redis import Channel as RedisChannel

from voice_tts.dispatch import JOB_SYNTHESIZE_TASK
from voice_tts.models import Job
from voice_tts.redis_client import REDIS_ERRORS, redis_client, redis_key
from voice_tts.services.jobs import job_enqueue

logger = logging.getLogger(__name__)

# Rows compared per run, oldest first; a bigger backlog is finished by the next runs.
_BATCH = 1000
# Pause before a second look at the broker, when the first found messages missing.
_CONFIRM_SECONDS = 1.0
# Broker keys (under the transport's global_keyprefix, like kombu's own).
_SENTINEL = "broker:sentinel"
# Service keys (CAREPILL_REDIS_PREFIX): one run at a time, and the counters /metrics shows.
_LOCK = ("broker", "reconcile", "lock")
_COUNTERS = ("broker", "reconcile", "counters")


@dataclass
class ReconcileReport:
    broker_up: bool = True
    # The sentinel was missing: the broker lost its data (or this is its first check ever).
    broker_lost: bool = False
    # Another run held the lock; this one did nothing.
    busy: bool = False
    # Queued rows old enough to have their message in the broker.
    checked: int = 0
    # Messages read from the broker (lists, reserved), None when not read.
    listed: int | None = None
    reserved: int | None = None
    # More messages than BROKER_RECONCILE_SCAN_LIMIT: not compared.
    over_limit: bool = False
    resent: int = 0
    send_failed: int = 0

    def line(self) -> str:
        if not self.broker_up:
            return "broker unavailable, nothing compared (next run tries again)"
        if self.busy:
            return "another reconcile is running"
        seen = "not read" if self.listed is None else f"{self.listed} queued + {self.reserved} reserved"
        return (f"broker_lost={'yes' if self.broker_lost else 'no'} checked={self.checked} broker_messages=({seen})"
                f"{' over_limit=yes' if self.over_limit else ''} resent={self.resent} send_failed={self.send_failed}")


@dataclass(frozen=True)
class BrokerLayout:
    """Where kombu's Redis transport keeps the messages, from the transport options in settings
    and the installed kombu's own defaults for what they leave out."""

    prefix: str
    sep: str
    priority_steps: tuple[int, ...]
    unacked_key: str

    def queue_keys(self, queue: str) -> list[str]:
        # kombu's Channel._q_for_pri: step 0 is the bare queue name, the others "<queue><sep><step>".
        return [self.prefix + (f"{queue}{self.sep}{step}" if step else queue) for step in self.priority_steps]


def broker_layout() -> BrokerLayout:
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    return BrokerLayout(
        prefix=options.get("global_keyprefix", RedisChannel.global_keyprefix),
        sep=options.get("sep", RedisChannel.sep),
        priority_steps=tuple(sorted({0, *options.get("priority_steps", RedisChannel.priority_steps)})),
        unacked_key=options.get("unacked_key", RedisChannel.unacked_key),
    )


def _payload_job_id(payload: Any) -> str | None:
    """The job id of a kombu message (the dict kombu stores as JSON), if it is a synthesis task.
    Celery's message protocol 2 (its default): the task name in the headers, the body
    [args, kwargs, embed] as JSON, base64-encoded by kombu's virtual transport."""
    try:
        if payload["headers"]["task"] != JOB_SYNTHESIZE_TASK:
            return None
        body = payload["body"]
        if payload.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return str(uuid.UUID(str(args[0])))
    except (ValueError, TypeError, KeyError, IndexError, binascii.Error):
        return None


def _job_ids(raws: Iterable[bytes], *, reserved: bool) -> set[str]:
    found = set()
    for raw in raws:
        try:
            payload = json.loads(raw)
            # A reserved message is kept as [message, exchange, routing key] (kombu's QoS.append).
            job_id = _payload_job_id(payload[0] if reserved else payload)
        except (ValueError, TypeError, KeyError, IndexError):
            continue
        if job_id is not None:
            found.add(job_id)
    return found


@dataclass
class BrokerSnapshot:
    job_ids: set[str]
    listed: int
    reserved: int
    over_limit: bool = False


def broker_messages_read(*, client: redis.Redis, queues: Iterable[str], limit: int) -> BrokerSnapshot:
    """The ids of the jobs that have a synthesis message in the broker: waiting in a queue's
    lists, or reserved by a worker (kombu's `unacked` hash: [message, exchange, routing key]).

    Sizes first (one round trip), then, when within `limit`, every list and the hash in one
    MULTI: Redis runs it atomically, so a message moved meanwhile from a list to the hash by a
    worker (or back by kombu's restore, also a MULTI) is seen in one of the two."""
    layout = broker_layout()
    keys = [key for queue in sorted(set(queues)) for key in layout.queue_keys(queue)]
    unacked = layout.prefix + layout.unacked_key
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.llen(key)
        pipe.hlen(unacked)
        *list_sizes, reserved = pipe.execute()
    listed = sum(list_sizes)
    if listed + reserved > limit:
        return BrokerSnapshot(job_ids=set(), listed=listed, reserved=reserved, over_limit=True)
    with client.pipeline(transaction=True) as pipe:
        for key in keys:
            pipe.lrange(key, 0, limit - 1)
        pipe.hvals(unacked)
        *lists, reserved_raw = pipe.execute()
    waiting = (item for items in lists for item in items)
    job_ids = _job_ids(waiting, reserved=False) | _job_ids(reserved_raw, reserved=True)
    return BrokerSnapshot(job_ids=job_ids, listed=sum(len(items) for items in lists), reserved=len(reserved_raw))


def _sentinel_missing(*, client: redis.Redis) -> bool:
    """Write the sentinel if it is missing (SET NX: of two concurrent checks, one sees it
    missing); missing means the broker no longer holds what it held at the previous check."""
    name = broker_layout().prefix + _SENTINEL
    return bool(client.set(name, timezone.now().isoformat(), nx=True))


def _candidates(*, cutoff: datetime, job_ids: Iterable[Any] | None = None) -> QuerySet[Job]:
    """Queued rows sent before `cutoff` with sends left (JOB_MAX_ENQUEUES bounds every send,
    these included: past it the sweeper fails the job after its deadline). Held rows were never
    sent (their turn has not come, services.turns): no message of theirs can be lost."""
    rows = Job.objects.filter(status=Job.Status.QUEUED, held=False,
                              enqueue_count__lt=settings.JOB_MAX_ENQUEUES).filter(
        Q(enqueued_at__lt=cutoff) | Q(enqueued_at__isnull=True, created_at__lt=cutoff)
    )
    return rows if job_ids is None else rows.filter(id__in=list(job_ids))


def _counted(*, client: redis.Redis, report: ReconcileReport) -> None:
    # Counters in Redis, like the cache-hit counter: they restart from 0 when Redis loses its
    # data, which Prometheus' rate() and increase() read as a counter reset.
    with client.pipeline(transaction=False) as pipe:
        pipe.hincrby(redis_key(*_COUNTERS), "runs", 1)
        if report.broker_lost:
            pipe.hincrby(redis_key(*_COUNTERS), "losses", 1)
        if report.resent:
            pipe.hincrby(redis_key(*_COUNTERS), "resent", report.resent)
        pipe.execute()


def broker_reconcile_counters() -> dict[str, int]:
    """runs, losses (sentinel found missing), resent (jobs sent again), since Redis last lost its data."""
    raw = redis_client().hgetall(redis_key(*_COUNTERS))
    counters = {name: 0 for name in ("runs", "losses", "resent")}
    counters.update({key.decode(): int(value) for key, value in raw.items() if key.decode() in counters})
    return counters


def broker_reconcile(*, now: datetime | None = None) -> ReconcileReport:
    """One check: detect a lost broker, send again the queued jobs it holds no message for.
    Run by beat every BROKER_WATCH_SECONDS and once by each worker as it starts."""
    now = now or timezone.now()
    report = ReconcileReport()
    client = redis_client()
    lock = client.lock(redis_key(*_LOCK), timeout=max(30.0, 2 * settings.BROKER_WATCH_SECONDS))
    try:
        if not lock.acquire(blocking=False):
            report.busy = True
            logger.info("broker reconcile: %s", report.line())
            return report
    except REDIS_ERRORS as exc:
        report.broker_up = False
        logger.warning("broker reconcile: %s: %s", report.line(), exc)
        return report
    try:
        _reconcile(client=client, now=now, report=report)
        _counted(client=client, report=report)
    except REDIS_ERRORS as exc:
        report.broker_up = False
        logger.warning("broker reconcile: %s: %s", report.line(), exc)
        return report
    finally:
        try:
            lock.release()
        except REDIS_ERRORS:
            pass  # expired (LockNotOwnedError is a RedisError), or Redis is gone, its data with it
    level = logging.WARNING if report.broker_lost or report.resent or report.send_failed or report.over_limit \
        else logging.INFO
    logger.log(level, "broker reconcile: %s", report.line())
    return report


def _reconcile(*, client: redis.Redis, now: datetime, report: ReconcileReport) -> None:
    report.broker_lost = _sentinel_missing(client=client)
    cutoff = now - timedelta(seconds=settings.BROKER_RECONCILE_GRACE_SECONDS)
    # The rows before the broker: a message sent for a row read here is in the broker when it is read.
    candidates = dict(_candidates(cutoff=cutoff).order_by("enqueued_at", "id").values_list("id", "queue")[:_BATCH])
    report.checked = len(candidates)
    if not candidates:
        return
    queues = {*settings.CELERY_QUEUES_ALL, *(queue or settings.SYNTHESIS_QUEUE for queue in candidates.values())}
    snapshot = broker_messages_read(client=client, queues=queues, limit=settings.BROKER_RECONCILE_SCAN_LIMIT)
    report.listed, report.reserved, report.over_limit = snapshot.listed, snapshot.reserved, snapshot.over_limit
    if snapshot.over_limit:
        return
    missing = [job_id for job_id in candidates if str(job_id) not in snapshot.job_ids]
    if not missing:
        return
    # A worker takes a message off its list (BRPOP) and then, in a second command, records it as
    # reserved: a read between the two sees it nowhere. Look again a moment later; such a message
    # is reserved by then, or its job claimed.
    time.sleep(_CONFIRM_SECONDS)
    snapshot = broker_messages_read(client=client, queues=queues, limit=settings.BROKER_RECONCILE_SCAN_LIMIT)
    if snapshot.over_limit:
        report.over_limit = True
        return
    missing = [job_id for job_id in missing if str(job_id) not in snapshot.job_ids]
    if not missing:
        return
    # Read again after the broker: a job claimed (or finished) meanwhile had its message
    # taken, and needs none.
    for job_id in _candidates(cutoff=cutoff, job_ids=missing).order_by("enqueued_at", "id").values_list(
        "id", flat=True
    ):
        if not job_enqueue(job_id=job_id):
            # The broker went away again: stop here rather than spend every job's sends; the
            # next run compares again.
            report.send_failed += 1
            return
        report.resent += 1
