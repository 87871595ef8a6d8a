"""Cached backbone features: a phase that trains only the head trains it on the frozen
backbone's pooled features, computed once per split, instead of running the backbone (and, for
texts, the tokenizer) over every example every epoch.

The task model is cut where the head's pooling ends (`POOLED_LAYER`, tltk/heads/trunk.py):

    inputs -> backbone -> head pooling/cls token -> [cut] -> hidden, dropout, scores

`split_at_pooled` gives the two halves as Keras models over the task model's own layers, so
the head fit on features IS the task model's head (no weights are copied: after the phase the
full model simply has the trained head). Features are computed by the first half over the
evaluation pipeline (no augmentation, the modality's preprocessor, padded batches under several
replicas), in split order, with a progress bar; they are kept in memory when they fit
(`FEATURE_CACHE_BYTES` and a quarter of the RAM), else in a read-only `np.memmap` in
RUN/features/. Their training stream is the split's own (`build_feature_pipeline`), so a cached
phase sees the batches its uncached twin would.

Runs in one process that would compute the very same features (the trials of a search over
head-phase keys: `tltk.tuning.shared_head.head_phase_keys_only`) can share them through a
`SharedFeatures` store: the first run computes them, the others take them.

What differs from the uncached phase: the backbone runs in inference mode, so dropout inside
a frozen backbone (BERT's hidden dropout) is off here while an uncached `fit` applies it; the
head's own dropout is applied as ever.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tltk import tasks
from tltk.data import LabelledData
from tltk.data.passes import memory_bytes
from tltk.data.pipeline import build_feature_pipeline, predict_unpadded
from tltk.heads.trunk import POOLED_LAYER
from tltk.log import say
from tltk.model import TaskModel
from tltk.recipe import Recipe

FEATURE_CACHE_BYTES = 1024**3
"""A split's features stay in memory up to this size (and a quarter of the RAM), else on disk.
Below tf.data's 2 GB graph-constant limit too (features reach tf.data as numpy, by batch)."""
CHUNK_BATCHES = 32
"""Features are computed this many batches at a time (the progress bar's step)."""


@dataclass
class SplitModel:
    """The task model cut at the pooled features; both halves share the task model's layers."""

    extractor: keras.Model
    """The task model's inputs -> pooled float32 features [B, C]."""
    head: keras.Model
    """Pooled features [B, C] -> the task model's outputs."""


def split_at_pooled(model: keras.Model) -> SplitModel:
    pooled = model.get_layer(POOLED_LAYER).output
    return SplitModel(
        extractor=keras.Model(model.input, pooled, name=f"{model.name}_features"),
        head=keras.Model(pooled, model.output, name=f"{model.name}_head"),
    )


def cache_decision(recipe: Recipe, task_model: TaskModel, train_groups: list[str]) -> str | None:
    """Why a phase training `train_groups` (besides the head) runs on cached features, or None
    when it does not. Every backbone group frozen means every backbone BatchNorm is in
    inference mode (`set_trainable`), so the features cannot change during the phase."""
    mode = recipe.train.feature_cache
    if mode == "off" or train_groups:
        return None
    if tasks.augments(recipe, task_model):
        if recipe.augment.policy == "auto":  # tltk's choice, for the phases that train groups
            return "the backbone is frozen (augment.policy: auto augments the fine-tune only)"
        if mode != "on":
            return None
        return "the backbone is frozen (train.feature_cache: on: without augmentation)"
    return "the backbone is frozen and nothing is augmented"


@dataclass
class SharedFeatures:
    """Pooled features of a run's initial backbone, kept for the later runs of this process.

    A split's features are a function of its examples and labels, the backbone's weights, the
    input pipeline's recipe keys (modality, backbone, data, head pooling) and the dtype policy;
    they are stored under a digest of exactly those, so a run whose backbone or data differ
    (another seed's random weights, another image size) computes its own. Only features held in
    memory are kept (on-disk ones live in their run's folder); only those of the backbone as a
    run starts (before any phase trains it), so the store holds one entry per split and
    distinct start.
    """

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    computed: int = 0
    """Feature passes run (a split's features computed by the backbone)."""
    reused: int = 0
    """Splits a run took from the store instead."""


@dataclass
class FeatureCache:
    """The pooled features of each split for one backbone state, computed on first use.

    Valid while the backbone's weights stay as they were when a split was computed: the
    trainer calls `clear` after any phase that trains a backbone group (and at the end).
    """

    recipe: Recipe
    data: LabelledData
    task_model: TaskModel
    batch: int
    """The evaluation batch (global) the features are computed with."""
    replicas: int
    folder: Path
    """Where features too big for memory go (RUN/features)."""
    strategy: tf.distribute.Strategy | None = None
    """The run's strategy: the head model is built in its scope, so that `fit` under several
    replicas (or workers) makes the optimizer's variables there."""
    shared: SharedFeatures | None = None
    """Features shared with other runs of this process (a search's trials), if any."""
    _split: SplitModel | None = None
    _arrays: dict[str, np.ndarray] = field(default_factory=dict)
    _initial: bool = True
    """No phase has trained the backbone yet in this process (`clear` not called)."""

    @property
    def split_model(self) -> SplitModel:
        if self._split is None:
            scope = self.strategy.scope() if self.strategy else contextlib.nullcontext()
            with scope:
                self._split = split_at_pooled(self.task_model.model)
        return self._split

    def features(self, split: str) -> np.ndarray:
        """[N, C] float32 pooled features of `split`, in the split's order."""
        if split not in self._arrays:
            self._arrays[split] = self._shared_or_computed(split)
        return self._arrays[split]

    def _shared_or_computed(self, split: str) -> np.ndarray:
        store = self.shared if self._initial else None
        if store is None:
            return self._compute(split)
        key = self._digest(split)
        if key in store.arrays:
            store.reused += 1
            say(f"Features of '{split}': the same backbone and data as an earlier run's; reused")
            return store.arrays[key]
        features = self._compute(split)
        store.computed += 1
        if not isinstance(features, np.memmap):
            store.arrays[key] = features
        return features

    def _digest(self, split: str) -> str:
        """What the features of `split` are a function of (see `SharedFeatures`)."""
        recipe, examples = self.recipe, self.data.splits[split]
        inputs = {
            "split": split,
            "modality": recipe.modality,
            "backbone": recipe.backbone.model_dump(mode="json"),
            "data": recipe.data.model_dump(mode="json"),
            "pooling": recipe.head.pooling,
            "policy": keras.mixed_precision.global_policy().name,
        }
        digest = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode())
        for i in range(len(examples)):
            digest.update(examples.origin(i).encode() + b"\0")
        digest.update(np.ascontiguousarray(examples.labels).tobytes())
        for weight in self.split_model.extractor.weights:
            digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
        return digest.hexdigest()

    def pipeline(self, split: str, batch: int, *, training: bool, start_batch: int = 0):
        """`tasks.pipeline`'s batches of `split`, with features in place of the inputs."""
        return build_feature_pipeline(
            self.features(split),
            self.data.splits[split].labels,
            num_classes=self.data.num_classes,
            batch_size=batch,
            training=training,
            seed=self.recipe.seed,
            order=tasks.stream_order(self.recipe, self.data, split, self.task_model, batch),
            head_type=self.recipe.head_type,
            remainder=tasks.remainder(training, self.replicas),
            start_batch=start_batch,
        )

    def predict(self, split: str) -> np.ndarray:
        """The task model's outputs on `split`, in its order: the head on the split's features
        (computed, or taken from the shared store), not the backbone run again. Valid while the
        backbone is as its features were computed, as every method here assumes."""
        ds = self.pipeline(split, self.batch, training=False)
        return predict_unpadded(self.split_model.head, ds, len(self.data.splits[split]))

    def known(self, split: str) -> np.ndarray | None:
        """`split`'s features if they are computed (or `put`) and still valid, else None."""
        return self._arrays.get(split)

    def put(self, split: str, features: np.ndarray) -> None:
        """Features of `split` computed elsewhere from the backbone as it is now (a continue
        run's growth probe), so that they are not computed again."""
        n, width = len(self.data.splits[split]), int(self.split_model.extractor.output.shape[-1])
        if np.shape(features) != (n, width):
            raise ValueError(f"features of '{split}': {np.shape(features)}, not {(n, width)}")
        self._arrays[split] = np.asarray(features, np.float32)

    def clear(self) -> None:
        """Forget the features: the backbone is about to change (or the run ends)."""
        self._initial = False
        self._arrays.clear()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _compute(self, split: str) -> np.ndarray:
        examples = self.data.splits[split]
        n, width = len(examples), int(self.split_model.extractor.output.shape[-1])
        nbytes = n * width * 4
        in_memory = nbytes <= min(memory_bytes() // 4, FEATURE_CACHE_BYTES)
        where = "in memory" if in_memory else f"on disk in {self.folder}"
        say(f"Features of '{split}': {n:,} x {width} ({nbytes / 2**20:,.1f} MiB, {where})")
        started = time.perf_counter()
        if in_memory:
            out = np.empty((n, width), np.float32)
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            partial = self.folder / f"{split}.partial.npy"
            out = np.lib.format.open_memmap(partial, "w+", np.float32, (n, width))
        progress = keras.utils.Progbar(n, verbose=self.recipe.train.verbose, unit_name="example")
        step = self.batch * CHUNK_BATCHES  # whole batches: the split's own evaluation batches
        for start in range(0, n, step):
            chunk = examples.subset(np.arange(start, min(n, start + step)))
            ds = tasks.pipeline(
                self.recipe, self.data, chunk, self.task_model, self.batch,
                training=False, replicas=self.replicas,
            )  # fmt: skip
            out[start : start + len(chunk)] = predict_unpadded(
                self.split_model.extractor, ds, len(chunk)
            )
            progress.update(start + len(chunk))
        if not np.all(np.isfinite(out)):
            raise FloatingPointError(
                f"the backbone's features of '{split}' hold NaN or infinite values: check the "
                "backbone's weights (backbone.weights) and train.precision"
            )
        if not in_memory:
            out.flush()
            del out
            final = self.folder / f"{split}.npy"
            partial.replace(final)  # a complete file or none: a half-written one is never read
            out = np.load(final, mmap_mode="r")
        say(f"Features of '{split}' computed in {time.perf_counter() - started:.1f} s")
        return out
