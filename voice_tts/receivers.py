"""File cleanup when rows are deleted, including by cascade.

Deleting a user cascades to their voices and clips through the ORM's collector, which
never calls Model.delete(); post_delete is the one hook that sees those rows. It does
no business logic: it only removes the files the rows named, after the commit (a
rolled-back delete keeps its files).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from voice_tts.models import Clip, Voice
from voice_tts.services.voices import voice_files_remove


@receiver(post_delete, sender=Voice, dispatch_uid="voice_files_remove")
def _voice_deleted(sender: Any, instance: Voice, **kwargs: Any) -> None:
    transaction.on_commit(partial(voice_files_remove, voice_id=instance.id, audio_name=instance.audio.name))


@receiver(post_delete, sender=Clip, dispatch_uid="clip_file_remove")
def _clip_deleted(sender: Any, instance: Clip, **kwargs: Any) -> None:
    if instance.audio.name:
        transaction.on_commit(partial(default_storage.delete, instance.audio.name))
