from django.apps import AppConfig


class VoiceTtsConfig(AppConfig):
    name = "voice_tts"
    verbose_name = "Voice TTS"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from voice_tts import receivers  # noqa: F401 - connects the file-cleanup receivers
