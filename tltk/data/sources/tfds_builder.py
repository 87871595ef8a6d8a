"""TensorFlow Datasets builders, prepared without hanging offline, and their splits."""

from __future__ import annotations

from tltk import net
from tltk.data.errors import DataError
from tltk.data.splits import SPLIT_ALIASES, canonical_split
from tltk.recipe import DataConfig

DOWNLOAD_HOST = "storage.googleapis.com"
"""Where tfds downloads from: probed first, since without a network `download_and_prepare`
hangs for minutes before failing."""


def prepared_tfds_builder(cfg: DataConfig, *, instead: str):
    """The tfds builder of `cfg.name`, prepared: downloaded only when `data.download` allows and
    the network answers, so an offline machine fails at once rather than after minutes.

    `instead` ends the error message: what the user can do without tfds.
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(cfg.name, data_dir=cfg.data_dir)
    except Exception as e:  # tfds raises several types for unknown names
        raise DataError(f"tfds dataset {cfg.name!r}: {e}") from None
    if builder.is_prepared():
        return builder
    how = (
        f"prepare it once on a machine with network (tfds.builder({cfg.name!r}, "
        f"data_dir={cfg.data_dir!r}).download_and_prepare()) and copy {builder.data_dir}, "
        f"or {instead}"
    )
    if not cfg.download:
        raise RuntimeError(
            f"tfds dataset {cfg.name!r} is not prepared in {builder.data_dir} and "
            f"data.download is false: {how}"
        )
    if not net.reachable(DOWNLOAD_HOST):
        raise RuntimeError(
            f"tfds dataset {cfg.name!r} is not prepared in {builder.data_dir} and "
            f"{DOWNLOAD_HOST} is unreachable (no network), so it cannot be downloaded: {how}"
        )
    builder.download_and_prepare()
    return builder


def tfds_splits(cfg: DataConfig, builder) -> dict[str, str]:
    """Canonical split -> tfds split: the recipe's `data.splits`, else the dataset's own
    train/validation/test (a dataset with only `train` gets split later)."""
    if cfg.splits:
        return {canonical_split(k, "data.splits"): v for k, v in cfg.splits.items()}
    wanted = {SPLIT_ALIASES[s]: s for s in builder.info.splits if s in SPLIT_ALIASES}
    return wanted or {"train": "train"}


def tfds_class_names(cfg: DataConfig, builder, label_key: str) -> list[str]:
    """The names of the dataset's class label; a DataError when the label is not a class."""
    names = [str(n) for n in getattr(builder.info.features[label_key], "names", None) or []]
    if not names:
        raise DataError(f"tfds dataset {cfg.name!r}: label {label_key!r} is not a class label")
    return names


def tfds_description(cfg: DataConfig, builder) -> dict:
    return {"type": "tfds", "name": cfg.name, "data_dir": str(builder.data_dir)}
