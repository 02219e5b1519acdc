"""Driving Debian's Chromium with Playwright for Python, with a fake microphone.

No browser is ever downloaded (`playwright install` is never run): the tests launch the system's
`chromium` (CHROMIUM, default /usr/bin/chromium, which `.ci/run` installs) and fail loudly when it
is missing. The microphone is Chromium's fake capture device playing a WAV made here with the
espeak-ng library from PyPI (the `espeak` engine): Korean speech, then seconds of silence.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
import soxr

from workers.engines.registry import engine_build

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FAKE_MIC_RATE = 48000


def chromium_path() -> str:
    found = shutil.which(CHROMIUM) or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if not found:
        pytest.fail(f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium, as .ci/run does; "
                    "or set CHROMIUM): the pages' browser tests cannot run without it", pytrace=False)
    return found


def speech_wav(path: Path, *, text: str, speed: float = 1.0, lead_silence: float = 0.3,
               tail_silence: float = 6.0) -> float:
    """Write `text` spoken by espeak-ng (Korean) as a 48 kHz mono 16-bit WAV, padded with silence;
    returns the speech's own length in seconds."""
    engine = engine_build("espeak")
    engine.load()
    samples, rate = engine.synthesize(text, "ko", path, None, {"speed": speed} if speed != 1.0 else {})
    speech = soxr.resample(samples.astype(np.float32) / 32768.0, rate, FAKE_MIC_RATE)
    audio = np.concatenate([np.zeros(int(lead_silence * FAKE_MIC_RATE), np.float32), speech,
                            np.zeros(int(tail_silence * FAKE_MIC_RATE), np.float32)])
    soundfile.write(path, audio, FAKE_MIC_RATE, subtype="PCM_16")
    return len(speech) / FAKE_MIC_RATE


@contextmanager
def chromium(playwright: Any, *, microphone_wav: Path) -> Iterator[Any]:
    """A headless Chromium whose microphone plays `microphone_wav` once (then silence)."""
    browser = playwright.chromium.launch(
        executable_path=chromium_path(),
        args=[
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone_wav}%noloop",
            # The preview plays when its job is done, seconds after the click.
            "--autoplay-policy=no-user-gesture-required",
        ],
    )
    try:
        yield browser
    finally:
        browser.close()


class PagesServer:
    """The project's WSGI app on a thread at http://localhost:<port> (a secure context), as in
    production: static files come from the collected STATIC_ROOT through whitenoise, with their
    manifest's hashed names. (pytest-django's live_server serves /static/ from the finders, which
    know no hashed names.) Tests that use it need `transactional_db`: the thread has its own
    database connection."""

    def __init__(self) -> None:
        from django.test.testcases import LiveServerThread

        self.thread = LiveServerThread("localhost", static_handler=lambda application: application)
        self.thread.daemon = True
        self.thread.start()
        self.thread.is_ready.wait()
        if self.thread.error:
            raise self.thread.error
        self.url = f"http://localhost:{self.thread.port}"

    def stop(self) -> None:
        self.thread.terminate()


def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CAREPILL_SCREENSHOTS (e.g. docs/screenshots), else this run's temp dir."""
    named = os.environ.get("CAREPILL_SCREENSHOTS")
    folder = Path(named) if named else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
