"""The Pi client (clients/pi, `pip install -e clients/pi`) run as the Pi runs it: the
`carepill-voice` console script in a subprocess, against the live server with a real
worker, then against a dead server (closed port) and a hung one (accepts, never
answers). The audio player and the fallback voice are tiny scripts that log what they
were given: this machine has no sound card (and no espeak-ng binary)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from carepill_voice import Config, text_to_speech_django
from carepill_voice.client import Client, Outcome

from tests.test_phrase_bundle_api import wait_bundle

CLI = shutil.which("carepill-voice") or str(Path(os.sys.executable).parent / "carepill-voice")


class Pi:
    def __init__(self, root: Path, server_url: str, token: str) -> None:
        self.root = root
        self.cache = root / "cache"
        self.played_log = root / "played.log"
        self.spoken_log = root / "spoken.log"
        player = root / "player.sh"
        player.write_text(f'#!/bin/sh\nsha256sum "$1" | cut -d" " -f1 >> {self.played_log}\n')
        fallback = root / "fallback.sh"
        fallback.write_text(f'#!/bin/sh\necho "$1|$2" >> {self.spoken_log}\n')
        for script in (player, fallback):
            script.chmod(script.stat().st_mode | stat.S_IXUSR)
        self.env = {
            "PATH": os.environ["PATH"], "HOME": str(root),
            "CAREPILL_SERVER_URL": server_url, "CAREPILL_TOKEN": token, "CAREPILL_CACHE_DIR": str(self.cache),
            "CAREPILL_TIMEOUT": "2", "CAREPILL_SAY_DEADLINE": "60",
            "CAREPILL_PLAYER": str(player), "CAREPILL_FALLBACK_TTS": f"{fallback} {{language}}",
        }

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([CLI, *args], env={**self.env, **env}, capture_output=True, text=True, timeout=120)

    def start_run(self, log: Path, **env: str) -> subprocess.Popen:
        """`carepill-voice run` in the background, its output into `log` (the caller stops it)."""
        with log.open("wb") as out:
            return subprocess.Popen([CLI, "run"], env={**self.env, **env}, stdout=out, stderr=subprocess.STDOUT)

    def config(self, **changes: object) -> Config:
        values = dict(server_url=self.env["CAREPILL_SERVER_URL"], token=self.env["CAREPILL_TOKEN"],
                      cache_dir=self.cache, timeout=2.0, player=self.env["CAREPILL_PLAYER"],
                      fallback_tts=self.env["CAREPILL_FALLBACK_TTS"],
                      repeat_times=0)  # the tests of repeats ask for them (tests/test_pi_repeat.py)
        return Config(**{**values, **changes})

    def played(self) -> list[str]:
        return self.played_log.read_text().split() if self.played_log.exists() else []

    def spoken(self) -> list[str]:
        return self.spoken_log.read_text().splitlines() if self.spoken_log.exists() else []

    def clip_files(self) -> set[str]:
        return {p.stem for p in (self.cache / "clips").glob("*.wav")}


@pytest.fixture
def dead_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connection refused
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def hung_url() -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)  # connections complete in the backlog; nobody ever answers
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.mark.worker
def test_sync_play_say_online_then_offline(worker, alice, alice_http, tmp_path, dead_url, hung_url):
    alice_http.upload_voice(4.0)
    morning = alice_http.post("/api/tts/phrases/", json={"text": "아침 약 드실 시간입니다", "times": ["08:00"]}).json()
    evening = alice_http.post("/api/tts/phrases/", json={"text": "Evening pills, please", "language": "en"}).json()
    bundle = wait_bundle(alice_http, ready=2)
    shas = {p["id"]: p["sha256"] for p in bundle["phrases"]}
    pi = Pi(tmp_path, alice_http.base_url, alice.token)

    synced = pi.run("sync")
    assert synced.returncode == 0, synced.stderr
    assert "updated, downloaded 2" in synced.stdout
    assert pi.clip_files() == set(shas.values())
    assert pi.run("sync").stdout.startswith("sync: unchanged, downloaded 0, present 2")  # 304

    assert pi.run("play", str(morning["id"])).returncode == 0
    assert pi.played() == [shas[morning["id"]]]
    assert pi.run("play", "999999").returncode == Outcome.NOT_FOUND

    said = pi.run("say", "Where are my glasses?", "--language", "en")
    assert said.returncode == 0, said.stderr
    glasses = pi.played()[-1]
    assert glasses not in shas.values() and glasses in pi.clip_files()

    # Server gone: cached phrases and past `say` clips still play; new text falls back.
    offline = {"CAREPILL_SERVER_URL": dead_url}
    assert pi.run("sync", **offline).returncode == Outcome.FAILED
    assert pi.clip_files() >= set(shas.values())  # cache kept
    assert pi.run("play", str(evening["id"]), **offline).returncode == 0
    assert pi.run("say", "Evening   pills, please", "--language", "en", **offline).returncode == Outcome.DEGRADED
    assert pi.played()[-1] == shas[evening["id"]]
    assert pi.run("say", "Where are my glasses?", "--language", "en", **offline).returncode == Outcome.DEGRADED
    assert pi.played()[-1] == glasses
    fell_back = pi.run("say", "물 드세요", **offline)
    assert fell_back.returncode == Outcome.DEGRADED and "fallback" in fell_back.stderr
    assert pi.spoken() == ["ko|물 드세요"]
    # No fallback voice installed either: nothing spoken, exit 4, no traceback.
    silent = pi.run("say", "물 드세요", CAREPILL_FALLBACK_TTS="espeak-ng-not-installed", **offline)
    assert silent.returncode == Outcome.FAILED and "Traceback" not in silent.stderr

    # A server that accepts and never answers: bounded by the timeout, then cached clip.
    assert pi.run("say", "Evening pills, please", "--language", "en",
                  CAREPILL_SERVER_URL=hung_url, CAREPILL_TIMEOUT="0.5").returncode == Outcome.DEGRADED

    # A phrase removed on the server: its clip is pruned at the next sync.
    alice_http.delete(f"/api/tts/phrases/{morning['id']}/")
    assert pi.run("sync").returncode == 0
    assert shas[morning["id"]] not in pi.clip_files() and shas[evening["id"]] in pi.clip_files()
    assert pi.run("play", str(morning["id"])).returncode == Outcome.NOT_FOUND


@pytest.mark.worker
def test_corrupt_clip_is_refetched_and_never_played(worker, alice, alice_http, tmp_path, dead_url):
    alice_http.upload_voice(4.0)
    phrase = alice_http.post("/api/tts/phrases/", json={"text": "Lunch pills", "language": "en"}).json()
    sha = wait_bundle(alice_http, ready=1)["phrases"][0]["sha256"]
    pi = Pi(tmp_path, alice_http.base_url, alice.token)
    assert pi.run("sync").returncode == 0
    clip = pi.cache / "clips" / f"{sha}.wav"
    data = clip.read_bytes()
    clip.write_bytes(data[:-100] + bytes(b ^ 0xFF for b in data[-100:]))  # bit rot on the SD card

    offline = pi.run("play", str(phrase["id"]), CAREPILL_SERVER_URL=dead_url)
    assert offline.returncode == Outcome.DEGRADED and pi.played() == []
    assert pi.spoken() == ["en|Lunch pills"]
    assert pi.run("sync").stdout.startswith("sync: unchanged, downloaded 1")  # 304, file restored
    assert hashlib.sha256(clip.read_bytes()).hexdigest() == sha


def test_sync_with_a_bad_token_fails_cleanly(live_server, tmp_path, db):
    pi = Pi(tmp_path, live_server.url, "not-a-token")
    result = pi.run("sync")
    assert result.returncode == Outcome.FAILED and "HTTP 401" in result.stderr


def test_text_to_speech_django_never_raises(tmp_path, dead_url):
    pi = Pi(tmp_path, dead_url, "token")
    assert text_to_speech_django("약 드세요", config=pi.config()) is True  # fallback voice spoke
    assert pi.spoken() == ["ko|약 드세요"]
    assert text_to_speech_django("약 드세요", config=pi.config(fallback_tts="")) is False
    # Even an unusable cache directory does not escape to the caller.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert text_to_speech_django("hi", config=pi.config(cache_dir=blocker / "cache")) in (True, False)


def test_config_file_and_env(tmp_path):
    from carepill_voice.config import ConfigError, load_config

    ini = tmp_path / "config.ini"
    ini.write_text("[carepill]\nserver_url = http://pi-server:8000/\ntoken = abc\ntimeout = 3\n")
    config = load_config(ini, env={"CAREPILL_TIMEOUT": "7", "CAREPILL_PLAYER": "paplay"})
    assert (config.server_url, config.token, config.timeout, config.player) == ("http://pi-server:8000", "abc", 7.0,
                                                                                "paplay")
    ini.write_text("[carepill]\ntimeout = soon\n")
    with pytest.raises(ConfigError, match="timeout must be a number"):
        load_config(ini, env={})
    ini.write_text("[carepill]\nsever_url = typo\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_config(ini, env={})
    bad = Pi(tmp_path, "http://x", "t").run("sync", CAREPILL_TIMEOUT="soon")
    assert bad.returncode == Outcome.USAGE and "configuration error" in bad.stderr


def test_play_works_from_a_bundle_on_disk_without_any_server(tmp_path):
    pi = Pi(tmp_path, "http://127.0.0.1:9", "t")
    client = Client(pi.config())
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\0" * 28
    sha, _ = client.cache.clip_store(wav)
    client.cache.bundle_save(body={"phrases": [{"id": 7, "text": "x", "language": "en", "sha256": sha,
                                                "audio_url": "http://gone/"}]}, etag='"e"')
    assert client.play(7) == Outcome.OK and pi.played() == [sha]
    assert json.loads((pi.cache / "bundle.json").read_text())["etag"] == '"e"'


@pytest.mark.worker
def test_audio_format_opus_caches_and_plays_ogg_opus(worker, alice, alice_http, tmp_path, dead_url):
    import soundfile

    alice_http.upload_voice(4.0)
    phrase = alice_http.post("/api/tts/phrases/", json={"text": "아침 약 드세요", "times": ["08:00"]}).json()
    wait_bundle(alice_http, ready=1)
    opus_bundle = alice_http.get("/api/tts/phrases/bundle/", params={"format": "opus"}).json()
    sha = opus_bundle["phrases"][0]["sha256"]
    pi = Pi(tmp_path, alice_http.base_url, alice.token)
    # A player that records the path it was given (its extension) as well as the bytes' checksum.
    paths_log = tmp_path / "paths.log"
    player = tmp_path / "ogg-player.sh"
    player.write_text(f'#!/bin/sh\necho "$1" >> {paths_log}\nsha256sum "$1" | cut -d" " -f1 >> {pi.played_log}\n')
    player.chmod(player.stat().st_mode | stat.S_IXUSR)
    opus = {"CAREPILL_AUDIO_FORMAT": "opus", "CAREPILL_PLAYER": str(player)}

    synced = pi.run("sync", **opus)
    assert synced.returncode == 0, synced.stderr
    assert "downloaded 1" in synced.stdout
    cached = pi.cache / "clips" / f"{sha}.opus"
    data = cached.read_bytes()
    assert hashlib.sha256(data).hexdigest() == sha and len(data) == opus_bundle["phrases"][0]["size_bytes"]
    assert soundfile.info(io.BytesIO(data)).format == "OGG" and pi.clip_files() == set()  # no WAV fetched
    assert pi.run("sync", **opus).stdout.startswith("sync: unchanged, downloaded 0, present 1")

    assert pi.run("play", str(phrase["id"]), **opus, CAREPILL_SERVER_URL=dead_url).returncode == 0
    assert pi.played() == [sha] and paths_log.read_text().split() == [str(cached)]

    said = pi.run("say", "Where are my glasses?", "--language", "en", **opus)
    assert said.returncode == 0, said.stderr
    said_path = Path(paths_log.read_text().split()[-1])
    assert said_path.suffix == ".opus" and soundfile.info(str(said_path)).format == "OGG"
    assert pi.played()[-1] == hashlib.sha256(said_path.read_bytes()).hexdigest()

    # Back to WAV: the bundle is fetched again in WAV, and the Opus clip nobody names is pruned.
    assert pi.run("sync").returncode == 0
    assert len(pi.clip_files()) == 1 and not cached.exists()


def test_audio_format_setting_is_checked(tmp_path):
    from carepill_voice.config import ConfigError, load_config

    assert load_config(tmp_path / "none.ini", env={}).audio_format == "wav"
    assert load_config(tmp_path / "none.ini", env={"CAREPILL_AUDIO_FORMAT": "opus"}).audio_format == "opus"
    for bad in ("aac", "OPUS", "../wav", "wav;x"):
        with pytest.raises(ConfigError, match="audio_format must be one of"):
            load_config(tmp_path / "none.ini", env={"CAREPILL_AUDIO_FORMAT": bad})
    result = Pi(tmp_path, "http://x", "t").run("sync", CAREPILL_AUDIO_FORMAT="ogg")
    assert result.returncode == Outcome.USAGE and "audio_format" in result.stderr


def test_cache_names_clips_by_the_format_their_bytes_show(tmp_path):
    import numpy as np
    import soundfile
    from carepill_voice.cache import Cache

    cache = Cache(tmp_path / "cache")
    stored = {}
    for fmt, subtype in (("WAV", "PCM_16"), ("OGG", "OPUS"), ("MP3", "MPEG_LAYER_III"), ("FLAC", "PCM_16")):
        buffer = io.BytesIO()
        soundfile.write(buffer, np.zeros(4800, np.float32), 24000 if fmt != "OGG" else 48000, format=fmt,
                        subtype=subtype)
        sha, path = cache.clip_store(buffer.getvalue())
        stored[path.suffix] = sha
        assert cache.clip_valid(sha) == path
    assert set(stored) == {".wav", ".opus", ".mp3", ".flac"}
    for junk in (b"<html>captive portal</html>", b"OggS" + b"\0" * 40, b""):
        with pytest.raises(ValueError, match="not an audio file"):
            cache.clip_store(junk)
    # A corrupt file of any format is removed, never returned.
    opus_path = cache.clip_valid(stored[".opus"])
    opus_path.write_bytes(opus_path.read_bytes()[:-10])
    assert cache.clip_valid(stored[".opus"]) is None and not opus_path.exists()
