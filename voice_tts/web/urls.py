"""Mounted at /voice/ with `path("voice/", include("voice_tts.web.urls"))`."""

from django.urls import path

from voice_tts.web import care_views, views

app_name = "web"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("enrol/", views.enrol, name="enrol"),
    path("enrol/record/", views.enrol_record, name="enrol-record"),
    path("enrol/adaptation/", views.enrol_adaptation, name="enrol-adaptation"),
    path("enrol/upload/", views.enrol_upload, name="enrol-upload"),
    path("voices/<uuid:voice_id>/audio/", views.voice_audio, name="voice-audio"),
    path("voices/<uuid:voice_id>/adaptation/preview/<str:side>/", views.voice_adaptation_preview,
         name="voice-adaptation-preview"),
    path("preview/", views.preview, name="preview"),
    path("jobs/<uuid:job_id>/", views.job_state, name="job-state"),
    path("jobs/<uuid:job_id>/audio/", views.job_audio, name="job-audio"),
    path("clips/<str:cache_key>/audio/", views.clip_audio, name="clip-audio"),
    path("reminders/", views.reminders, name="reminders"),
    path("reminders/states/", views.reminder_states, name="reminder-states"),
    path("reminders/<int:phrase_id>/edit/", views.reminder_edit, name="reminder-edit"),
    path("reminders/<int:phrase_id>/pause/", views.reminder_pause, name="reminder-pause"),
    path("reminders/<int:phrase_id>/delete/", views.reminder_delete, name="reminder-delete"),
    path("week/", care_views.week, name="week"),
    path("alerts/", care_views.alerts, name="alerts"),
    path("alerts/test/", care_views.alerts_test, name="alerts-test"),
    path("device/", views.device, name="device"),
    path("device/<int:device_id>/revoke/", views.device_delete, name="device-revoke"),
]
