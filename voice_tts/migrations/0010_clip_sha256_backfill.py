"""Checksum the clips stored before 0002 added `sha256` (clip_store has set it on every clip since).

A data migration rather than a management command: it must have run before the code that relies on
it (the Pi's bundle no longer computes a missing checksum on a GET), and `migrate` is the step every
deployment already runs first, once, in order; a command would be one more step to forget. It reads
only the rows still blank (none on a database made after 0002), so it is cheap where there is
nothing to do. A row whose file is already gone stays blank (the bundle shows it `pending`, the
sweeper's business); any other storage error stops the migration, to be run again.
"""

import hashlib

from django.core.files.storage import default_storage
from django.db import migrations


def clip_checksums_backfill(apps, schema_editor):
    Clip = apps.get_model("voice_tts", "Clip")
    for clip_id, name in list(Clip.objects.filter(sha256="").values_list("id", "audio")):
        digest = hashlib.sha256()
        try:
            with default_storage.open(name, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 16), b""):
                    digest.update(chunk)
        except FileNotFoundError:
            continue
        Clip.objects.filter(id=clip_id, sha256="").update(sha256=digest.hexdigest())


class Migration(migrations.Migration):

    dependencies = [
        ("voice_tts", "0009_reminder_loop"),
    ]

    operations = [
        migrations.RunPython(clip_checksums_backfill, migrations.RunPython.noop, elidable=True),
    ]
