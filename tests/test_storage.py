"""Files are written to a temp name and renamed: never half-written, never left over."""

import os
import time
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from voice_tts.storage import AtomicFileSystemStorage, storage_partials_remove


def test_save_writes_whole_file_and_leaves_no_temp(tmp_path):
    storage = AtomicFileSystemStorage(location=tmp_path)
    name = storage.save("clips/1/abc.wav", ContentFile(b"x" * 100_000))
    assert name == "clips/1/abc.wav"
    assert (tmp_path / name).read_bytes() == b"x" * 100_000
    assert [p.name for p in (tmp_path / "clips/1").iterdir()] == ["abc.wav"]


def test_same_name_is_replaced_not_suffixed(tmp_path):
    storage = AtomicFileSystemStorage(location=tmp_path)
    storage.save("a.wav", ContentFile(b"old"))
    assert storage.save("a.wav", ContentFile(b"new")) == "a.wav"
    assert (tmp_path / "a.wav").read_bytes() == b"new"


def test_failed_write_leaves_previous_file_and_no_temp(tmp_path):
    storage = AtomicFileSystemStorage(location=tmp_path)
    storage.save("a.wav", ContentFile(b"complete"))

    class Exploding(ContentFile):
        def chunks(self, chunk_size=None):
            yield b"partial"
            raise OSError("disk full")

    with pytest.raises(OSError):
        storage.save("a.wav", Exploding(b"ignored"))
    assert (tmp_path / "a.wav").read_bytes() == b"complete"
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == [".partial", "a.wav"]
    assert list((tmp_path / ".partial").iterdir()) == []


def test_traversal_is_refused(tmp_path):
    storage = AtomicFileSystemStorage(location=tmp_path)
    with pytest.raises(Exception, match="(?i)path|detected"):
        storage.save("../escape.wav", ContentFile(b"x"))
    assert not (tmp_path.parent / "escape.wav").exists()


def test_partials_of_dead_writers_are_removed_once_old(tmp_path):
    storage = AtomicFileSystemStorage(location=tmp_path)
    storage.partial_dir.mkdir()
    abandoned = storage.partial_dir / "tmp-abc.wav"  # what a SIGKILLed writer leaves
    abandoned.write_bytes(b"half")
    os.utime(abandoned, (time.time() - 3600, time.time() - 3600))
    in_progress = storage.partial_dir / "tmp-def.wav"
    in_progress.write_bytes(b"being written")

    assert storage_partials_remove(storage=storage, older_than_seconds=600) == 1
    assert not abandoned.exists() and in_progress.exists()
