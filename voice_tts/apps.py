from django.apps import AppConfig


class VoiceTtsConfig(AppConfig):
    name = "voice_tts"
    verbose_name = "Voice TTS"
    default_auto_field = "django.db.models.BigAutoField"
