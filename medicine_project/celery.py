import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medicine_project.settings")

app = Celery("medicine_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# The worker life-cycle hooks (voice_tts/worker/signals.py) are connected by the app's
# ready(): Celery's Django fixup runs django.setup() at worker_init, before they fire.
