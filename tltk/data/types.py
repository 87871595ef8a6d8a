"""The values the data layer hands on: one split of examples, what a source read, and a whole
labelled dataset."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf


class Records:
    """Examples that stay on disk and stream through tf.data: TFRecord shards, a tfds split.

    Each record has a global id `gid` in 0..total-1, its position in the source's one fixed
    order (`dataset(None)`). A `Split` of kind "records" lists the gids it holds, so splitting,
    limiting and leakage dropping work on gids and labels in memory, never on the examples.

    Subclasses (tltk/data/records.py, tltk/data/sources/tfds_builder.py) implement `dataset`
    and may override `origin`, `read` and `order_note`.
    """

    example_kind: ClassVar[str] = "bytes"
    """What one record's example is: "bytes" (an encoded image) or "text"."""

    def __init__(self, total: int, *, mean_bytes: float, digests: np.ndarray | None = None):
        self.total = int(total)
        self.mean_bytes = float(mean_bytes)
        """The mean size of one serialized record: sizes the streaming shuffle window."""
        self.digests = digests
        """Content hashes by gid (duplicate and leakage checks), or None when not computed."""

    def dataset(self, pass_seed: tf.Tensor | None = None) -> tf.data.Dataset:
        """(gid int64, example string) of every record: in gid order when `pass_seed` is None;
        else in an order that is a function of `pass_seed` (an int64 [2] tensor) alone."""
        raise NotImplementedError

    def origin(self, gid: int) -> str:
        return f"record {gid}"

    def origins(self, gids: np.ndarray) -> list[str]:
        """`origin` of each of `gids` (subclasses answer a whole block at once)."""
        return [self.origin(int(g)) for g in gids]

    def read(self, gids: np.ndarray) -> list:
        """The examples of a few `gids` (bytes or str), e.g. the export's parity inputs."""
        wanted = {int(g): i for i, g in enumerate(gids)}
        found: list = [None] * len(wanted)
        if not wanted:
            return found
        last = max(wanted)
        text = self.example_kind == "text"
        for gid, raw in self.dataset().take(last + 1).as_numpy_iterator():
            if int(gid) in wanted:
                found[wanted[int(gid)]] = raw.decode("utf-8") if text else raw
        return found

    def describe(self) -> dict:
        """What the report says about where the records are."""
        return {"records": self.total}


@dataclass
class Split:
    """The examples of one split, aligned with their labels.

    Args:
        examples: object array [N]: file paths (kind "path"), encoded image bytes ("bytes") or
            raw strings ("text"); for kind "records", the int64 gids of `records` it holds, in
            increasing order (the order the records stream in).
        labels: class ids [N] (multi-class), multi-hot float [N, K] (multi-label) or float [N]
            (regression).
        kind: "path", "bytes", "text" or "records"; says how the pipeline reads an example.
        origins: where each example came from (a file, `file.csv:line 7`, `tfds:train[12]`),
            for reports and error messages; None means the examples name themselves (records:
            `records.origin`).
        records: the stream a "records" split's gids index.
    """

    examples: np.ndarray
    labels: np.ndarray
    kind: str = "path"
    origins: list[str] | None = None
    records: Records | None = None

    def __post_init__(self) -> None:
        if self.kind == "records":
            self._check_records()
        else:
            self.examples = np.asarray(self.examples, dtype=object)
        self.labels = np.asarray(self.labels)
        if len(self.examples) != len(self.labels):
            raise ValueError(
                f"a split needs one label per example: {len(self.examples)} examples, "
                f"{len(self.labels)} labels"
            )
        if self.origins is not None and len(self.origins) != len(self.examples):
            raise ValueError("a split needs one origin per example")

    def _check_records(self) -> None:
        if self.records is None:
            raise ValueError("a split of kind 'records' needs its `records`")
        self.examples = np.asarray(self.examples, dtype=np.int64)
        gids = self.examples
        if len(gids) and (gids[0] < 0 or gids[-1] >= self.records.total):
            raise ValueError(f"record ids must lie in 0..{self.records.total - 1}")
        if np.any(np.diff(gids) <= 0):
            # Evaluation streams records in gid order and pairs them with the labels in
            # memory by position, so the split must list them in that order.
            raise ValueError("a records split lists each record once, in increasing gid order")

    @property
    def streamed(self) -> bool:
        """True when the examples stay on disk (kind "records")."""
        return self.kind == "records"

    @property
    def whole(self) -> bool:
        """A records split that holds every record of its stream (nothing filtered out)."""
        return self.streamed and len(self.examples) == self.records.total

    def __len__(self) -> int:
        return len(self.examples)

    def origin(self, i: int) -> str:
        """Where example `i` came from, for reports and messages."""
        if self.origins is not None:
            return self.origins[i]
        if self.streamed:
            return self.records.origin(int(self.examples[i]))
        return str(self.examples[i])

    def origins_of(self, start: int, stop: int) -> list[str]:
        """`origin(i)` for i in start..stop-1, a block at a time (RUN/splits.csv)."""
        if self.origins is not None:
            return self.origins[start:stop]
        if self.streamed:
            return self.records.origins(self.examples[start:stop])
        return [str(x) for x in self.examples[start:stop]]

    def subset(self, index: np.ndarray | list[int]) -> Split:
        """The examples at `index`, in that order (labels and origins follow; a records
        split's `index` must be increasing)."""
        index = np.asarray(index, dtype=np.int64)
        origins = [self.origins[i] for i in index] if self.origins is not None else None
        return Split(self.examples[index], self.labels[index], self.kind, origins, self.records)

    def raw_examples(self, n: int) -> list:
        """The first `n` examples as they are stored: paths, bytes or texts (records read)."""
        head = self.examples[: min(n, len(self))]
        return self.records.read(head) if self.streamed else list(head)


@dataclass
class SourceData:
    """What a source reader gives, before splitting and cleaning (see `tltk.data.sources`)."""

    class_names: list[str]
    """In label order; for regression the label column, the one "class"."""
    splits: dict[str, Split]
    """Canonical split names (train/val/test); just `train` when the source has no splits."""
    description: dict
    """The report's `source`: {"type": ..., "path" or "name": ...}."""
    found: dict[str, list] = field(default_factory=dict)
    """What the reader's checks found, by report key: `ignored_files` (not images),
    `missing_files` (manifest rows whose file is absent), `dropped` (rows without a usable text
    or label, with the reason), `bad_encoding` (rows whose bytes were not UTF-8)."""
    checked: dict | None = None
    """Set when the examples were checked before, once for the data set (shards written by
    `tltk data shard`): what that check found. The loader then trusts it, and says so, instead
    of inspecting every file again."""

    @property
    def where(self) -> str:
        """The source as messages name it: its path, or the tfds dataset."""
        return self.description.get("path") or f"tfds dataset {self.description.get('name')}"


@dataclass
class LabelledData:
    """Class names in label order, the splits (train, and val/test when non-empty), the report
    of what loading and cleaning found."""

    class_names: list[str]
    splits: dict[str, Split]
    multi_label: bool = False
    report: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def label_name(label, class_names: list[str] | None) -> object:
    """A JSON-friendly label: class name, list of names (multi-hot), or number (regression)."""
    label = np.asarray(label)
    name = (lambda k: class_names[k]) if class_names else int
    if label.ndim:
        return [name(k) for k in np.flatnonzero(label)]
    if np.issubdtype(label.dtype, np.integer):
        return name(int(label))
    return float(label)


def relabel(data: LabelledData, class_names: list[str]) -> LabelledData:
    """Map `data`'s class ids onto the order of `class_names` (a trained model's classes, which
    must include every class of `data`), in place; returns `data`."""
    if data.class_names == class_names:
        return data
    if data.multi_label:
        index = [data.class_names.index(c) if c in data.class_names else None for c in class_names]
        for split in data.splits.values():
            cols = [split.labels[:, i] if i is not None else np.zeros(len(split)) for i in index]
            split.labels = np.stack(cols, axis=1).astype("float32")
    else:
        mapping = np.array([class_names.index(c) for c in data.class_names])
        for split in data.splits.values():
            split.labels = mapping[split.labels]
    data.class_names = list(class_names)
    return data


def concat_splits(parts: list[Split]) -> Split:
    """One split of `parts`' examples in order. Parts of kinds "path" and "bytes" (images)
    become "bytes" (the files are read); texts join texts only."""
    parts = [p for p in parts if len(p)] or parts[:1]
    kinds = {p.kind for p in parts}
    if len(kinds) > 1:
        if kinds != {"path", "bytes"}:
            raise ValueError(f"cannot join splits of kinds {sorted(kinds)}")
        parts = [_as_bytes(p) for p in parts]
    origins = [p.origin(i) for p in parts for i in range(len(p))]
    return Split(
        np.concatenate([p.examples for p in parts]),
        np.concatenate([p.labels for p in parts]),
        parts[0].kind,
        origins,
    )


def _as_bytes(split: Split) -> Split:
    if split.kind == "bytes":
        return split
    data = np.empty(len(split), dtype=object)
    data[:] = [Path(str(path)).read_bytes() for path in split.examples]
    origins = [split.origin(i) for i in range(len(split))]
    return Split(data, split.labels, "bytes", origins)
