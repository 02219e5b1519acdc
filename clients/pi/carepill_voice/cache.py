"""The local cache: today's bundle and the clips it names, plus recent `say` clips.

Layout under cache_dir:
    bundle.json         the last bundle (with its ETag), written atomically
    said.json           text -> clip checksum, for replaying `say` offline
    clips/<sha256>.<ext>  content-addressed: a file's name is its checksum; the extension (wav, opus,
                        mp3, flac) is that of the bytes (sniffed from them, never taken from the request)

Every write goes to a temp file in the same folder, is fsynced, then renamed: a power
cut on the Pi leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import unicodedata
from pathlib import Path
from typing import Any


def text_key(text: str, language: str) -> str:
    """The same normalisation the server applies (NFC, collapsed whitespace)."""
    return language + ":" + " ".join(unicodedata.normalize("NFC", text).split())


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_sha256(value: object) -> bool:
    """A lowercase hex SHA-256: the only names clip files may have."""
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


# Extension -> does this file start like one? The extension a clip is stored under is the one its bytes show.
def _is_wav(data: bytes) -> bool:
    return data[:4] == b"RIFF" and data[8:12] == b"WAVE"


def _is_opus(data: bytes) -> bool:
    # An Ogg page whose first packet is the Opus identification header (RFC 7845).
    return data[:4] == b"OggS" and data[28:36] == b"OpusHead"


def _is_mp3(data: bytes) -> bool:
    return data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0)


def _is_flac(data: bytes) -> bool:
    return data[:4] == b"fLaC"


CLIP_KINDS = (("wav", _is_wav), ("opus", _is_opus), ("mp3", _is_mp3), ("flac", _is_flac))
CLIP_EXTENSIONS = tuple(extension for extension, _ in CLIP_KINDS)


def clip_extension(data: bytes) -> str:
    """The extension of these clip bytes; ValueError if they are none of the formats the server sends."""
    for extension, looks_like in CLIP_KINDS:
        if looks_like(data):
            return extension
    raise ValueError("not an audio file (WAV, Ogg Opus, MP3 or FLAC)")


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Cache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.clips = self.root / "clips"

    # --- files -------------------------------------------------------------------

    def clip_path(self, sha256: str, extension: str = "wav") -> Path:
        if not is_sha256(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        if extension not in CLIP_EXTENSIONS:
            raise ValueError(f"not a clip extension: {extension!r}")
        return self.clips / f"{sha256}.{extension}"

    def clip_valid(self, sha256: str) -> Path | None:
        """The clip's path (whatever its format) if present and intact; a corrupt file is removed."""
        for extension in CLIP_EXTENSIONS:
            path = self.clip_path(sha256, extension)
            if not path.is_file():
                continue
            if sha256_file(path) == sha256:
                return path
            path.unlink(missing_ok=True)
        return None

    def clip_store(self, data: bytes, *, expected_sha256: str | None = None) -> tuple[str, Path]:
        actual = hashlib.sha256(data).hexdigest()
        if expected_sha256 is not None and actual != expected_sha256:
            raise ValueError(f"checksum mismatch: expected {expected_sha256}, got {actual}")
        path = self.clip_path(actual, clip_extension(data))
        if not path.is_file():
            atomic_write(path, data)
        return actual, path

    # --- JSON state --------------------------------------------------------------

    def _read_json(self, name: str, default: Any) -> Any:
        try:
            return json.loads((self.root / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return default

    def _write_json(self, name: str, value: Any) -> None:
        atomic_write(self.root / name, json.dumps(value, ensure_ascii=False, indent=1).encode("utf-8"))

    def bundle(self) -> dict[str, Any]:
        return self._read_json("bundle.json", {"etag": None, "body": {"phrases": []}})

    def bundle_save(self, *, body: dict[str, Any], etag: str | None) -> None:
        self._write_json("bundle.json", {"etag": etag, "body": body})

    def phrase(self, phrase_id: int) -> dict[str, Any] | None:
        for phrase in self.bundle()["body"].get("phrases", []):
            if phrase.get("id") == phrase_id:
                return phrase
        return None

    def said(self) -> dict[str, str]:
        return self._read_json("said.json", {})

    def said_remember(self, *, text: str, language: str, sha256: str, keep: int) -> None:
        said = self.said()
        said.pop(text_key(text, language), None)
        said[text_key(text, language)] = sha256  # insertion order = recency
        while len(said) > keep:
            said.pop(next(iter(said)))
        self._write_json("said.json", said)

    def clip_for_text(self, text: str, language: str) -> Path | None:
        """A cached clip for this exact text: a bundle phrase first, then a past `say`."""
        key = text_key(text, language)
        for phrase in self.bundle()["body"].get("phrases", []):
            if phrase.get("sha256") and text_key(phrase["text"], phrase["language"]) == key:
                path = self.clip_valid(phrase["sha256"])
                if path is not None:
                    return path
        sha = self.said().get(key)
        return self.clip_valid(sha) if sha else None

    def prune(self) -> int:
        """Remove clips neither today's bundle nor the recent `say` list names."""
        keep = {p["sha256"] for p in self.bundle()["body"].get("phrases", []) if p.get("sha256")}
        keep |= set(self.said().values())
        removed = 0
        if self.clips.is_dir():
            for path in self.clips.iterdir():
                # Temp files only once stale: another process may be writing one now.
                stale_tmp = path.name.startswith(".tmp-") and time.time() - path.stat().st_mtime > 3600
                if stale_tmp or (path.suffix[1:] in CLIP_EXTENSIONS and path.stem not in keep):
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed
