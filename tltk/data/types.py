"""The values the data layer hands on: one split of examples, what a source read, and a whole
labelled dataset."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Split:
    """The examples of one split, aligned with their labels.

    Args:
        examples: object array [N]: file paths (kind "path"), encoded image bytes ("bytes") or
            raw strings ("text").
        labels: class ids [N] (multi-class), multi-hot float [N, K] (multi-label) or float [N]
            (regression).
        kind: "path", "bytes" or "text"; says how the pipeline reads an example.
        origins: where each example came from (a file, `file.csv:line 7`, `tfds:train[12]`),
            for reports and error messages; None means the examples name themselves.
    """

    examples: np.ndarray
    labels: np.ndarray
    kind: str = "path"
    origins: list[str] | None = None

    def __post_init__(self) -> None:
        self.examples = np.asarray(self.examples, dtype=object)
        self.labels = np.asarray(self.labels)
        if len(self.examples) != len(self.labels):
            raise ValueError(
                f"a split needs one label per example: {len(self.examples)} examples, "
                f"{len(self.labels)} labels"
            )
        if self.origins is not None and len(self.origins) != len(self.examples):
            raise ValueError("a split needs one origin per example")

    def __len__(self) -> int:
        return len(self.examples)

    def origin(self, i: int) -> str:
        """Where example `i` came from, for reports and messages."""
        return self.origins[i] if self.origins is not None else str(self.examples[i])

    def subset(self, index: np.ndarray | list[int]) -> Split:
        """The examples at `index`, in that order (labels and origins follow)."""
        index = np.asarray(index, dtype=np.int64)
        origins = [self.origins[i] for i in index] if self.origins is not None else None
        return Split(self.examples[index], self.labels[index], self.kind, origins)


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
