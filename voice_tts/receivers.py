"""What must follow a row's deletion wherever it comes from, cascades included.

Deleting a user cascades to their voices and clips through the ORM's collector, which
never calls Model.delete(); post_delete is the one hook that sees those rows. These receivers
do no business logic; they keep two derived things in step with the rows:
- the files the rows named are removed after the commit (a rolled-back delete keeps them), a
  clip's encoded copies (ClipEncoding, cascaded with the clip) included;
- the owner's result-cache entries (voice_tts/result_cache.py) stop being believed, so a
  deleted clip or voice is never served from Redis.
Saving a voice (a new one, or the admin switching `is_active`) also moves the owner's
entries on: the active voice is one of them.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from rest_framework.authtoken.models import Token

from voice_tts.models import AccessToken, Clip, ClipEncoding, Voice
from voice_tts.result_cache import owner_entries_invalidate
from voice_tts.services.voices import voice_files_remove
from voice_tts.token_cache import token_cache_forget, token_cache_forget_users, token_digest


@receiver(post_delete, sender=Voice, dispatch_uid="voice_files_remove")
def _voice_deleted(sender: Any, instance: Voice, **kwargs: Any) -> None:
    owner_entries_invalidate(owner_id=instance.owner_id)
    transaction.on_commit(partial(voice_files_remove, voice_id=instance.id, audio_name=instance.audio.name))


@receiver(post_save, sender=Voice, dispatch_uid="voice_saved_entries_invalidate")
def _voice_saved(sender: Any, instance: Voice, **kwargs: Any) -> None:
    owner_entries_invalidate(owner_id=instance.owner_id)


@receiver(post_delete, sender=Clip, dispatch_uid="clip_file_remove")
def _clip_deleted(sender: Any, instance: Clip, **kwargs: Any) -> None:
    owner_entries_invalidate(owner_id=instance.owner_id)
    if instance.audio.name:
        transaction.on_commit(partial(default_storage.delete, instance.audio.name))


@receiver(post_delete, sender=ClipEncoding, dispatch_uid="clip_encoding_file_remove")
def _clip_encoding_deleted(sender: Any, instance: ClipEncoding, **kwargs: Any) -> None:
    # A clip's Opus/MP3/FLAC copy (services/clip_formats.py): its row cascades with the clip's.
    if instance.audio.name:
        transaction.on_commit(partial(default_storage.delete, instance.audio.name))


@receiver(post_delete, sender=get_user_model(), dispatch_uid="user_deleted_entries_invalidate")
def _user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    owner_entries_invalidate(owner_id=instance.pk)


# The token cache (services/tokens.py): a deleted token (logout, rotation, its user deleted through
# the cascade) or a saved user (deactivation, a changed password) must stop working at once, not
# after TOKEN_CACHE_SECONDS.
@receiver(post_delete, sender=Token, dispatch_uid="authtoken_cache_forget_token")
def _token_deleted(sender: Any, instance: Token, **kwargs: Any) -> None:
    token_cache_forget(token_digest(instance.key))


@receiver(post_delete, sender=AccessToken, dispatch_uid="access_token_cache_forget")
def _access_token_deleted(sender: Any, instance: AccessToken, **kwargs: Any) -> None:
    token_cache_forget(instance.digest)


@receiver(post_save, sender=get_user_model(), dispatch_uid="authtoken_cache_forget_user_saved")
@receiver(post_delete, sender=get_user_model(), dispatch_uid="authtoken_cache_forget_user_deleted")
def _user_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    token_cache_forget_users(user_ids=[instance.pk])
