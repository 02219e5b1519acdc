"""Doses: the household's reminder occurrences and what became of each (GET, by household day), and
the senior's confirmation of one (POST, idempotent). A device's token (the Pi) may do both."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from voice_tts.apis.schema import error_responses
from voice_tts.errors import ServiceError
from voice_tts.services.doses import DOSE_STATES, dose_confirm, doses_of_day, household_today


class LocalTimeField(serializers.RegexField):
    """A household-local time of day exactly as reminders name it: "HH:MM"."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(r"^([01][0-9]|2[0-3]):[0-5][0-9]$", **kwargs)


class DoseOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    phrase_id = serializers.IntegerField()
    text = serializers.CharField(help_text="The reminder's words when the dose was made.")
    scheduled_for = serializers.SerializerMethodField(help_text="ISO 8601 with the household's offset.")
    local_date = serializers.DateField()
    local_time = serializers.CharField()
    timezone = serializers.CharField()
    state = serializers.ChoiceField(choices=DOSE_STATES)
    plays = serializers.IntegerField()
    first_played_at = serializers.DateTimeField(allow_null=True)
    confirmed_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "Dose"

    # `dose` is a Dose; not annotated as one, since drf-spectacular evaluates the hints at runtime
    # and the API imports no model (pyproject.toml).
    def get_scheduled_for(self, dose: Any) -> str:
        return dose.scheduled_for.astimezone(zoneinfo.ZoneInfo(dose.timezone)).isoformat()


class DoseListApi(APIView):
    device_allowed = frozenset({"GET"})

    @extend_schema(
        operation_id="doses_list",
        parameters=[OpenApiParameter("date", str, description="YYYY-MM-DD, household time (default: today).")],
        responses={200: inline_serializer("DoseList", {"date": serializers.DateField(),
                                                       "results": DoseOutputSerializer(many=True)}),
                   **error_responses(400, 401)},
    )
    def get(self, request: Request) -> Response:
        raw = request.query_params.get("date")
        if raw is None:
            day = household_today(owner_id=request.user.id)
        else:
            try:
                day = dt.date.fromisoformat(raw)
            except ValueError:
                raise ServiceError("invalid_date", "date must be YYYY-MM-DD.") from None
        doses = doses_of_day(owner_id=request.user.id, local_date=day)
        return Response({"date": day.isoformat(), "results": DoseOutputSerializer(doses, many=True).data})


class DoseConfirmationApi(APIView):
    """The senior heard it: `carepill-voice confirm`, its button, or anything that calls it."""

    device_allowed = frozenset({"POST"})

    class InputSerializer(serializers.Serializer):
        phrase_id = serializers.IntegerField()
        scheduled_date = serializers.DateField(help_text="The occurrence's household-local date.")
        scheduled_time = LocalTimeField(help_text="The occurrence's local time, \"HH:MM\".")
        confirmed_at = serializers.DateTimeField(help_text="When the senior confirmed, ISO 8601 with an offset.")
        key = serializers.RegexField(r"^[A-Za-z0-9:._-]+$", max_length=200,
                                     help_text="Chosen by the Pi; a resend with the same key changes nothing.")

        class Meta:
            ref_name = "DoseConfirmationInput"

    @extend_schema(
        operation_id="doses_confirm",
        request={"application/json": InputSerializer},
        responses={
            201: OpenApiResponse(DoseOutputSerializer, description="Confirmed by this request."),
            200: OpenApiResponse(DoseOutputSerializer, description="Already confirmed (a resend, or another key)."),
            **error_responses(400, 401, 404, 415),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        dose, confirmed = dose_confirm(
            owner_id=request.user.id, phrase_id=values["phrase_id"], local_date=values["scheduled_date"],
            local_time=values["scheduled_time"], confirmed_at=values["confirmed_at"], key=values["key"],
        )
        return Response(DoseOutputSerializer(dose).data, status=201 if confirmed else 200)
