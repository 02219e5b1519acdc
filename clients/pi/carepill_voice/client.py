"""sync / say / play, each returning an Outcome instead of raising; and for `run`,
play_due (one scheduled reminder), report_send (one play report to the server),
confirmation_send (one confirmed dose) and heartbeat.

A reminder must be spoken whatever happens to the network: every path that cannot
reach the server ends in a cached clip or the local fallback voice, and is logged.
"""

from __future__ import annotations

import enum
import logging
import shlex
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from carepill_voice.cache import Cache, is_sha256
from carepill_voice.config import Config
from carepill_voice.journal import Confirmation, Report

logger = logging.getLogger("carepill_voice")


class Outcome(enum.IntEnum):
    """Also the command's exit status (documented in docs/pi-client.md)."""

    OK = 0  # server audio (or an up-to-date cache) used
    ERROR = 1  # unexpected internal error (logged); nothing raised to the caller
    USAGE = 2  # bad arguments or configuration
    DEGRADED = 3  # spoken, but from a cached clip or the fallback voice; or sync incomplete
    FAILED = 4  # nothing spoken / server unreachable for sync (the cache is kept)
    NOT_FOUND = 5  # `play`: no such phrase in the local cache
    NOTHING_WAITING = 6  # `confirm`: no reminder is waiting for a confirmation


class ServerUnavailable(Exception):
    """Could not get audio from the server (network, timeout, 5xx, job failed, deadline)."""


@dataclass
class SyncReport:
    outcome: Outcome
    unchanged: bool = False
    downloaded: int = 0
    present: int = 0
    pending: int = 0
    failed: int = 0
    pruned: int = 0


@dataclass(frozen=True)
class Play:
    """How one scheduled reminder went, in the words of the server's play report."""

    outcome: str  # "played" (a clip of the family voice) | "fallback" (the local voice) | "failed"
    source: str  # "cache" | "server" | "fallback": where the sound came from, or the last thing tried


class Delivery(enum.Enum):
    SENT = "sent"  # 201 (stored) or 200 (the key was already stored): done
    DROPPED = "dropped"  # refused for good (a 4xx other than 401/408/429): sending again cannot help
    KEPT = "kept"  # network error, 5xx, 401, 408, 429, a redirect: try again later


@dataclass(frozen=True)
class Sent:
    delivery: Delivery
    detail: str


class Client:
    def __init__(self, config: Config, *, session: requests.Session | None = None) -> None:
        self.config = config
        self.cache = Cache(config.cache_dir)
        self.session = session or requests.Session()
        if config.token:
            self.session.headers["Authorization"] = f"Token {config.token}"
        self.session.headers["User-Agent"] = "carepill-voice/0.1"

    def close(self) -> None:
        """Close the kept-alive connections now (a later request opens new ones).

        Session.close() alone is not enough with urllib3 2: it drops the pools and leaves their
        sockets open until the garbage collector takes the pools."""
        for adapter in self.session.adapters.values():
            pools = adapter.poolmanager.pools
            for key in pools.keys():
                pools[key].close()
        self.session.close()

    # --- HTTP ----------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.config.server_url + path

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        timeout = self.config.timeout
        try:
            response = self.session.request(method, self._url(path), timeout=(timeout, timeout), **kwargs)
        except requests.RequestException as exc:
            raise ServerUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}")
        if response.status_code >= 500:
            raise ServerUnavailable(f"{method} {path}: HTTP {response.status_code}")
        return response

    def _format_params(self) -> dict[str, str]:
        """`?format=` for the server's audio and bundle routes (none for wav: what every server serves)."""
        return {} if self.config.audio_format == "wav" else {"format": self.config.audio_format}

    def _download(self, url: str, params: Mapping[str, str] | None = None) -> bytes:
        response = self._request("GET", url, params=params)
        if response.status_code != 200:
            raise ServerUnavailable(f"GET {url}: HTTP {response.status_code}")
        return response.content

    # --- playing -------------------------------------------------------------------

    def _run(self, argv: list[str], what: str) -> bool:
        try:
            result = subprocess.run(argv, stdin=subprocess.DEVNULL, timeout=120, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            logger.error("%s failed to run (%s): %s", what, argv[0], exc)
            return False
        if result.returncode != 0:
            logger.error("%s exited with %s", what, result.returncode)
        return result.returncode == 0

    def _play_file(self, path: Path) -> bool:
        return self._run([*shlex.split(self.config.player), str(path)], "player")

    def _fallback_speak(self, text: str, language: str) -> bool:
        if not self.config.fallback_tts:
            return False
        argv = [part.replace("{language}", language) for part in shlex.split(self.config.fallback_tts)]
        logger.warning("speaking with the local fallback voice: %s", argv[0])
        return self._run([*argv, text], "fallback voice")

    def _degraded(self, text: str, language: str) -> Outcome:
        """The server could not help: a cached clip of this text, else the fallback voice."""
        cached = self.cache.clip_for_text(text, language)
        if cached is not None:
            logger.warning("playing the cached clip for this text")
            if self._play_file(cached):
                return Outcome.DEGRADED
        if self._fallback_speak(text, language):
            return Outcome.DEGRADED
        logger.error("nothing could be spoken for %r", text)
        return Outcome.FAILED

    # --- commands ------------------------------------------------------------------

    def sync(self) -> SyncReport:
        """Fetch today's bundle (304 if unchanged), download missing clips, prune old ones."""
        saved = self.cache.bundle()
        headers = {"If-None-Match": saved["etag"]} if saved.get("etag") else {}
        try:
            # In `audio_format`, the entries' audio_url, sha256 and size name that format's files.
            response = self._request("GET", "/api/tts/phrases/bundle/", headers=headers, params=self._format_params())
        except ServerUnavailable as exc:
            logger.error("sync: server unavailable, keeping the cached bundle: %s", exc)
            return SyncReport(Outcome.FAILED)
        if response.status_code == 304:
            body, etag, unchanged = saved["body"], saved["etag"], True
        elif response.status_code == 200:
            body, etag, unchanged = _json_or_none(response), response.headers.get("ETag"), False
            # A captive portal or a proxy's error page answers 200 too: never cache it as a bundle.
            if not isinstance(body, dict) or not isinstance(body.get("phrases", []), list):
                logger.error("sync: the answer is not a bundle, keeping the cached one: %s", response.text[:300])
                return SyncReport(Outcome.FAILED)
        else:
            logger.error("sync: HTTP %s: %s", response.status_code, response.text[:300])
            return SyncReport(Outcome.FAILED)

        report = SyncReport(Outcome.OK, unchanged=unchanged)
        for phrase in body.get("phrases", []):
            sha = phrase.get("sha256")
            if not sha or not phrase.get("audio_url"):
                report.pending += 1
                continue
            if self.cache.clip_valid(sha) is not None:
                report.present += 1
                continue
            try:
                self.cache.clip_store(self._download(phrase["audio_url"]), expected_sha256=sha)
            except (ServerUnavailable, ValueError, OSError) as exc:
                logger.error("sync: phrase %s not cached: %s", phrase.get("id"), exc)
                report.failed += 1
            else:
                report.downloaded += 1
        # Keep the ETag only when every clip is here: otherwise the next sync refetches.
        self.cache.bundle_save(body=body, etag=etag if report.failed == 0 else None)
        report.pruned = self.cache.prune()
        if report.failed:
            report.outcome = Outcome.DEGRADED
        return report

    def say(self, text: str, language: str | None = None) -> Outcome:
        """Ask the server for this text in the family voice and play it."""
        language = language or self.config.language
        try:
            sha, path = self._synthesise(text, language)
        except ServerUnavailable as exc:
            logger.error("say: %s", exc)
            return self._degraded(text, language)
        self.cache.said_remember(text=text, language=language, sha256=sha, keep=self.config.said_cache_max)
        if self._play_file(path):
            return Outcome.OK
        return Outcome.FAILED

    def _synthesise(self, text: str, language: str) -> tuple[str, Path]:
        response = self._request("POST", "/api/tts/jobs/", json={"text": text, "language": language})
        if response.status_code not in (200, 202):
            raise ServerUnavailable(f"job refused: HTTP {response.status_code}: {response.text[:300]}")
        job = response.json()
        deadline = time.monotonic() + self.config.say_deadline
        delay = 0.2
        while job.get("status") not in ("succeeded", "failed"):
            if time.monotonic() + delay > deadline:
                raise ServerUnavailable(f"job {job.get('id')} not done within {self.config.say_deadline}s")
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)
            polled = self._request("GET", f"/api/tts/jobs/{job['id']}/")
            if polled.status_code != 200:
                raise ServerUnavailable(f"polling job: HTTP {polled.status_code}")
            job = polled.json()
        if job["status"] == "failed":
            raise ServerUnavailable(f"job failed: {job.get('error')}")
        try:
            return self.cache.clip_store(self._download(job["audio_url"], params=self._format_params()))
        except (ValueError, OSError) as exc:
            raise ServerUnavailable(f"audio not usable: {exc}")

    def play_due(self, phrase: Mapping[str, Any]) -> Play:
        """Speak a bundle phrase whose time has come: cached clip, else the server's, else
        the fallback voice. Never raises for a missing clip, a server error or a broken player."""
        text = str(phrase.get("text") or "")
        language = str(phrase.get("language") or self.config.language)
        sha = phrase.get("sha256") if is_sha256(phrase.get("sha256")) else None
        tried = "fallback"
        cached = self.cache.clip_valid(sha) if sha else None
        if cached is not None:
            tried = "cache"
            if self._play_file(cached):
                return Play("played", "cache")
            # The same bytes from the server would fail the same way: go to the local voice.
            logger.error("phrase %s: the player failed on the cached clip", phrase.get("id"))
        elif sha and phrase.get("audio_url"):
            tried = "server"
            try:
                _, path = self.cache.clip_store(self._download(str(phrase["audio_url"])), expected_sha256=sha)
            except (ServerUnavailable, ValueError, OSError) as exc:
                logger.warning("phrase %s: no cached clip and none from the server: %s", phrase.get("id"), exc)
            else:
                if self._play_file(path):
                    return Play("played", "server")
                logger.error("phrase %s: the player failed on the server's clip", phrase.get("id"))
        else:
            logger.warning("phrase %s: no intact cached clip and no audio_url (status %s)", phrase.get("id"),
                           phrase.get("status"))
        if self.config.fallback_tts:
            tried = "fallback"
            if self._fallback_speak(text, language):
                return Play("fallback", "fallback")
        logger.error("phrase %s: nothing could be spoken for %r", phrase.get("id"), text)
        return Play("failed", tried)

    def report_send(self, report: Report) -> Sent:
        """POST one play report. A resend of a stored key is answered 200: harmless."""
        return self._post_journaled(f"/api/tts/phrases/{report.phrase_id}/plays/", report.body())

    def confirmation_send(self, confirmation: Confirmation) -> Sent:
        """POST one confirmation. 200 (already confirmed, by this key or another) is stored too."""
        return self._post_journaled("/api/tts/doses/confirmations/", confirmation.body())

    def _post_journaled(self, path: str, body: Mapping[str, Any]) -> Sent:
        try:
            # No redirects: requests would turn a redirected POST into a GET, and that GET's 200
            # (a list) would look like a stored report.
            response = self._request("POST", path, json=body, allow_redirects=False)
        except ServerUnavailable as exc:
            return Sent(Delivery.KEPT, str(exc))
        status = response.status_code
        detail = f"HTTP {status}: {response.text[:300]}"
        if status in (200, 201):
            return Sent(Delivery.SENT, f"HTTP {status}")
        if 400 <= status < 500 and status not in (401, 408, 429):
            return Sent(Delivery.DROPPED, detail)
        return Sent(Delivery.KEPT, detail)

    def heartbeat(self, timezone: str) -> tuple[bool, str, dict[str, Any]]:
        """POST /api/tts/devices/heartbeat/: (answered 200, detail, the answer's JSON object)."""
        try:
            response = self._request("POST", "/api/tts/devices/heartbeat/", json={"timezone": timezone},
                                     allow_redirects=False)
        except ServerUnavailable as exc:
            return False, str(exc), {}
        body = _json_or_none(response)
        if response.status_code != 200:
            return False, f"HTTP {response.status_code}: {response.text[:300]}", {}
        return True, "HTTP 200", body if isinstance(body, dict) else {}

    def play(self, phrase_id: int) -> Outcome:
        """Play today's clip for a phrase from the cache (no network)."""
        phrase = self.cache.phrase(phrase_id)
        if phrase is None:
            logger.error("play: phrase %s is not in the cached bundle (run sync)", phrase_id)
            return Outcome.NOT_FOUND
        path = self.cache.clip_valid(phrase["sha256"]) if phrase.get("sha256") else None
        if path is not None and self._play_file(path):
            return Outcome.OK
        logger.warning("play: no intact clip for phrase %s", phrase_id)
        return self._degraded(phrase["text"], phrase["language"])


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
