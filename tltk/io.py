"""Atomic writes: a reader never sees a half-written report, model or folder.

Every file and folder is first written under a temporary name beside its target, then renamed
into place. Two things follow from how the temporaries are made:

- Permissions are those of any normal write: files 0666 and folders 0777, minus the user's
  umask (a TF Serving process running as another user can read an export made with umask 022).
  `tempfile.mkstemp`/`mkdtemp` would make them 0600/0700.
- A temporary is named `.TARGET.HOST-PID.TOKEN.tmp`, so a later writer can tell the leftovers of
  a killed writer (`clean_stale_temporaries`) from the live temporary of a concurrent one.

A failed write (disk full, no permission) leaves the target as it was, removes its temporary and
raises an OSError of the same type whose message names the target.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STALE_AFTER_S = 24 * 3600
"""A temporary whose writer cannot be checked (another host, an older naming) is stale after
this long without a change. Generous: a live export may sit in its parity check for minutes."""

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
_OWNED = re.compile(r"\.(?P<target>.+)\.(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)\.[0-9a-f]+\.tmp")
_LEGACY = re.compile(r"\.(?P<target>.+)\.[A-Za-z0-9_]{8}\.tmp")  # tempfile's names (no writer)


def _temp_path(target: Path) -> Path:
    return target.parent / f".{target.name}.{_HOST}-{os.getpid()}.{secrets.token_hex(4)}.tmp"


def _failed(e: OSError, what: str) -> OSError:
    """`e` again (same type and errno, so callers' `except` clauses still match), saying `what`."""
    message = f"{what}: {e.strerror or e}"
    try:
        return type(e)(e.errno, message) if e.errno is not None else type(e)(message)
    except TypeError:  # an OSError subclass with its own constructor
        return OSError(e.errno, message)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to a temporary file beside `path`, then rename it into place."""
    with _atomic_file(path, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_text_file(path: str | Path) -> contextlib.AbstractContextManager[Any]:
    """A text file to write line by line (nothing held in memory), renamed to `path` when the
    block succeeds; on error `path` is left as it was and the temporary removed."""
    return _atomic_file(path, "w", encoding="utf-8", newline="")


@contextlib.contextmanager
def _atomic_file(path: str | Path, mode: str, **open_kwargs: Any) -> Iterator[Any]:
    """A temporary file beside `path` (flushed and fsynced), renamed onto `path` when the block
    succeeds; on any error the temporary is removed and `path` left as it was."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_path(path)
        # O_EXCL: never follow or reuse anything at the name; mode 0666 lets the umask decide.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(e, OSError):
            raise _failed(e, f"could not write {path} (left as it was)") from e
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


@contextlib.contextmanager
def staged_directory(parent: str | Path, target: str) -> Iterator[Path]:
    """Yield a new temporary folder in `parent` for building `target`; `publish_directory`
    renames it into place. Whatever is left of it when the block ends is removed."""
    parent = Path(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_path(parent / target)
        os.mkdir(tmp, 0o777)  # the umask applies, as for any folder
    except OSError as e:
        raise _failed(e, f"could not create a folder in {parent}") from e
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when it was published


def publish_directory(tmp: str | Path, final: str | Path) -> None:
    """Rename the folder `tmp` to `final`; FileExistsError when `final` exists.

    rename(2) fails on an existing non-empty folder, which every published folder is, so two
    writers racing for one name never replace each other. It would replace an *empty* folder;
    the check just before narrows that to another program creating one at the same instant.
    """
    final = Path(final)
    if os.path.lexists(final):
        raise FileExistsError(errno.EEXIST, f"{final} already exists; refusing to overwrite it")
    try:
        os.rename(tmp, final)
    except OSError as e:
        if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
            message = f"{final} already exists; refusing to overwrite it"
            raise FileExistsError(e.errno, message) from None
        raise


@contextlib.contextmanager
def atomic_directory(final: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `final`; rename it to `final` when the block succeeds.

    Refuses to replace an existing `final` (nothing the user had is overwritten). On error the
    temporary folder is removed and `final` does not appear.
    """
    final = Path(final)
    if os.path.lexists(final):
        raise FileExistsError(errno.EEXIST, f"{final} already exists; refusing to overwrite it")
    with staged_directory(final.parent, final.name) as tmp:
        yield tmp
        publish_directory(tmp, final)


def clean_stale_temporaries(
    folder: str | Path, *, targets: str = r".+", max_age_s: float = STALE_AFTER_S
) -> list[Path]:
    """Remove the temporaries in `folder` (for targets matching the regex `targets`) that no
    live writer owns: its process is gone (same host), or it has not changed for `max_age_s`.

    Finished files and folders are never touched: only names this module gives temporaries
    (and `tempfile`'s `.TARGET.XXXXXXXX.tmp`, age only). Returns what was removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    now = time.time()
    for entry in os.scandir(folder):
        owned = _OWNED.fullmatch(entry.name)
        match = owned or _LEGACY.fullmatch(entry.name)
        if not match or not re.fullmatch(targets, match["target"]):
            continue
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > max_age_s
        except FileNotFoundError:  # its writer renamed or removed it meanwhile
            continue
        dead = bool(owned) and owned["host"] == _HOST and not _alive(int(owned["pid"]))
        if dead or old:
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
            if not os.path.lexists(path):
                removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    if pid <= 0:  # kill(0, ...) would address our own process group
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def save_weights_atomic(model, path: Path) -> None:
    """`model.save_weights` to a temporary file beside `path`, renamed into place (Keras wants
    the temporary's name to end in .weights.h5 too)."""
    tmp = path.with_name(f".{path.stem}.tmp.weights.h5")
    model.save_weights(str(tmp))
    tmp.replace(path)
