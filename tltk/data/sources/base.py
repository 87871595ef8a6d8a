"""What several readers share: the recipe's path, checked."""

from __future__ import annotations

from pathlib import Path

from tltk.data.errors import DataError
from tltk.recipe import DataConfig


def need_path(cfg: DataConfig) -> Path:
    """`data.path`, expanded; a DataError when it is not given or does not exist."""
    if not cfg.path:
        raise DataError(f"data.path is required for data.source {cfg.source}")
    path = Path(cfg.path).expanduser()
    if not path.exists():
        raise DataError(f"data.path {path} does not exist; check the path in the recipe")
    return path


def refuse_dropped(dropped: list[dict], cfg: DataConfig) -> None:
    """Under `data.clean.corrupt: error`, stop on rows a reader could not use (each a dict of
    origin and reason); otherwise they are dropped and reported."""
    if not dropped or cfg.clean.corrupt != "error":
        return
    shown = "\n  ".join(f"{d['origin']}: {d['reason']}" for d in dropped[:10])
    more = f"\n  ... and {len(dropped) - 10} more" if len(dropped) > 10 else ""
    raise DataError(
        f"{len(dropped)} unusable row(s):\n  {shown}{more}\n"
        "Fix them, or set data.clean.corrupt: drop to skip them (they are reported)."
    )
