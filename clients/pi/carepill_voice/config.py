"""Settings from the environment, else from a small INI file, else defaults.

File: $CAREPILL_CONFIG, else ~/.config/carepill-voice/config.ini, section [carepill]:

    [carepill]
    server_url = http://192.168.0.10:8000
    token = 0123abcd...
    cache_dir = /var/cache/carepill-voice
    timeout = 5
    say_deadline = 20
    player = aplay -q
    audio_format = wav
    fallback_tts = espeak-ng -v {language}
    sync_minutes = 30
    catch_up_minutes = 10
    timezone =
    repeat_minutes = 5
    repeat_times = 2
    button_pin =

audio_format: what the Pi asks the server for (the bundle's clips and `say`): wav (the default; plays with
`aplay`), or opus (Ogg Opus, about a tenth of the bytes; needs a player that reads Ogg, e.g.
`player = paplay` with PulseAudio/PipeWire, `player = mpv --no-video --really-quiet`, or
`player = ffplay -nodisp -autoexit -loglevel quiet`), mp3 (`player = mpg123 -q`) or flac.
`aplay` plays WAV only: change `player` together with `audio_format`.

Confirming a dose (`carepill-voice confirm`, or the button): a reminder nobody confirmed plays again
repeat_minutes after its time, then again, repeat_times more plays in all (0: never repeated), each
within the confirmation window (the bundle's dose_alert_minutes, 30 if it has none).
button_pin: a push button's BCM GPIO number (empty: none), read with gpiozero when it is installed
(Raspberry Pi OS has it). Wire the button between that pin and a GND pin; the internal pull-up is
used, so no resistor is needed. The service user must be in the gpio group.
"""

from __future__ import annotations

import configparser
import os
import zoneinfo
from dataclasses import dataclass, fields, replace
from pathlib import Path

ENV_PREFIX = "CAREPILL_"
# The formats the server's clip routes serve (`?format=`).
AUDIO_FORMATS = ("wav", "opus", "mp3", "flac")


@dataclass(frozen=True)
class Config:
    server_url: str = "http://127.0.0.1:8000"
    token: str = ""
    cache_dir: Path = Path.home() / ".cache" / "carepill-voice"
    # Seconds for connecting and for each read: a dead server must not hold a reminder.
    timeout: float = 5.0
    # Longest a `say` waits for a fresh synthesis before falling back.
    say_deadline: float = 20.0
    # Command that plays a clip file (in `audio_format`); the file's path is appended.
    player: str = "aplay -q"
    # The clips' format on the wire and in the cache: wav, opus, mp3 or flac (see the module doc for players).
    audio_format: str = "wav"
    # Local speech when no clip can be had; the text is appended. {language} -> ko/en.
    fallback_tts: str = "espeak-ng -v {language}"
    language: str = "ko"
    # Clips of `say` kept for offline replay (oldest pruned first).
    said_cache_max: int = 200
    # `run`: minutes between syncs (a failed sync is retried sooner, see runner.py).
    sync_minutes: float = 30.0
    # `run`: a reminder found late (the Pi was off, busy or its clock jumped) still plays
    # up to this many minutes after its time; older ones are logged as missed.
    catch_up_minutes: float = 10.0
    # `run`: the zone the phrases' "HH:MM" times are read in. Empty: the Pi's own local
    # zone ($TZ, else /etc/localtime); an IANA name ("Asia/Seoul") overrides it.
    timezone: str = ""
    # `run`: an unconfirmed reminder plays again this many minutes after its time (and after
    # that again), at most repeat_times more times, and only within the confirmation window.
    repeat_minutes: float = 5.0
    repeat_times: int = 2
    # `run`: BCM number of a confirmation button (gpiozero, internal pull-up); None: no button.
    button_pin: int | None = None


class ConfigError(ValueError):
    pass


def _coerce(name: str, raw: str) -> object:
    kind = {f.name: f.type for f in fields(Config)}[name]
    try:
        if kind == "float":
            return float(raw)
        if kind == "int":
            return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}")
    if kind == "int | None":
        if not raw.strip():
            return None
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number or empty, got {raw!r}")
    if kind == "Path":
        return Path(raw).expanduser()
    return raw


def load_config(path: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> Config:
    env = dict(os.environ if env is None else env)
    values: dict[str, object] = {}
    file_path = Path(path or env.get(ENV_PREFIX + "CONFIG") or Path.home() / ".config/carepill-voice/config.ini")
    if file_path.is_file():
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(file_path, encoding="utf-8")
        except configparser.Error as exc:
            raise ConfigError(f"{file_path}: {exc}")
        if parser.has_section("carepill"):
            for key, raw in parser.items("carepill"):
                if key not in {f.name for f in fields(Config)}:
                    raise ConfigError(f"{file_path}: unknown setting {key!r}")
                values[key] = _coerce(key, raw)
    for f in fields(Config):
        raw = env.get(ENV_PREFIX + f.name.upper())
        if raw is not None and raw != "":
            values[f.name] = _coerce(f.name, raw)
    config = replace(Config(), **values)
    _validate(config)
    return replace(config, server_url=config.server_url.rstrip("/"))


def _validate(config: Config) -> None:
    # Caught here rather than at the first reminder: a unit that starts must also run.
    # Written so that nan fails too (every comparison with it is false).
    if not 0 < config.sync_minutes < float("inf"):
        raise ConfigError(f"sync_minutes must be more than 0, got {config.sync_minutes}")
    # Less than a minute would call a reminder missed that a busy Pi woke for a little late.
    if not 1 <= config.catch_up_minutes < float("inf"):
        raise ConfigError(f"catch_up_minutes must be 1 or more, got {config.catch_up_minutes}")
    if not 1 <= config.repeat_minutes < float("inf"):
        raise ConfigError(f"repeat_minutes must be 1 or more, got {config.repeat_minutes}")
    if config.repeat_times < 0:
        raise ConfigError(f"repeat_times must be 0 or more, got {config.repeat_times}")
    # BCM 0-27: the GPIO lines of the 40-pin header (0 and 1 are reserved for HAT EEPROMs, but usable).
    if config.button_pin is not None and not 0 <= config.button_pin <= 27:
        raise ConfigError(f"button_pin must be a BCM GPIO number from 0 to 27 (or empty), got {config.button_pin}")
    if config.audio_format not in AUDIO_FORMATS:
        raise ConfigError(f"audio_format must be one of {', '.join(AUDIO_FORMATS)}, got {config.audio_format!r}")
    if config.timezone:
        try:
            zoneinfo.ZoneInfo(config.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"timezone {config.timezone!r} is not a known IANA zone: {exc}")
