"""GET /metrics: Prometheus text, bearer-token guarded, from the DB and Redis."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from voice_tts.models import Job
from voice_tts.result_cache import clip_use_count


def samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_disabled_without_a_token_and_guarded_with_one(client, settings, db):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    settings.METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Basic s3cret-token").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200


def test_job_counts_cache_ratio_and_histogram(client, settings, alice):
    settings.METRICS_TOKEN = "tok"
    base = dict(owner=alice, text="x", status=Job.Status.SUCCEEDED)
    Job.objects.create(**base, cache_hit=False, processing_time_ms=800)
    Job.objects.create(**base, cache_hit=False, processing_time_ms=4000)
    Job.objects.create(owner=alice, text="y", status=Job.Status.QUEUED)
    clip_use_count(clip_id=1)  # a cache hit: counted in Redis, no job row
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer tok")
    assert response["Content-Type"].startswith("text/plain")
    found = samples(response.content.decode())
    assert found[("carepill_jobs", (("status", "succeeded"),))] == 2
    assert found[("carepill_jobs", (("status", "queued"),))] == 1
    assert found[("carepill_jobs", (("status", "failed"),))] == 0
    assert found[("carepill_job_cache_total", (("result", "hit"),))] == 1
    assert found[("carepill_job_cache_total", (("result", "miss"),))] == 2
    assert found[("carepill_cache_hit_ratio", ())] == pytest.approx(1 / 3)
    assert found[("carepill_synthesis_duration_seconds_bucket", (("le", "0.5"),))] == 0
    assert found[("carepill_synthesis_duration_seconds_bucket", (("le", "1.0"),))] == 1
    assert found[("carepill_synthesis_duration_seconds_bucket", (("le", "5.0"),))] == 2
    assert found[("carepill_synthesis_duration_seconds_bucket", (("le", "+Inf"),))] == 2
    assert found[("carepill_synthesis_duration_seconds_sum", ())] == pytest.approx(4.8)
    assert found[("carepill_redis_up", ())] == 1
    for queue in settings.CELERY_QUEUES_ALL:
        assert ("carepill_queue_depth", (("queue", queue),)) in found


@pytest.mark.worker
def test_queue_depth_and_engine_load_time_from_a_live_worker(worker, live_server, settings):
    import requests

    settings.METRICS_TOKEN = "tok"
    text = requests.get(live_server.url + "/metrics", headers={"Authorization": "Bearer tok"}, timeout=30).text
    found = samples(text)
    loads = [v for (name, labels), v in found.items() if name == "carepill_engine_load_seconds"
             and ("engine", "espeak") in labels]
    assert loads and all(v >= 0 for v in loads)
    assert any(name == "carepill_worker_ready" and v == 1 for (name, _), v in found.items())
    assert found[("carepill_queue_depth", (("queue", settings.SYNTHESIS_BATCH_QUEUE),))] >= 0
