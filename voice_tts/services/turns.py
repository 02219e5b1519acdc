"""Fair turns: the database is the queue of record, the broker holds only each user's turn.

A new job is written `held` (clients see `queued`). Each user has at most
JOBS_IN_FLIGHT_PER_USER jobs handed to the broker and not finished; `jobs_release` hands over
the next held jobs of every user with a free slot: users in round-robin order (the one whose
latest release is oldest first), each user's interactive jobs before their nightly batch jobs,
oldest first within a class. A user's batch jobs use at most JOBS_IN_FLIGHT_PER_USER - 1 slots
(at least one), so that user's next request finds a free slot at once instead of waiting behind
their batch messages. With every user's share of the broker bounded, one user's thousand jobs
delay another user's one job by at most that many syntheses per busy user, whatever the order
they were created in; across classes the workers' queue order does the rest (interactive queue
first, kombu's `priority` cycle: docs/operations.md#fair-turns-and-priority).

Who releases: job_create (inside its transaction, after the row: a lone job goes out at once when it
commits, with no second transaction; speech_create likewise, once for all its segments), every finished job
(after its commit, before its task message is acknowledged, so a single worker's next fetch
already sees the next turn), and beat every JOBS_RELEASE_SECONDS (the safety net for a release a
crash or a broker outage cut short).

Race-safety: a pass runs in one transaction holding one lock (PostgreSQL: a transaction-level
advisory lock; SQLite: the IMMEDIATE transaction holds the database's write lock from its start),
so two passes never both see the same free slot; each job is also released by a conditional
UPDATE on `held`. The messages go out after the commit: a broker that refuses them leaves
released rows with `enqueued_at` set, which the broker watch and the sweeper send again like any
lost message. No broker call happens inside the transaction.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Max
from django.utils import timezone

from voice_tts.dispatch import job_synthesis_send
from voice_tts.models import Job

logger = logging.getLogger(__name__)

# Jobs released per pass at most; beat's next pass goes on (a nightly batch of thousands).
RELEASE_LIMIT = 500
# The round-robin only compares recent releases: a user with none in this window goes first.
_RECENT = timedelta(minutes=10)
# pg_advisory_xact_lock key of the release pass ("turn" in ASCII); any fixed 64-bit number.
_PG_LOCK_KEY = 0x7475726E


@dataclass
class ReleaseReport:
    released: int = 0
    # Users that had a job released in this pass, in the order they were served.
    owners: list[int] = field(default_factory=list)


def _turns_lock() -> None:
    """Serialise release passes (inside the caller's transaction). SQLite needs nothing more:
    settings open every transaction IMMEDIATE, which takes the write lock at its start."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_PG_LOCK_KEY])


def _batch_slots(*, per_user: int) -> int:
    # One slot kept for the user's interactive work, unless there is only one.
    return max(1, per_user - 1)


def jobs_release(*, owner_id: int | None = None, limit: int = RELEASE_LIMIT,
                 now: datetime | None = None) -> ReleaseReport:
    """Hand the next held jobs to the broker, as far as their users' free slots allow.

    `owner_id`: only that user's jobs (job_create's pass: another user's slots did not change).
    Idempotent: a second pass right after the first releases nothing."""
    report = ReleaseReport()
    per_user = settings.JOBS_IN_FLIGHT_PER_USER
    batch_cap = _batch_slots(per_user=per_user)
    sends: list[tuple[Any, int, str]] = []
    held = Job.objects.filter(status=Job.Status.QUEUED, held=True)
    in_flight = Job.objects.filter(status__in=Job.IN_FLIGHT, held=False)
    if owner_id is not None:
        held, in_flight = held.filter(owner_id=owner_id), in_flight.filter(owner_id=owner_id)
    # Nothing held (most finished jobs): no lock taken. A job held just after this read is
    # released by its own creator's pass, which runs after its commit.
    if not held.exists():
        return report
    with transaction.atomic():
        _turns_lock()
        # Read once the lock is held: a release is stamped after every finish this pass saw.
        now = now or timezone.now()
        counts: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        for owner, priority, n in (in_flight.order_by().values("owner_id", "priority")
                                   .annotate(n=Count("id")).values_list("owner_id", "priority", "n")):
            counts[owner][priority] = n
        if owner_id is not None:
            # One user's pass (job_create's, on the path to the first audio byte): no turn order to work out,
            # so two queries fewer. A job held and then gone before the lock finds nothing to choose below.
            owners, latest = {owner_id}, {}
        else:
            owners = set(held.order_by().values_list("owner_id", flat=True).distinct())
            if not owners:
                return report
            recent = Job.objects.filter(released_at__gte=now - _RECENT)
            latest = dict(recent.order_by().values("owner_id").annotate(last=Max("released_at"))
                          .values_list("owner_id", "last"))
        # Round-robin: the user served longest ago first (never, or not within _RECENT: first of all).
        oldest = now - _RECENT - timedelta(days=1)
        for owner in sorted(owners, key=lambda o: (latest.get(o) or oldest, o)):
            if report.released >= limit:
                break
            total = sum(counts[owner].values())
            free = min(per_user - total, limit - report.released)
            if free <= 0:
                continue
            batch_free = batch_cap - counts[owner][Job.Priority.BATCH]
            chosen = []
            for job_id, priority, queue, text in (
                held.filter(owner_id=owner).order_by("priority", "created_at", "id")
                .values_list("id", "priority", "queue", "text")[:free]
            ):
                if priority == Job.Priority.BATCH:
                    if batch_free <= 0:
                        break
                    batch_free -= 1
                chosen.append((job_id, len(text), queue))
            if not chosen:
                continue
            # Conditional on `held`: a job can be released once only, whatever else runs.
            updated = Job.objects.filter(id__in=[job_id for job_id, _, _ in chosen], status=Job.Status.QUEUED,
                                         held=True).update(held=False, released_at=now, enqueued_at=now,
                                                           enqueue_count=F("enqueue_count") + 1)
            if updated != len(chosen):
                # A job was deleted (its owner, a data removal) between the read and the update (the
                # lock excludes other passes only): send only what this UPDATE released.
                still = set(Job.objects.filter(id__in=[job_id for job_id, _, _ in chosen], held=False,
                                               released_at=now).values_list("id", flat=True))
                chosen = [item for item in chosen if item[0] in still]
            sends.extend(chosen)
            report.released += len(chosen)
            report.owners.append(owner)

        def send() -> None:
            for job_id, text_length, queue in sends:
                job_synthesis_send(job_id=job_id, text_length=text_length, queue=queue)

        transaction.on_commit(send)
    if report.released:
        logger.info("released %d jobs of %d users", report.released, len(report.owners))
    return report


def jobs_held_count(*, owner_id: int | None = None) -> int:
    """Jobs waiting for their turn (not handed to the broker yet)."""
    rows = Job.objects.filter(status=Job.Status.QUEUED, held=True)
    return (rows if owner_id is None else rows.filter(owner_id=owner_id)).count()
