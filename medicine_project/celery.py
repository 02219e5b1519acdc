import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medicine_project.settings")

app = Celery("medicine_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Connect the worker life-cycle hooks (they import no engine until a worker starts).
import workers.lifecycle  # noqa: E402,F401
