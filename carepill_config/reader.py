"""`Env`: typed, validated reads of declared environment variables.

Rules shared by every reader, so a value means the same thing wherever it is read:

- unset means the default; so does an empty value (`NAME=`, what compose passes for `${NAME:-}`),
  except for text (`str`, `secret`, `list`), where empty is a value like any other;
- a boolean is one of 1/true/yes/on or 0/false/no/off (any case); anything else is an error,
  never a silent "false";
- numbers are finite and within the bounds the caller gives;
- relative paths are taken from the base the caller gives (the project root), never from the cwd:
  an engine may chdir() and must not move a data directory under the service's feet;
- a secret (declared `secret=True`) may come from `NAME_FILE` instead: the file's contents, less
  one trailing newline. Setting both is an error (which one would win is a guess).

Every error is raised as `error` (ConfigError unless the caller passes its own, as the Django
settings do with ImproperlyConfigured), with a message that names the variable and the value.
"""

from __future__ import annotations

import datetime
import ipaddress
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

from carepill_config.variables import VARIABLES

D = TypeVar("D")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class ConfigError(ValueError):
    """A configuration value is missing, malformed or out of range; the message names the variable."""


class Env:
    """Reads declared variables from `environ` (os.environ unless given: tests pass their own)."""

    def __init__(self, environ: Mapping[str, str] | None = None, *,
                 error: type[Exception] = ConfigError) -> None:
        self._environ = os.environ if environ is None else environ
        self._error = error

    # --- the raw value --------------------------------------------------------------------------

    def _raw(self, name: str) -> str | None:
        """The value as set, or None when unset. Refuses undeclared names and plain reads of secrets'
        files: every read goes through the declarations."""
        declared = VARIABLES.get(name)
        if declared is None:
            raise self._error(f"{name} is read but not declared in carepill_config/variables.py")
        if declared.secret:
            return self._secret_raw(name)
        return self._environ.get(name)

    def _secret_raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        path = self._environ.get(f"{name}_FILE")
        if path is None or path == "":
            return value
        if value:
            raise self._error(f"{name} and {name}_FILE are both set: set one (the file is for secrets kept "
                              f"out of the environment)")
        try:
            content = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise self._error(f"{name}_FILE={path!r} cannot be read: {exc}") from None
        # Files written by `echo` or an editor end in a newline that is no part of the secret.
        return content.removesuffix("\n").removesuffix("\r")

    def _typed_raw(self, name: str) -> str | None:
        """The value, None for unset or empty (typed values: empty means the default)."""
        raw = self._raw(name)
        if raw is None or raw.strip() == "":
            return None
        return raw.strip()

    # --- text -----------------------------------------------------------------------------------

    def str(self, name: str, default: D) -> str | D:
        raw = self._raw(name)
        return default if raw is None else raw

    def secret(self, name: str, default: D) -> str | D:
        """A secret from NAME or from the file NAME_FILE names (one trailing newline removed)."""
        declared = VARIABLES.get(name)
        if declared is not None and not declared.secret:
            raise self._error(f"{name} is read as a secret but not declared secret=True (no {name}_FILE)")
        return self.str(name, default)

    def list(self, name: str, default: Sequence[str]) -> list[str]:
        """Comma-separated; blanks around items and empty items are dropped."""
        raw = self._raw(name)
        if raw is None:
            return list(default)
        return [item.strip() for item in raw.split(",") if item.strip()]

    def choice(self, name: str, default: str, choices: Sequence[str]) -> str:
        raw = self._typed_raw(name)
        value = default if raw is None else raw
        if value not in choices:
            shown = ", ".join(repr(c) if c == "" else c for c in choices)
            raise self._error(f"{name} must be one of {shown}; got {value!r}")
        return value

    # --- numbers and switches -------------------------------------------------------------------

    def bool(self, name: str, default: bool) -> bool:
        raw = self._typed_raw(name)
        if raw is None:
            return default
        value = raw.lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise self._error(f"{name} must be a boolean (1/0, true/false, yes/no, on/off), got {raw!r}")

    def int(self, name: str, default: D, *, minimum: int | None = None, maximum: int | None = None) -> int | D:
        raw = self._typed_raw(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise self._error(f"{name} must be an integer, got {raw!r}") from None
        self._bounded(name, value, minimum, maximum)
        return value

    def float(self, name: str, default: D, *, minimum: float | None = None,
              maximum: float | None = None) -> float | D:
        raw = self._typed_raw(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise self._error(f"{name} must be a number, got {raw!r}") from None
        if not math.isfinite(value):
            raise self._error(f"{name} must be a finite number, got {raw!r}")
        self._bounded(name, value, minimum, maximum)
        return value

    def _bounded(self, name: str, value: float, minimum: float | None, maximum: float | None) -> None:
        if minimum is not None and value < minimum:
            raise self._error(f"{name} must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise self._error(f"{name} must be <= {maximum}, got {value}")

    # --- structured values ----------------------------------------------------------------------

    def path(self, name: str, default: Path, *, base: Path) -> Path:
        """A path; a relative one (the value's or the default) is taken from `base`, never the cwd."""
        raw = self._typed_raw(name)
        path = Path(raw) if raw is not None else default
        return path if path.is_absolute() else base / path

    def url(self, name: str, default: str, *, schemes: Sequence[str]) -> str:
        raw = self._typed_raw(name)
        value = default if raw is None else raw
        parsed = urlparse(value)
        if parsed.scheme not in schemes or not (parsed.netloc or parsed.path):
            raise self._error(f"{name} must be a {' or '.join(s + '://' for s in schemes)} URL, got {value!r}")
        return value

    def datetime(self, name: str, default: str) -> datetime.datetime:
        raw = self._typed_raw(name)
        text = default if raw is None else raw
        try:
            value = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise self._error(f"{name} must be an ISO 8601 date and time, got {text!r}") from None
        if value.tzinfo is None:
            raise self._error(f"{name} must name its time zone (e.g. +00:00), got {text!r}")
        return value

    def networks(self, name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """Comma-separated networks in CIDR notation (a bare address is a /32 or /128)."""
        networks = []
        for item in self.list(name, []):
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise self._error(f"{name} must be comma-separated networks (CIDR), got {item!r}") from None
        return networks

    def rate(self, name: str, default: str) -> str:
        """A DRF throttle rate: N/second, N/minute, N/hour or N/day (DRF reads the first letter)."""
        raw = self._typed_raw(name)
        value = default if raw is None else raw
        count, _, period = value.partition("/")
        if not count.isdigit() or not period or period[0] not in "smhd":
            raise self._error(f"{name} must look like 60/min or 10/hour, got {value!r}")
        return value
