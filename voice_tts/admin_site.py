"""The admin site, with its login throttled like the API's (voice_tts/services/logins.py)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from voice_tts.http.throttles import client_address
from voice_tts.services.logins import login_failed, login_succeeded, login_wait


class CarePillAdminSite(admin.AdminSite):
    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method != "POST":
            return super().login(request, extra_context)
        attempt = {"username": request.POST.get("username", ""), "address": client_address(request)}
        wait = login_wait(**attempt)
        if wait is not None:
            response = HttpResponse(
                f"Too many failed logins. Try again in {wait} seconds.\n"
                f"로그인 실패가 너무 많습니다. {wait}초 뒤에 다시 시도해 주세요.\n",
                status=429, content_type="text/plain; charset=utf-8",
            )
            response["Retry-After"] = str(wait)
            return response
        response = super().login(request, extra_context)
        # A redirect is a signed-in user; the form shown again is a refused password.
        if response.status_code == 302 and request.user.is_authenticated:
            login_succeeded(**attempt)
        else:
            login_failed(**attempt)
        return response
