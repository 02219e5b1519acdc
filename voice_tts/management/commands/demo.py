"""`make demo`: the whole service on embedded defaults, driven over HTTP like a client.

Starts Redis (if none answers), a worker and the web server, enrols a sample voice for
a demo user, asks for three reminder phrases exactly as a client would, polls the jobs,
saves the WAVs under media/demo/, then stops what it started.
"""

from __future__ import annotations

import datetime as dt
import io
import secrets
import time
import zoneinfo
from pathlib import Path
from typing import Any

import numpy as np
import requests
import soundfile
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from medicine_project.devstack import Stack, free_port, redis_ensured, web_args, worker_args
from voice_tts.models import AccessToken

LOOP_PHRASE = "할머니, 점심 약 드실 시간입니다."
PHRASES = [
    ("ko", "할머니, 아침 약 드실 시간입니다."),
    ("ko", "오후 8시 30분입니다. 혈압약 1정을 드세요."),
    ("en", "Good evening. Time for your evening medicine."),
]


def _sample_voice_wav() -> bytes:
    """A stand-in for the caregiver's recording: espeak-ng reading a sentence.

    The demo has no real person to record, and must download nothing.
    """
    from workers.engines.espeak import EspeakEngine

    engine = EspeakEngine()
    engine.load()
    text = "안녕하세요. 저는 할머니의 손녀입니다. 오늘도 건강하게 지내세요. 사랑해요."
    samples, rate = engine.synthesize(text, "ko", Path("."), None, {"speed": 1.0})
    padded = np.concatenate([np.zeros(rate // 2, np.int16), samples, np.zeros(rate // 2, np.int16)])
    buffer = io.BytesIO()
    soundfile.write(buffer, padded, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


class Command(BaseCommand):
    help = "Run the service end to end on embedded defaults and save three spoken reminders."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for each job")

    def handle(self, *args: Any, timeout: float, **options: Any) -> None:
        say = self.stdout.write
        call_command("migrate", interactive=False, verbosity=0)
        say(f"database: {settings.DATABASES['default']['NAME']} (migrated)")
        user, _ = get_user_model().objects.get_or_create(username="demo")
        password = secrets.token_urlsafe(12)
        user.set_password(password)
        user.save()
        out_dir = Path(settings.MEDIA_ROOT) / "demo"
        out_dir.mkdir(parents=True, exist_ok=True)

        with redis_ensured(settings.CELERY_BROKER_URL, log=say):
            port = free_port()
            logs = Path(settings.DATA_DIR) / "demo-logs"
            stack = Stack(log_dir=logs)
            try:
                stack.start("worker", worker_args(concurrency=1))
                stack.start("web", web_args(bind=f"127.0.0.1:{port}", workers=2))
                base = f"http://127.0.0.1:{port}"
                say(f"started worker and web ({base}); logs in {logs}")
                self._run_client(base=base, username="demo", password=password, out_dir=out_dir,
                                 timeout=timeout, stack=stack)
            finally:
                stack.stop()
                say("stopped worker and web")
        # The tokens the demo's logins were issued: revoked (their cache entries go with them). The demo
        # Pi's token stays, so the pages show when it was last heard from.
        AccessToken.objects.filter(owner=user, device_name="").delete()
        say("")
        say("See it all in a browser:")
        say("  make run                        (web, worker and beat; keeps running until Ctrl-C)")
        say("  open http://127.0.0.1:8000/voice/")
        say(f"  log in as demo / {password}")

    def _wait_healthy(self, base: str, stack: Stack, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            exited = stack.first_exited()
            if exited:
                raise CommandError(f"{exited[0]} exited with code {exited[1]}; see its log")
            try:
                health = requests.get(f"{base}/api/tts/health/", timeout=2).json()
                if health.get("model_loaded"):
                    return health
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.3)
        raise CommandError("the service did not become healthy in time")

    def _run_client(self, *, base: str, username: str, password: str, out_dir: Path, timeout: float,
                    stack: Stack) -> None:
        say = self.stdout.write
        health = self._wait_healthy(base, stack, timeout)
        say(f"health: engine={health['engine']} model={health['model_version']} device={health['device']}")

        http = requests.Session()
        login = http.post(f"{base}/api/auth/login/", json={"username": username, "password": password}, timeout=10)
        login.raise_for_status()
        http.headers["Authorization"] = f"Token {login.json()['token']}"
        say("logged in as demo (POST /api/auth/login/)")

        voice = http.post(f"{base}/api/tts/voices/", files={"voice_file": ("sample.wav", _sample_voice_wav())},
                          data={"language": "ko"}, timeout=30)
        if voice.status_code != 201:
            raise CommandError(f"voice upload failed: {voice.status_code} {voice.text}")
        say(f"enrolled voice {voice.json()['id']} ({voice.json()['duration_seconds']:.1f} s after trimming)")

        jobs = []
        for language, text in PHRASES:
            created = http.post(f"{base}/api/tts/jobs/", json={"text": text, "language": language}, timeout=10)
            created.raise_for_status()
            jobs.append(created.json())
            what = "a cache hit (no job)" if created.json()["id"] is None else f"job {created.json()['id']}"
            say(f"POST /api/tts/jobs/ -> {created.status_code} {what}: {text}")

        for index, job in enumerate(jobs, start=1):
            deadline = time.monotonic() + timeout
            while job["status"] not in ("succeeded", "failed"):
                if time.monotonic() > deadline:
                    raise CommandError(f"job {job['id']} did not finish in {timeout:.0f} s")
                time.sleep(0.2)
                job = http.get(f"{base}/api/tts/jobs/{job['id']}/", timeout=10).json()
            if job["status"] != "succeeded":
                raise CommandError(f"job {job['id']} failed: {job['error']}")
            audio = http.get(job["audio_url"], timeout=30)
            audio.raise_for_status()
            path = out_dir / f"reminder-{index}.wav"
            path.write_bytes(audio.content)
            info = soundfile.info(io.BytesIO(audio.content))
            made = "from the cache" if job["id"] is None else f"by job {job['id']} in {job['processing_time_ms']} ms"
            say(f"reminder {index} made {made} -> {path} ({info.duration:.2f} s, {info.samplerate} Hz)")

        again = http.post(f"{base}/api/tts/jobs/", json={"text": PHRASES[0][1], "language": "ko"}, timeout=10).json()
        say(f"asked for phrase 1 again: status={again['status']} cache_hit={again['cache_hit']} job={again['id']}")
        say(f"done: {len(jobs)} reminders saved under {out_dir}")
        self._reminder_loop(base=base, http=http)

    def _reminder_loop(self, *, base: str, http: requests.Session) -> None:
        """A reminder due this minute, played and confirmed as the Pi does (docs/reminder-loop.md)."""
        say = self.stdout.write
        say("")
        say("the reminder loop:")
        device = http.post(f"{base}/api/tts/devices/", json={"name": "데모 Pi"}, timeout=10)
        device.raise_for_status()
        pi = requests.Session()
        pi.headers["Authorization"] = f"Token {device.json()['token']}"
        zone = zoneinfo.ZoneInfo(settings.TIME_ZONE)
        now = dt.datetime.now(zone)
        hhmm = now.strftime("%H:%M")
        phrase = self._phrase_due_now(base=base, http=http, hhmm=hhmm)
        beat = pi.post(f"{base}/api/tts/devices/heartbeat/", json={"timezone": settings.TIME_ZONE}, timeout=10).json()
        say(f"  the Pi says it is alive (zone {beat['timezone']})")
        occurrence = {"scheduled_date": now.date().isoformat(), "scheduled_time": hhmm}
        key = f"demo:{phrase['id']}:{occurrence['scheduled_date']}:{hhmm}"
        played = pi.post(f"{base}/api/tts/phrases/{phrase['id']}/plays/", json={
            "played_at": now.isoformat(), "outcome": "played", "source": "cache", "key": key, **occurrence,
        }, timeout=10)
        played.raise_for_status()
        say(f"  {hhmm} the Pi played “{phrase['text']}” and reported it (dose {played.json()['dose_id']})")
        confirmed = pi.post(f"{base}/api/tts/doses/confirmations/", json={
            "phrase_id": phrase["id"], "confirmed_at": dt.datetime.now(zone).isoformat(), "key": f"{key}:confirm",
            **occurrence,
        }, timeout=10)
        confirmed.raise_for_status()
        say("  the senior pressed the button (carepill-voice confirm): confirmed")
        doses = http.get(f"{base}/api/tts/doses/", timeout=10).json()["results"]
        for dose in doses:
            if dose["phrase_id"] == phrase["id"]:
                say(f"  GET /api/tts/doses/ -> {dose['local_time']} {dose['state']} "
                    f"(plays {dose['plays']}, confirmed at {dose['confirmed_at']})")

    def _phrase_due_now(self, *, base: str, http: requests.Session, hhmm: str) -> dict[str, Any]:
        """The demo's lunchtime reminder, set to this minute (made, or moved on a second run)."""
        made = http.post(f"{base}/api/tts/phrases/", json={"text": LOOP_PHRASE, "times": [hhmm]}, timeout=10)
        if made.status_code == 201:
            return made.json()
        existing = next(p for p in http.get(f"{base}/api/tts/phrases/", timeout=10).json()["results"]
                        if p["text"] == LOOP_PHRASE)
        moved = http.patch(f"{base}/api/tts/phrases/{existing['id']}/", json={"times": [hhmm], "is_active": True},
                           timeout=10)
        moved.raise_for_status()
        return moved.json()
