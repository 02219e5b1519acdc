"""OpenAI-compatible routes. Mount with `path("v1/", include("voice_tts.openai_urls"))`: clients take
`http://host:port/v1` as their `base_url`."""

from django.urls import path

from voice_tts.apis import openai_speech

app_name = "openai"

urlpatterns = [
    path("audio/speech", openai_speech.SpeechCreateApi.as_view(), name="speech"),
    path("audio/voices", openai_speech.SpeechVoiceListApi.as_view(), name="voices"),
    path("models", openai_speech.ModelListApi.as_view(), name="models"),
    path("models/<str:model>", openai_speech.ModelDetailApi.as_view(), name="model-detail"),
]
