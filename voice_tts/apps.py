from django.apps import AppConfig


class VoiceTtsConfig(AppConfig):
    name = "voice_tts"
    verbose_name = "Voice TTS"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Signal receivers are connected once the models are loaded (Django's app-loading rule):
        from voice_tts import receivers  # noqa: F401 - file cleanup, result-cache and token-cache invalidation
        from voice_tts.worker import signals  # noqa: F401 - Celery worker hooks (engine per process)
