"""Mount with `path("api/tts/", include("voice_tts.urls"))`."""

from django.urls import path

from voice_tts.apis import clips, devices, doses, health, jobs, legacy, phrases, plays, voices, webhooks

app_name = "voice_tts"

urlpatterns = [
    path("voices/", voices.VoiceCollectionApi.as_view(), name="voices"),
    path("voices/<uuid:voice_id>/", voices.VoiceDetailApi.as_view(), name="voice-detail"),
    path("voices/<uuid:voice_id>/adaptation/preview/<str:side>/", voices.VoiceAdaptationPreviewApi.as_view(),
         name="voice-adaptation-preview"),
    path("upload-voice/", legacy.LegacyUploadVoiceApi.as_view(), name="upload-voice"),
    path("jobs/", jobs.JobCreateApi.as_view(), name="jobs"),
    path("jobs/<uuid:job_id>/", jobs.JobDetailApi.as_view(), name="job-detail"),
    path("jobs/<uuid:job_id>/audio/", jobs.JobAudioApi.as_view(), name="job-audio"),
    path("generate/", legacy.LegacyGenerateApi.as_view(), name="generate"),
    path("cache/<str:cache_key>/", clips.ClipDetailApi.as_view(), name="clip-detail"),
    path("cache/<str:cache_key>/audio/", clips.ClipAudioApi.as_view(), name="clip-audio"),
    path("health/", health.HealthApi.as_view(), name="health"),
    path("webhook-secret/", webhooks.WebhookSecretApi.as_view(), name="webhook-secret"),
    path("webhook-secret/rotate/", webhooks.WebhookSecretRotateApi.as_view(), name="webhook-secret-rotate"),
    path("phrases/", phrases.PhraseCollectionApi.as_view(), name="phrases"),
    path("phrases/bundle/", phrases.PhraseBundleApi.as_view(), name="phrase-bundle"),
    path("phrases/<int:phrase_id>/", phrases.PhraseDetailApi.as_view(), name="phrase-detail"),
    path("phrases/<int:phrase_id>/plays/", plays.PhrasePlaysApi.as_view(), name="phrase-plays"),
    path("devices/", devices.DeviceCollectionApi.as_view(), name="devices"),
    path("devices/heartbeat/", devices.DeviceHeartbeatApi.as_view(), name="device-heartbeat"),
    path("doses/", doses.DoseListApi.as_view(), name="doses"),
    path("doses/confirmations/", doses.DoseConfirmationApi.as_view(), name="dose-confirmations"),
    path("devices/<int:device_id>/", devices.DeviceDetailApi.as_view(), name="device-detail"),
]
