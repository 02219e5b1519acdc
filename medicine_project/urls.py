from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from voice_tts.apis.auth import LoginApi, LogoutApi
from voice_tts.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/auth/login/", LoginApi.as_view(), name="login"),
    path("api/auth/logout/", LogoutApi.as_view(), name="logout"),
    path("api/tts/", include("voice_tts.urls")),
    # OpenAI-compatible speech (clients' base_url: http://host/v1; see voice_tts/openai_urls.py).
    path("v1/", include("voice_tts.openai_urls")),
    # Prometheus (bearer token METRICS_TOKEN; see voice_tts/metrics.py).
    path("metrics", metrics_view, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The caregiver's pages (session login, Korean first): voice_tts/web.
    path("voice/", include("voice_tts.web.urls")),
]

# Unrouted /api/ URLs and crashes answer the API's JSON error shape (HTML elsewhere).
handler404 = "voice_tts.http.errors.api_page_not_found"
handler500 = "voice_tts.http.errors.api_server_error"
