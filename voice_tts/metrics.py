"""Prometheus metrics at GET /metrics (bearer token: METRICS_TOKEN; unset -> 404).

Everything is computed at scrape time from the database (jobs) and Redis (queues,
worker heartbeats), not kept in process memory: gunicorn runs several processes and
workers run on other hosts, and the database already has the exact numbers. One
scrape costs three small aggregate queries and a few Redis commands.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator

import redis
from django.conf import settings
from django.db.models import Count, Q, Sum
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from voice_tts.models import Job
from voice_tts.redis_client import REDIS_ERRORS, redis_client
from voice_tts.result_cache import cache_hits_total
from voice_tts.services.broker import broker_reconcile_counters
from voice_tts.worker import status

# Seconds; GPU synthesis of one reminder is ~0.5-5 s, CPU engines up to a minute.
SYNTHESIS_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)


class CarePillCollector:
    def collect(self) -> Iterator[Metric]:
        yield from self._jobs()
        yield from self._synthesis_histogram()
        yield from self._redis()

    def _jobs(self) -> Iterator[Metric]:
        by_status = GaugeMetricFamily("carepill_jobs", "Synthesis jobs by status (all time).", labels=["status"])
        counts = dict.fromkeys(Job.Status.values, 0)
        counts.update(Job.objects.values("status").annotate(n=Count("id")).values_list("status", "n"))
        for name, value in sorted(counts.items()):
            by_status.add_metric([name], value)
        yield by_status

        # A hit writes no job row: hits are counted in Redis (result_cache), misses are the jobs
        # that synthesised. The hit counter restarts when Redis loses its data, as counters may.
        misses = Job.objects.filter(status=Job.Status.SUCCEEDED, cache_hit=False).count()
        try:
            hits = cache_hits_total()
        except REDIS_ERRORS:
            return
        counter = CounterMetricFamily("carepill_job_cache", "Speech requests by clip-cache outcome.",
                                      labels=["result"])
        counter.add_metric(["hit"], hits)
        counter.add_metric(["miss"], misses)
        yield counter
        ratio = GaugeMetricFamily("carepill_cache_hit_ratio", "Share of speech requests served from the clip cache.")
        ratio.add_metric([], hits / (hits + misses) if hits + misses else 0.0)
        yield ratio

    def _synthesis_histogram(self) -> Iterator[Metric]:
        # Real syntheses only (cache hits take 0 ms and would flatten the histogram).
        synthesised = Job.objects.filter(status=Job.Status.SUCCEEDED, cache_hit=False, processing_time_ms__isnull=False)
        aggregates = {f"le_{i}": Count("id", filter=Q(processing_time_ms__lte=int(bound * 1000)))
                      for i, bound in enumerate(SYNTHESIS_BUCKETS)}
        row = synthesised.aggregate(total=Count("id"), sum_ms=Sum("processing_time_ms"), **aggregates)
        buckets = [(str(bound), row[f"le_{i}"]) for i, bound in enumerate(SYNTHESIS_BUCKETS)]
        buckets.append(("+Inf", row["total"]))
        histogram = HistogramMetricFamily(
            "carepill_synthesis_duration_seconds", "Time from a worker claiming a job to its clip being stored.",
            labels=[],
        )
        histogram.add_metric([], buckets, sum_value=(row["sum_ms"] or 0) / 1000.0)
        yield histogram

    def _redis(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("carepill_redis_up", "Whether Redis (the broker) answered this scrape.")
        try:
            client = redis_client()
            depths = {queue: client.llen(settings.REDIS_KEY_PREFIX + queue) for queue in settings.CELERY_QUEUES_ALL}
            workers = status.workers_live()
            reconcile = broker_reconcile_counters()
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        depth = GaugeMetricFamily("carepill_queue_depth", "Messages waiting in each Celery queue.", labels=["queue"])
        for queue, value in sorted(depths.items()):
            depth.add_metric([queue], value)
        yield depth
        # Counted in Redis by the broker watch, so they restart when Redis loses its data (as
        # counters may); the loss that restarts them is counted again at once.
        losses = CounterMetricFamily("carepill_broker_data_losses",
                                     "Broker checks that found Redis had lost its data (the sentinel key missing).")
        losses.add_metric([], reconcile["losses"])
        resent = CounterMetricFamily("carepill_broker_jobs_resent",
                                     "Queued jobs sent again because the broker held no message for them.")
        resent.add_metric([], reconcile["resent"])
        yield from (losses, resent)

        labels = ["engine", "hostname", "pid"]
        ready = GaugeMetricFamily("carepill_worker_ready", "1 if the worker process has its engine loaded.",
                                  labels=labels)
        load = GaugeMetricFamily("carepill_engine_load_seconds", "Seconds the worker process took to load its engine.",
                                 labels=labels)
        syntheses = CounterMetricFamily("carepill_worker_syntheses", "Syntheses run by the worker process.",
                                        labels=labels)
        for worker in workers:
            key = [str(worker.get("engine", "")), str(worker.get("hostname", "")), str(worker.get("pid", ""))]
            ready.add_metric(key, 1 if worker.get("ready") else 0)
            if worker.get("load_seconds") is not None:
                load.add_metric(key, float(worker["load_seconds"]))
            syntheses.add_metric(key, float(worker.get("syntheses", 0)))
        yield from (ready, load, syntheses)


def _authorised(request: HttpRequest) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), settings.METRICS_TOKEN.encode())


def metrics_view(request: HttpRequest) -> HttpResponse:
    """A plain Django view: no session, no DRF, nothing a scraper does not need."""
    if not settings.METRICS_TOKEN:
        return HttpResponse("metrics disabled (set METRICS_TOKEN)\n", status=404, content_type="text/plain")
    if not _authorised(request):
        response = HttpResponse("bearer token required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CarePillCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
