"""TensorFlow Datasets sources, images and texts: a builder prepared without hanging offline,
the recipe's splits mapped onto the dataset's, examples read as encoded bytes or strings."""

from __future__ import annotations

import io
import socket
import threading

import numpy as np

from tltk.data.errors import DataError
from tltk.data.sources import SourceData, _canonical_split, _one_hot
from tltk.data.splits import SPLIT_ALIASES
from tltk.data.types import Split
from tltk.recipe import DataConfig

PROBE_HOST = ("storage.googleapis.com", 443)


def network_reachable(host: tuple[str, int] = PROBE_HOST, timeout: float = 3.0) -> bool:
    """Can we open a TCP connection to the tfds download host within `timeout` seconds?

    Without it `download_and_prepare` hangs for minutes before failing. The probe runs in a
    thread because a DNS lookup is not bound by the socket timeout.
    """
    result = []

    def probe() -> None:
        try:
            socket.create_connection(host, timeout=timeout).close()
            result.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return bool(result)


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
    if not network_reachable():
        raise RuntimeError(
            f"tfds dataset {cfg.name!r} is not prepared in {builder.data_dir} and "
            f"{PROBE_HOST[0]} is unreachable (no network), so it cannot be downloaded: {how}"
        )
    builder.download_and_prepare()
    return builder


def tfds_splits(cfg: DataConfig, builder) -> dict[str, str]:
    """Canonical split -> tfds split: the recipe's `data.splits`, else the dataset's own
    train/validation/test (a dataset with only `train` gets split later)."""
    if cfg.splits:
        return {_canonical_split(k, "data.splits"): v for k, v in cfg.splits.items()}
    wanted = {SPLIT_ALIASES[s]: s for s in builder.info.splits if s in SPLIT_ALIASES}
    return wanted or {"train": "train"}


def read_tfds(cfg: DataConfig, *, multi_label: bool = False) -> SourceData:
    """A TensorFlow Datasets image dataset, read as encoded bytes (decoded later, in tf.data)."""
    import tensorflow_datasets as tfds

    if not cfg.name:
        raise DataError("data.name is required for data.source tfds (e.g. tf_flowers)")
    builder = prepared_tfds_builder(
        cfg, instead="export the images to class folders and use data.source: folder"
    )
    image_key, label_key = builder.info.supervised_keys or ("image", "label")
    label_feature = builder.info.features[label_key]
    class_names = [str(n) for n in getattr(label_feature, "names", None) or []]
    if not class_names:
        raise DataError(f"tfds dataset {cfg.name!r}: label {label_key!r} is not a class label")
    out = {}
    for split, tfds_split in tfds_splits(cfg, builder).items():
        ds = builder.as_dataset(split=tfds_split, decoders={image_key: tfds.decode.SkipDecoding()})
        images, ids = [], []
        for batch in ds.batch(1024).as_numpy_iterator():
            images.extend(_as_encoded(batch[image_key]))
            ids.append(batch[label_key])
        ids = np.concatenate(ids).astype(np.int64) if ids else np.zeros(0, np.int64)
        labels = _one_hot(ids, len(class_names)) if multi_label else ids
        origins = [f"tfds:{cfg.name}/{tfds_split}[{i}]" for i in range(len(images))]
        out[split] = Split(np.array(images, dtype=object), labels, "bytes", origins)
    description = {"type": "tfds", "name": cfg.name, "data_dir": str(builder.data_dir)}
    return SourceData(class_names, out, description)


def _as_encoded(images: np.ndarray) -> list[bytes]:
    """Encoded bytes as they are; decoded uint8 arrays (some builders, some mocks) -> PNG."""
    if images.dtype == object or images.dtype.kind == "S":
        return [bytes(x) for x in images]
    from PIL import Image

    out = []
    for array in images:
        buffer = io.BytesIO()
        Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out


def read_tfds_text(cfg: DataConfig, *, multi_label: bool = False):
    """A TensorFlow Datasets text classification set (imdb_reviews, ag_news_subset, ...)."""
    if not cfg.name:
        raise DataError("data.name is required for data.source tfds (e.g. imdb_reviews)")
    if multi_label:
        raise DataError("data.source tfds: text sets are read as single-label classification")
    builder = prepared_tfds_builder(
        cfg, instead="write the texts to a CSV and use data.source: text"
    )
    text_key, label_key = builder.info.supervised_keys or ("text", "label")
    class_names = [str(n) for n in getattr(builder.info.features[label_key], "names", None) or []]
    if not class_names:
        raise DataError(f"tfds dataset {cfg.name!r}: {label_key!r} is not a class label")
    splits, dropped, bad = {}, [], []
    for split, tfds_split in tfds_splits(cfg, builder).items():
        texts, ids, origins = [], [], []
        ds = builder.as_dataset(split=tfds_split, as_supervised=True)
        for i, (raw, label) in enumerate(ds.as_numpy_iterator()):
            origin = f"tfds:{cfg.name}/{tfds_split}[{i}]"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("utf-8", errors="replace")
                bad.append(origin)
            if not text.strip():
                dropped.append({"origin": origin, "reason": "empty text"})
                continue
            texts.append(text.strip())
            ids.append(int(label))
            origins.append(origin)
        labels = np.array(ids, dtype=np.int64)
        splits[split] = Split(np.array(texts, dtype=object), labels, "text", origins)
    description = {"type": "tfds", "name": cfg.name, "data_dir": str(builder.data_dir)}
    return SourceData(class_names, splits, description), dropped, bad
