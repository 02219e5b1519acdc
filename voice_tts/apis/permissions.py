"""What a device's token (the Pi) may do: read its owner's bundle and clips, ask for speech and
poll those jobs, report plays. Every other route answers 403 `device_not_allowed`; views that
allow devices say so with `device_allowed = True` (every method) or a set of methods. A default
permission class, so a new view is closed to devices unless it opts in."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission


class DeviceScope(BasePermission):
    code = "device_not_allowed"
    message = "A device's token cannot do this; use the caregiver's account."

    def has_permission(self, request: Any, view: Any) -> bool:
        if getattr(request.auth, "device_id", None) is None:
            return True  # a login's token (or none: IsAuthenticated decides)
        allowed = getattr(view, "device_allowed", False)
        if isinstance(allowed, bool):
            return allowed
        return request.method in allowed
