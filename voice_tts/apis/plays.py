"""Play reports of a phrase: the Pi reports each play (POST, idempotent on its key); the owner
lists them, newest first (GET, cursor pages)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from voice_tts.apis.doses import LocalTimeField
from voice_tts.apis.phrases import owned_phrase
from voice_tts.apis.schema import error_responses
from voice_tts.services.plays import PLAY_OUTCOMES, PLAY_SOURCES, phrase_play_record, phrase_plays_of


class PlayOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    phrase_id = serializers.IntegerField()
    key = serializers.CharField()
    played_at = serializers.DateTimeField()
    outcome = serializers.ChoiceField(choices=PLAY_OUTCOMES)
    source = serializers.ChoiceField(choices=PLAY_SOURCES)
    device_id = serializers.IntegerField(allow_null=True, help_text="The device whose token reported it.")
    dose_id = serializers.IntegerField(allow_null=True, help_text="The dose (reminder occurrence) it played.")
    received_at = serializers.DateTimeField()

    class Meta:
        ref_name = "PhrasePlay"


class PlayPage(CursorPagination):
    ordering = ("-played_at", "-id")
    page_size = 100


class PhrasePlaysApi(APIView):
    # The Pi reports plays with its device token; reading them back is the caregiver's.
    device_allowed = frozenset({"POST"})

    class InputSerializer(serializers.Serializer):
        played_at = serializers.DateTimeField(help_text="When the Pi started playing, ISO 8601 with an offset.")
        outcome = serializers.ChoiceField(choices=PLAY_OUTCOMES)
        source = serializers.ChoiceField(choices=PLAY_SOURCES)
        key = serializers.RegexField(
            r"^[A-Za-z0-9:._-]+$", max_length=200,
            help_text="Chosen by the Pi, unique per play (install id, phrase, local date and time): "
            "a resend with the same key stores nothing new.",
        )
        scheduled_date = serializers.DateField(
            required=False, help_text="The occurrence it played: its household-local date (with scheduled_time).")
        scheduled_time = LocalTimeField(required=False, help_text="The occurrence's local time, \"HH:MM\".")

        class Meta:
            ref_name = "PhrasePlayInput"

    @extend_schema(
        operation_id="phrase_plays_list",
        responses={
            200: inline_serializer("PhrasePlayPage", {
                "next": serializers.URLField(allow_null=True),
                "previous": serializers.URLField(allow_null=True),
                "results": PlayOutputSerializer(many=True),
            }),
            **error_responses(401, 403, 404),
        },
    )
    def get(self, request: Request, phrase_id: int) -> Response:
        phrase = owned_phrase(request, phrase_id)
        paginator = PlayPage()
        page = paginator.paginate_queryset(phrase_plays_of(phrase=phrase), request, view=self)
        return paginator.get_paginated_response(PlayOutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="phrase_plays_report",
        request={"application/json": InputSerializer},
        responses={
            201: OpenApiResponse(PlayOutputSerializer, description="Stored."),
            200: OpenApiResponse(PlayOutputSerializer, description="Already stored under this key (a resend)."),
            **error_responses(400, 401, 404, 409, 415, descriptions={
                409: "The key was reported for another phrase (`play_key_conflict`).",
            }),
        },
    )
    def post(self, request: Request, phrase_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        play, created = phrase_play_record(
            owner_id=request.user.id, phrase_id=phrase_id, device_id=getattr(request.auth, "device_id", None),
            **data.validated_data,
        )
        return Response(PlayOutputSerializer(play).data, status=201 if created else 200)
