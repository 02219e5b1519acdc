from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "voice_tts.web"
    label = "voice_tts_web"
    verbose_name = "CarePill Voice pages"
