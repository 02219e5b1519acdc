"""`manage.py deactivate_users alice bob`: stop these accounts (and their tokens) at once."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from voice_tts.services.users import users_deactivate


class Command(BaseCommand):
    help = "Deactivate users by username; their API tokens stop working at once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("usernames", nargs="+")

    def handle(self, *args: Any, usernames: list[str], **options: Any) -> None:
        users = get_user_model().objects.filter(username__in=usernames)
        missing = sorted(set(usernames) - set(users.values_list("username", flat=True)))
        if missing:
            raise CommandError(f"no such user(s): {', '.join(missing)}")
        count = users_deactivate(users=users)
        self.stdout.write(f"deactivated {count} user(s)")
