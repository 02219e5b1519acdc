"""Django's LocaleMiddleware for the pages only: the API keeps speaking English.

The pages pick Korean or English from the browser (Accept-Language, then LANGUAGE_CODE = "ko").
The API's messages (DRF's own among them) stay English whatever a client sends, as they were
before the pages existed: its clients read `code`, and its documentation is English.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.middleware.locale import LocaleMiddleware
from django.utils import translation

API_LANGUAGE = "en"


class PageLocaleMiddleware(LocaleMiddleware):
    def process_request(self, request: HttpRequest) -> None:
        if request.path_info.startswith("/api/"):
            translation.activate(API_LANGUAGE)
            request.LANGUAGE_CODE = API_LANGUAGE
            return
        super().process_request(request)

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if request.path_info.startswith("/api/"):
            return response
        return super().process_response(request, response)
