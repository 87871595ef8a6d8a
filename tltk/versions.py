"""TF Serving version folders (EXPORT_ROOT/NAME/VERSION): numbering and publication.

A version is built in a temporary folder inside NAME/ and renamed onto its number once complete
(TF Serving ignores names that are not integers), so a server never sees half of one. Several
exporters of one name may run at the same time: each publishes with a rename that fails on a
number another one took first, and then moves on to the next free number.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from tltk.io import clean_stale_temporaries, publish_directory, staged_directory

PUBLISH_TRIES = 100


class ExportError(OSError):
    """The export could not be written (disk full, no permission, ...); nothing was exported."""


def version_dirs(model_root: str | Path) -> dict[int, Path]:
    """The integer-named version folders under NAME/ (temporary and other folders ignored)."""
    root = Path(model_root)
    if not root.is_dir():
        return {}
    return {
        int(p.name): p
        for p in root.iterdir()
        if p.is_dir() and p.name.isascii() and p.name.isdigit()
    }


def next_version(model_root: str | Path) -> int:
    """1 + the highest integer sub-folder of `model_root`, or 1."""
    return max(version_dirs(model_root), default=0) + 1


def refuse_taken(model_root: Path, version: int | None) -> None:
    """FileExistsError when an explicitly requested `version` exists already."""
    if version is not None and os.path.lexists(model_root / str(version)):
        raise FileExistsError(_taken(model_root, version))


@contextlib.contextmanager
def staged_version(model_root: Path, version: int | None) -> Iterator[tuple[Path, list[Path]]]:
    """Yield (a new temporary folder in NAME/ to write a version into, the stale temporaries
    of killed exports removed first). The temporary folder is gone when the block ends:
    published by `publish_version`, or removed."""
    removed = clean_stale_temporaries(model_root, targets=r"\d+")
    with staged_directory(model_root, str(version or next_version(model_root))) as tmp:
        yield tmp, removed


def publish_version(
    tmp: Path, model_root: Path, requested: int | None, write_card: Callable[[int], None]
) -> int:
    """Rename the finished folder `tmp` onto its version number and return the number.

    `write_card(version)` runs before each try, so the model card names the number the folder
    really gets. An automatic version taken meanwhile by a concurrent export moves on to the
    next free number; a requested version taken meanwhile is refused (FileExistsError).
    """
    version = requested or next_version(model_root)
    for _ in range(PUBLISH_TRIES):
        write_card(version)
        try:
            publish_directory(tmp, model_root / str(version))
            return version
        except FileExistsError:
            if requested is not None:
                raise FileExistsError(_taken(model_root, version)) from None
            version = max(version + 1, next_version(model_root))
    raise ExportError(f"no free version number under {model_root} after {PUBLISH_TRIES} tries")


def _taken(model_root: Path, version: int) -> str:
    return (
        f"{model_root / str(version)} already exists; versions are never overwritten: pass "
        f"another version or leave it unset (next free: {next_version(model_root)})"
    )
