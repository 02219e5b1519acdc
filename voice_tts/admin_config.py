"""Django's admin app, with the site whose login is throttled (voice_tts/admin_site.py)."""

from django.contrib.admin.apps import AdminConfig


class CarePillAdminConfig(AdminConfig):
    default_site = "voice_tts.admin_site.CarePillAdminSite"
