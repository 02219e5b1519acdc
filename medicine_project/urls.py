from django.contrib import admin
from django.urls import include, path

from voice_tts.apis.auth import LoginApi

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/auth/login/", LoginApi.as_view(), name="login"),
    path("api/tts/", include("voice_tts.urls")),
]
