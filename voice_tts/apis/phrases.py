"""Reminder phrases (CRUD, owner only) and the Pi's daily bundle (with ETag/304)."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from django.utils.http import parse_etags
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from voice_tts.models import ReminderPhrase
from voice_tts.services.job_text import SUPPORTED_LANGUAGES
from voice_tts.services.phrases import PHRASE_MAX_TIMES, phrase_bundle, phrase_create, phrase_delete, phrase_update


class PhraseOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    text = serializers.CharField()
    language = serializers.CharField()
    times = serializers.ListField(child=serializers.CharField())
    daily = serializers.SerializerMethodField()
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_daily(self, phrase: ReminderPhrase) -> bool:
        return not phrase.times


class PhraseInputSerializer(serializers.Serializer):
    # Whitespace and emptiness are judged by the service (same codes as jobs).
    text = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=20000)
    language = serializers.ChoiceField(choices=SUPPORTED_LANGUAGES, default="ko")
    # Local times of day ("08:00"); empty or absent: daily, no fixed time.
    times = serializers.ListField(
        child=serializers.TimeField(input_formats=["%H:%M", "%H:%M:%S"]), default=list, max_length=PHRASE_MAX_TIMES
    )
    is_active = serializers.BooleanField(default=True)


def _owned_phrase(request: Request, phrase_id: int) -> ReminderPhrase:
    # 404 (never 403) for other users' phrases: existence is not revealed.
    return get_object_or_404(ReminderPhrase, id=phrase_id, owner=request.user)


class PhraseCollectionApi(APIView):
    def get(self, request: Request) -> Response:
        phrases = ReminderPhrase.objects.filter(owner=request.user).order_by("id")
        return Response({"results": PhraseOutputSerializer(phrases, many=True).data})

    def post(self, request: Request) -> Response:
        data = PhraseInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        phrase = phrase_create(owner_id=request.user.id, **data.validated_data)
        return Response(PhraseOutputSerializer(phrase).data, status=201)


class PhraseDetailApi(APIView):
    def get(self, request: Request, phrase_id: int) -> Response:
        return Response(PhraseOutputSerializer(_owned_phrase(request, phrase_id)).data)

    def patch(self, request: Request, phrase_id: int) -> Response:
        phrase = _owned_phrase(request, phrase_id)
        data = PhraseInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        phrase = phrase_update(phrase=phrase, **data.validated_data)
        return Response(PhraseOutputSerializer(phrase).data)

    def delete(self, request: Request, phrase_id: int) -> Response:
        phrase_delete(phrase=_owned_phrase(request, phrase_id))
        return Response(status=204)


class PhraseBundleApi(APIView):
    """GET: today's phrases with clip URL, sha256 and duration; If-None-Match -> 304."""

    def get(self, request: Request) -> Any:
        bundle = phrase_bundle(owner_id=request.user.id, base_url=request.build_absolute_uri("/"))
        client_etags = parse_etags(request.headers.get("If-None-Match", ""))
        # Weak comparison (RFC 9110 13.1.2): a proxy may have weakened our tag.
        matches = "*" in client_etags or bundle.etag in {tag.removeprefix("W/") for tag in client_etags}
        response = Response(status=304) if matches else Response(bundle.body)
        response["ETag"] = bundle.etag
        # Private (personal audio), and always revalidated: a changed voice shows at once.
        response["Cache-Control"] = "private, no-cache"
        return response
