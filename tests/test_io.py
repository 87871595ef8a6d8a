"""tltk.io: atomic writes keep the umask's permissions, fail cleanly, and stale temporaries of
dead writers are removed while a live writer's are kept."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import time

import pytest

import tltk.io as io_module
from tltk.io import (
    atomic_directory,
    atomic_write_json,
    atomic_write_text,
    clean_stale_temporaries,
    publish_directory,
    staged_directory,
)

HOST = io_module._HOST
DAY = 24 * 3600


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Set the process umask for one test; restored afterwards."""
    previous = os.umask(0o022)
    yield lambda value: os.umask(value)
    os.umask(previous)


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize(
    ("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)]
)
def test_files_and_folders_get_the_umask_permissions(tmp_path, umask, mask, file_mode, dir_mode):
    umask(mask)
    atomic_write_text(tmp_path / "report.txt", "x")
    with atomic_directory(tmp_path / "model") as tmp:
        atomic_write_json(tmp / "meta.json", {"a": 1})
    assert mode(tmp_path / "report.txt") == file_mode
    assert mode(tmp_path / "model") == dir_mode
    assert mode(tmp_path / "model" / "meta.json") == file_mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "report.txt"]  # no temporary


def test_disk_full_leaves_the_old_file_and_names_it(tmp_path, monkeypatch):
    target = atomic_write_json(tmp_path / "state.json", {"epoch": 3})

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(io_module.os, "fsync", full)
    with pytest.raises(
        OSError, match=r"could not write .*state\.json \(left as it was\): No space"
    ) as e:
        atomic_write_json(target, {"epoch": 4})
    assert e.value.errno == errno.ENOSPC and type(e.value) is OSError
    assert json.loads(target.read_text()) == {"epoch": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_permission_error_keeps_its_type(tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(io_module.os, "open", denied)
    with pytest.raises(PermissionError, match=r"could not write .*a\.txt"):
        atomic_write_text(tmp_path / "a.txt", "x")


def test_failed_folder_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="boom"), atomic_directory(tmp_path / "out") as tmp:
        (tmp / "half.bin").write_bytes(b"x")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_publish_never_replaces_a_folder(tmp_path):
    for name in ("full", "empty"):
        (tmp_path / name).mkdir()
    (tmp_path / "full" / "kept.txt").write_text("first")
    with staged_directory(tmp_path, "full") as tmp:
        (tmp / "new.txt").write_text("second")
        for name in ("full", "empty"):
            with pytest.raises(FileExistsError, match=f"{name} already exists"):
                publish_directory(tmp, tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "full"]
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["kept.txt"]
    assert list((tmp_path / "empty").iterdir()) == []


def test_stale_temporaries_of_dead_or_old_writers_only(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {
            "dead": f".3.{HOST}-{dead_pid()}.0a1b2c3d.tmp",
            "live": f".4.{HOST}-{live.pid}.0a1b2c3d.tmp",
            "mine": f".5.{HOST}-{os.getpid()}.0a1b2c3d.tmp",
            "elsewhere": ".6.otherhost-1.0a1b2c3d.tmp",  # cannot be checked: age only
            "elsewhere_old": ".7.otherhost-1.0a1b2c3d.tmp",
            "legacy": ".8.k2j4_x9a.tmp",  # tempfile.mkdtemp's name: age only
            "legacy_old": ".9.k2j4_x9a.tmp",
            "file_dead": f".state.json.{HOST}-{dead_pid()}.0a1b2c3d.tmp",
            "other_target": f".notes.{HOST}-{dead_pid()}.0a1b2c3d.tmp",
            "user_hidden_old": ".cache",
            "version": "2",
        }
        for key, name in names.items():
            path = tmp_path / name
            if key == "file_dead":
                path.write_text("{")
            else:
                path.mkdir()
                (path / "saved_model.pb").write_bytes(b"x")
            if key.endswith("_old"):
                os.utime(path, (time.time() - 2 * DAY,) * 2)
        removed = clean_stale_temporaries(tmp_path, targets=r"\d+|state\.json")
        assert sorted(p.name for p in removed) == sorted(
            names[k] for k in ("dead", "elsewhere_old", "legacy_old", "file_dead")
        )
        left = {p.name for p in tmp_path.iterdir()}
        assert left == {
            names[k]
            for k in ("live", "mine", "elsewhere", "legacy", "other_target", "user_hidden_old")
        } | {"2"}
        assert (tmp_path / "2" / "saved_model.pb").read_bytes() == b"x"
    finally:
        live.kill()
        live.wait()
    # Once the live writer is gone, its temporary goes too.
    assert [p.name for p in clean_stale_temporaries(tmp_path, targets=r"4")] == [names["live"]]


def test_clean_missing_folder(tmp_path):
    assert clean_stale_temporaries(tmp_path / "none") == []
