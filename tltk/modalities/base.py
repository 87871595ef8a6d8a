"""The modality contract: `Modality` (what differs between image and text runs) and
`Preprocessor` (raw examples -> the model's inputs, in tf.data, evaluation and serving alike).

Nothing here imports TensorFlow or Keras: tltk.export and tltk.data.pipeline depend on this
module, and tltk.predict (TensorFlow only) imports tltk.export.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from tltk.backbones.base import Backbone
    from tltk.data.pipeline import BatchFn
    from tltk.data.types import LabelledData, Split
    from tltk.recipe import AugmentConfig, BackboneConfig, DataConfig, Recipe


class Endpoint(NamedTuple):
    """One serving signature: `fn(batch) -> model output` for inputs matching `spec`."""

    fn: Callable[[tf.Tensor], tf.Tensor]
    spec: tf.TensorSpec
    doc: str


class Preprocessor:
    """Raw examples -> the model's inputs, the same in the tf.data pipeline (training,
    validation, evaluation) and inside every exported serving signature, the way KerasHub
    pairs a backbone with its preprocessor.

    tf.data applies `decode` to each example (before the cache, so a cached split is decoded
    once) and then `prepare_batch` to each batch; serving applies `__call__` to a batch of raw
    examples, which gives what those two give (tests/test_modalities.py checks that for every
    registered modality). What the backbone itself does (image normalisation) is not here: it
    is inside the model.
    """

    kind: ClassVar[str]
    """The modality's name: `kind` in the export's tltk.json."""
    example_kinds: ClassVar[tuple[str, ...]]
    """The `Split.kind`s it reads: "path" (a file, read by the pipeline first), "bytes", "text"."""
    imports: ClassVar[tuple[str, ...]] = ("tensorflow",)
    """The modules a process must import to load the export (op libraries)."""
    prepare_batch: Callable[[tf.Tensor], Any] | None = None
    """Applied to each batch of decoded examples; None: the batch is the model's input."""

    @property
    def example_nbytes(self) -> int | None:
        """Bytes of one decoded example in memory (`cache: auto`); None: never cache them."""
        return None

    def decode(self, raw: tf.Tensor) -> tf.Tensor:
        """One raw example (a file's bytes, a string) -> one example as the batch holds it."""
        return raw

    def __call__(self, raw: tf.Tensor) -> Any:
        """A batch of raw examples [N] (as served) -> the model's inputs."""
        raise NotImplementedError

    def endpoints(self, model: keras.Model) -> dict[str, Endpoint]:
        """The SavedModel's signatures; `serving_default` takes a batch of raw examples."""
        raise NotImplementedError

    def export_meta(self) -> dict:
        """What the export's tltk.json records about the inputs (image_size, ...)."""
        return {}

    def tracked(self) -> tuple:
        """Resources the endpoints use besides the model (a tokenizer's lookup tables)."""
        return ()


class Modality:
    """One kind of example. Subclasses set `name` and implement the methods that raise here;
    `tltk.modalities.get_modality(name)` returns the one instance of each."""

    name: ClassVar[str]
    """The registry name: `modality` in a recipe."""

    def load_data(
        self,
        cfg: DataConfig,
        *,
        seed: int,
        label_kind: str,
        report_path: Path | None = None,
        min_classes: int = 2,
    ) -> LabelledData:
        """Read, check and split the recipe's data; `label_kind` is the head spec's.
        `min_classes`: fewer classes is an error (1 where the data adds classes to a model's)."""
        raise NotImplementedError

    def build_backbone(self, cfg: BackboneConfig, train: Split) -> Backbone:
        """The recipe's backbone with its weights; `train` (the training split) for one that
        learns from it (a vocabulary)."""
        raise NotImplementedError

    def restore_backbone(self, cfg: BackboneConfig, run_dir: Path) -> Backbone:
        """A finished run's backbone rebuilt offline, with random weights (the caller loads
        the run's model weights next)."""
        raise NotImplementedError

    def preprocessor(self, backbone: Backbone) -> Preprocessor:
        raise NotImplementedError

    def augment(self, cfg: AugmentConfig, *, seed: int, backbone: Backbone) -> BatchFn | None:
        """Training batches' augmentation, on the CPU after the cache; None: none."""
        return None

    def save_run_assets(self, recipe: Recipe, backbone: Backbone, run_dir: Path) -> None:
        """Write what besides the model's weights the run folder keeps of the backbone."""

    def serving_examples(self, split: Split, n: int) -> list:
        """The first `n` examples of `split` as `serving_default` takes them (the export's
        parity check)."""
        raise NotImplementedError


def label_flags(label_kind: str) -> dict[str, bool]:
    """The data loaders' `multi_label` / `regression` flags for a head spec's `label_kind`."""
    return {"multi_label": label_kind == "classes", "regression": label_kind == "value"}
