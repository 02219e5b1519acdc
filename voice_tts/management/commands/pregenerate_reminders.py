"""`python manage.py pregenerate_reminders [--user U ...] [--dry-run]`: the nightly run, now.

Exit status 0 when nothing failed, 1 when some phrase could not be enqueued (listed).
"""

from __future__ import annotations

import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from voice_tts.services.reminders import reminders_pregenerate


class Command(BaseCommand):
    help = "Enqueue batch synthesis for every active reminder phrase whose clip is missing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", action="append", default=[], metavar="U",
                            help="username or numeric id; repeat for several (default: every user)")
        parser.add_argument("--dry-run", action="store_true", help="count what would be enqueued, enqueue nothing")
        parser.add_argument("--batch-size", type=int, default=None, help="users per database round trip")

    def _owner_ids(self, users: list[str]) -> list[int] | None:
        if not users:
            return None
        model = get_user_model()
        ids = []
        for ref in users:
            found = model.objects.filter(**({"id": int(ref)} if ref.isdigit() else {"username": ref}))
            user_id = found.values_list("id", flat=True).first()
            if user_id is None:
                raise CommandError(f"no such user: {ref}")
            ids.append(user_id)
        return ids

    def _progress(self, done: int, total: int) -> None:
        # A bar on a terminal; plain lines (one per batch) in logs and cron mail.
        width = 30
        filled = width * done // total if total else width
        line = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} phrases"
        if self.stderr.isatty():
            self.stderr.write("\r" + line, ending="")
            if done >= total:
                self.stderr.write("")
        else:
            self.stderr.write(line)

    def handle(self, *args: Any, **options: Any) -> None:
        summary = reminders_pregenerate(
            owner_ids=self._owner_ids(options["user"]),
            dry_run=options["dry_run"],
            batch_size=options["batch_size"],
            progress=self._progress,
        )
        for error in summary.errors:
            self.stderr.write(error)
        self.stdout.write(("[dry run] " if summary.dry_run else "") + summary.line())
        if summary.model_version is None:
            self.stdout.write("note: no worker has loaded the engine yet, so the cache was not checked here "
                              "(workers check it before synthesising)")
        if summary.failed:
            sys.exit(1)
