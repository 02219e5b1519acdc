"""Built before the run, as `make run`, `make demo` and the image build them: the pages' messages
(gettext's msgfmt, through `manage.py compilemessages`) and the static files (`collectstatic` into
this run's own STATIC_ROOT, under its temp dir), so every test renders the real manifest's hashed
names and whitenoise serves them. Loaded by tests/conftest.py (`pytest_plugins`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# Directories whose catalogues are not ours (compilemessages walks the working directory too).
NOT_OURS = [".venv*", "clients", "node_modules", "var", "media"]


@pytest.fixture(scope="session", autouse=True)
def page_assets_built() -> Iterator[None]:
    from django.conf import settings
    from django.core.management import call_command
    from django.test import override_settings

    call_command("compilemessages", ignore_patterns=NOT_OURS, verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    assert (Path(settings.STATIC_ROOT) / "staticfiles.json").is_file()
    # django.setup() read the catalogues before they were compiled (on a fresh clone there were
    # none): changing LOCALE_PATHS makes Django's own test signal handler drop what it read.
    with override_settings(LOCALE_PATHS=list(settings.LOCALE_PATHS)):
        yield
