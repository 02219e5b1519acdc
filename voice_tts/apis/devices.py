"""Devices (the Pi): create one (its token shown once), list them, revoke one."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from voice_tts.apis.schema import error_responses
from voice_tts.services.care import device_heartbeat
from voice_tts.services.tokens import device_create, device_revoke, devices_of


class DeviceOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(source="device_name")
    created_at = serializers.DateTimeField()
    last_seen_at = serializers.DateTimeField(allow_null=True, help_text="Last use of its token (to the minute).")

    class Meta:
        ref_name = "Device"


class DeviceCreatedSerializer(DeviceOutputSerializer):
    token = serializers.CharField(help_text="Shown this once: only its digest is kept.")

    class Meta:
        ref_name = "DeviceCreated"


class DeviceCollectionApi(APIView):
    class InputSerializer(serializers.Serializer):
        # Blank is judged by the service (`device_name_empty`), like a job's text.
        name = serializers.CharField(max_length=100, allow_blank=True)

        class Meta:
            ref_name = "DeviceInput"

    @extend_schema(operation_id="devices_list",
                   responses={200: inline_serializer("DeviceList", {"results": DeviceOutputSerializer(many=True)}),
                              **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        return Response({"results": DeviceOutputSerializer(devices_of(owner_id=request.user.id), many=True).data})

    @extend_schema(operation_id="devices_create", request={"application/json": InputSerializer},
                   responses={201: DeviceCreatedSerializer, **error_responses(400, 401, 403, 415)})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        device, key = device_create(owner_id=request.user.id, name=data.validated_data["name"])
        body: dict[str, Any] = {**DeviceOutputSerializer(device).data, "token": key}
        return Response(body, status=201)


class DeviceDetailApi(APIView):
    @extend_schema(operation_id="devices_destroy",
                   responses={204: OpenApiResponse(description="Revoked: its token stops at once."),
                              **error_responses(401, 403, 404)})
    def delete(self, request: Request, device_id: int) -> Response:
        device_revoke(owner_id=request.user.id, device_id=device_id)
        return Response(status=204)


class DeviceHeartbeatApi(APIView):
    """The Pi's `carepill-voice run` says it is alive, at least once a minute, and in which zone it
    reads reminder times. A caregiver's token is no device: 403."""

    device_allowed = frozenset({"POST"})

    class InputSerializer(serializers.Serializer):
        timezone = serializers.CharField(max_length=64, required=False, allow_blank=True,
                                         help_text="The Pi's IANA zone (Asia/Seoul).")

        class Meta:
            ref_name = "DeviceHeartbeatInput"

    @extend_schema(
        operation_id="devices_heartbeat",
        request={"application/json": InputSerializer},
        responses={200: inline_serializer("DeviceHeartbeat", {
            "received_at": serializers.DateTimeField(),
            "timezone": serializers.CharField(help_text="The household's zone."),
            "timezone_mismatch": serializers.BooleanField(
                help_text="The Pi's zone differs from the one the caregiver set: shown on the pages, not guessed."),
        }), **error_responses(400, 401, 403, 415)},
    )
    def post(self, request: Request) -> Response:
        device_id = getattr(request.auth, "device_id", None)
        if device_id is None:
            raise PermissionDenied("Only a device's token sends heartbeats.", code="not_a_device")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        beat = device_heartbeat(owner_id=request.user.id, device_id=device_id,
                                timezone_name=data.validated_data.get("timezone", ""))
        return Response({"received_at": beat.received_at, "timezone": beat.household_timezone,
                         "timezone_mismatch": beat.timezone_mismatch})
