"""One way through every route: each /api/ URL is one DRF APIView's `as_view()`, and that
view's authentication, permission and throttle classes run for every request to it."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.permissions import BasePermission
from rest_framework.views import APIView

from tests.audio_samples import wav_bytes
from tests.conftest import api_client
from voice_tts.apis.jobs import JobCreateApi, JobDetailApi
from voice_tts.services.voices import voice_create


def _api_patterns(patterns: list[Any], prefix: str = "") -> list[tuple[str, Any]]:
    found = []
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            found += _api_patterns(entry.url_patterns, route)
        elif isinstance(entry, URLPattern) and route.startswith(("api/", "v1/")):  # v1/: the OpenAI-compatible routes
            found.append((route, entry.callback))
    return found


def test_every_api_url_is_one_drf_view():
    routes = _api_patterns(get_resolver().url_patterns)
    assert len(routes) >= 17  # every route of docs/api.md's table
    for route, callback in routes:
        view_class = getattr(callback, "cls", None)
        assert isinstance(view_class, type) and issubclass(view_class, APIView), route
        # DRF's as_view(): Django's view function for that class, nothing wrapped around it.
        assert callback.view_class is view_class, route


class _Refuse(BasePermission):
    message = "refused by the test's permission"

    def has_permission(self, request: Any, view: Any) -> bool:
        return False


@pytest.mark.parametrize("view_class", [JobCreateApi, JobDetailApi])
def test_a_permission_on_the_view_applies_to_every_request(view_class, alice, monkeypatch):
    # The well-formed, cache-warm request is the one a second front would have answered itself.
    voice_create(owner_id=alice.id, data=wav_bytes(4.0))
    client = api_client(alice)
    created = client.post("/api/tts/jobs/", {"text": "hello", "language": "en"}, format="json")
    assert created.status_code == 202
    path = "/api/tts/jobs/" if view_class is JobCreateApi else f"/api/tts/jobs/{created.json()['id']}/"
    monkeypatch.setattr(view_class, "permission_classes", [_Refuse])
    response = client.post(path, {"text": "hello", "language": "en"}, format="json") if view_class is JobCreateApi \
        else client.get(path)
    assert response.status_code == 403
    assert response.json()["message"] == "refused by the test's permission"
