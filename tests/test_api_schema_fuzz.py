"""The published OpenAPI schema, and schemathesis fuzzing the live server against it.

Every operation in the schema is fuzzed over real HTTP (pytest-django's live_server) with
a real Celery worker behind it, as a user who has an enrolled voice and a finished job:
generated inputs (schema-conforming and schema-violating ones) must never produce a 5xx,
and every answer must use a documented status code, content type, headers and body shape.

The number of examples is bounded (FUZZ_EXAMPLES per operation and mode, derandomised so a
CI run is reproducible); raise SCHEMATHESIS_EXAMPLES locally for a deeper run.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode, checks

FUZZ_EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "15"))

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    # Schema-violating input must be refused with a 4xx, never accepted.
    checks.negative_data_rejection,
    # An operation that declares token auth must refuse a request without / with a bad token.
    checks.ignored_auth,
]


def _schema_generated() -> dict[str, Any]:
    generated = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(generated, renderer_context={}))


def _operation_labels(schema: dict[str, Any]) -> list[str]:
    return [f"{method.upper()} {path}" for path, item in schema["paths"].items() for method in item
            if method in {"get", "post", "put", "patch", "delete"}]


OPERATIONS = _operation_labels(_schema_generated())


def test_schema_validates_without_warnings(tmp_path: Path) -> None:
    # `spectacular --validate --fail-on-warn` exits non-zero on an invalid schema or on any
    # view drf-spectacular could not describe (an unannotated response, a guessed type).
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert "openapi: 3." in out.read_text()


def test_schema_covers_every_api_route() -> None:
    from django.urls import get_resolver

    documented = {label.split(" ", 1)[1] for label in OPERATIONS}
    routes = set()

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if hasattr(pattern, "url_patterns"):
                walk(pattern.url_patterns, route)
            elif route.startswith(("api/", "v1/")) and not route.startswith("api/schema"):
                routes.add("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))

    walk(get_resolver().url_patterns, "")
    assert routes, "no /api/ routes found"
    assert routes == documented


def test_schema_served_publicly(live_server: Any) -> None:
    response = requests.get(live_server.url + "/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"},
                            timeout=30)
    assert response.status_code == 200
    served = response.json()
    assert served["openapi"].startswith("3.")
    assert served["paths"] == _schema_generated()["paths"]
    assert served["components"]["securitySchemes"]["tokenAuth"]["name"] == "Authorization"


def _jobs_drained(timeout: float = 120.0) -> None:
    """Wait for the worker to finish what the fuzzer queued: it must not write files into the
    media root while the next fixture removes it, nor touch rows of the next test."""
    from voice_tts.models import Job

    deadline = time.monotonic() + timeout
    while Job.objects.filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).exists():
        if time.monotonic() > deadline:
            raise AssertionError("jobs created by the fuzzer never finished")
        time.sleep(0.2)


@pytest.fixture
def fuzz_world(live_server: Any, worker: Any, alice_http: Any, settings: Any) -> Iterator[dict[str, Any]]:
    """Alice with an enrolled voice and one finished job: real ids for the fuzzer to hit."""
    # The live server runs in this process, so this bounds /generate/'s wait for fuzzed `?wait=`.
    settings.GENERATE_WAIT_MAX_SECONDS = 1
    voice = alice_http.upload_voice()
    assert voice.status_code == 201, voice.text
    created = alice_http.post("/api/tts/jobs/", json={"text": "약 드실 시간입니다", "language": "ko"})
    assert created.status_code in (200, 202), created.text
    job = alice_http.wait_job(created.json()["id"])
    assert job["status"] == "succeeded", job
    phrase = alice_http.post("/api/tts/phrases/", json={"text": "저녁 약 드세요", "times": ["20:00"]})
    assert phrase.status_code == 201, phrase.text
    yield {"voice_id": voice.json()["id"], "job_id": job["id"], "cache_key": job["cache_key"],
           "phrase_id": phrase.json()["id"]}
    _jobs_drained()


@pytest.mark.worker
@pytest.mark.parametrize("label", OPERATIONS)
def test_fuzz_operation(label: str, fuzz_world: dict[str, Any], live_server: Any, alice: Any) -> None:
    # The token goes through schemathesis' auth config (not a fixed header), so that its
    # negative cases that leave the token out really are sent without it.
    config = schemathesis.Config.from_dict({"auth": {"openapi": {"tokenAuth": {"api_key": f"Token {alice.token}"}}}})
    schema = schemathesis.openapi.from_url(live_server.url + "/api/schema/", config=config,
                                           headers={"Accept": "application/vnd.oai.openapi+json"})
    operation = schema.find_operation_by_label(label)
    assert operation is not None, label
    path_names = {p.name for p in operation.path_parameters}
    known = {name: value for name, value in fuzz_world.items() if name in path_names}
    strategies = [operation.as_strategy(generation_mode=mode) for mode in GenerationMode]
    if known:
        # Also aim at objects that exist, so 200 answers and their bodies are checked too.
        strategies.append(operation.as_strategy(path_parameters=known))

    @hypothesis_settings(
        max_examples=FUZZ_EXAMPLES * len(strategies),
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategies))
    def fuzz(case: Any) -> None:
        case.call_and_validate(base_url=live_server.url, checks=CHECKS, timeout=30)

    fuzz()
