"""The sections of a recipe (data, backbone, head, augment, phases, evaluate, export; `train`
is in tltk.recipe.training), each a strict pydantic model; `tltk.recipe.schema.Recipe` holds
one of each."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tltk.heads import HEAD_TYPES


class StrictModel(BaseModel):
    """Unknown keys are errors; assignments are validated too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CleanConfig(StrictModel):
    """What to do with problems found before training."""

    corrupt: Literal["drop", "error"] = "drop"
    """Undecodable or truncated files (images) / empty texts: drop them (and report) or stop."""
    leakage: Literal["report", "drop", "error"] = "drop"
    """Exact duplicates across train/val/test: report only, drop from val/test, or stop."""
    min_per_class: int = 1
    """A class with fewer training examples than this is an error."""
    cache: bool = True
    """Remember each image file's check (by path, size and times, in the check cache), so a
    run over unchanged files opens none of them to check it again."""


class DataConfig(StrictModel):
    source: Literal["folder", "csv", "tfds", "text", "tfrecord"] = "folder"
    """folder: one sub-folder per class. csv: manifest of path,label(s) (images) or a
    CSV/TSV/JSONL file of texts (modality: text). tfds: a TensorFlow Datasets name, streamed.
    tfrecord: shards written by `tltk data shard`, or any TFRecord files of tf.train.Example."""
    path: str | None = None
    """Folder or manifest file; a dict of split->path for pre-split data is given in `splits`
    (tfrecord: the shard folder, or TFRecord files: a file, folder or glob)."""
    name: str | None = None
    """tfds dataset name, e.g. `tf_flowers` or `imdb_reviews`."""
    splits: dict[str, str] = Field(default_factory=dict)
    """Explicit splits: train/val/test -> tfds split name, sub-folder, or file path."""
    data_dir: str | None = None
    """tfds data_dir."""
    download: bool = True
    """tfds: download if missing. With False, a missing dataset fails at once."""
    image_column: str = "path"
    allow_outside_paths: bool = False
    """csv: allow image paths that lead out of the manifest's folder (`../x`, an absolute path or
    a symlink elsewhere). Off: such a row is an error naming its line."""
    text_column: str = "text"
    label_column: str = "label"
    label_delimiter: str | None = None
    """Multi-label: labels in one cell separated by this string (a JSON list also works)."""
    multi_label: bool = False
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    limit_per_class: int | None = None
    """Keep at most this many examples per class (quick experiments)."""
    cache: Literal["auto", "memory", "none"] = "auto"
    """Keep decoded examples in memory: auto (when the split fits), memory, none."""
    shuffle_buffer: int | None = Field(None, ge=1)
    """Streamed splits (tfrecord, tfds): records in one training shuffle window, the
    memory/quality trade-off (up to two windows of encoded examples are in memory); default:
    128 MB of records, at most 50,000. Each epoch starts with windows of 1/64 of it, doubling
    up to it, so its first batch comes soon (the window is rounded up to whole such blocks)."""
    example_feature: str | None = None
    """tfrecord files not written by tltk: the feature with the encoded image or the text
    (default `image` / `text`); `label_column` names the label's feature."""
    verify_shards: Literal["hash", "size"] = "hash"
    """tfrecord shards: check each file's sha256 against the manifest (remembered per file in
    the check cache, so hashed once) or only its size."""
    clean: CleanConfig = Field(default_factory=CleanConfig)


class BackboneConfig(StrictModel):
    name: str = "mobilenet_v3_small"
    """A registered name (`tltk backbones`), or a KerasHub preset: built-in name, `hf://...`,
    `kaggle://...`, or a local preset folder."""
    weights: str | None = "imagenet"
    """`imagenet` (or the preset's own), `none`, or a path to a weights file / preset folder."""
    image_size: int | None = None
    """Square input size; default: the backbone's own."""
    sequence_length: int = 128
    """Text backbones: tokens per example (really applied through the preprocessor)."""
    bn_momentum: float | None = None
    """Override BatchNormalization momentum (0.9 helps when training from scratch on small data)."""
    features_from: str | None = None
    """Image backbones: end the backbone after this group (e.g. `block5`), so the head is put
    on that group's pooled output and the later groups are dropped: for data far from the
    pretraining's (8x8 digit scans from ImageNet, BENCHMARKS.md), whose earlier, less
    task-specific features probe better. Default: the whole backbone."""
    lora_rank: int | None = None
    """Text backbones: enable LoRA of this rank instead of unfreezing whole layers."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra constructor arguments (e.g. `alpha`, `minimalistic` for MobileNetV3, or
    `vocabulary_size`, `rnn` for the from-scratch text RNN)."""

    @field_validator("weights", mode="before")
    @classmethod
    def _none_string(cls, value: Any) -> Any:
        return None if value in (None, "none", "None", "null") else value


class HeadConfig(StrictModel):
    type: str = "classification"
    """The task type: a name registered in `tltk.heads.HEAD_TYPES` (classification,
    multilabel, regression)."""
    pooling: Literal["avg", "max"] = "avg"
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    hidden_units: int = 0
    l1: float = 0.0
    l2: float = 0.0
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    class_weight: Literal["auto", "balanced", "sqrt"] | dict[str, float] | None = "auto"
    """Per-class weights of a classification head's loss (probe and phases alike): `balanced`
    (n / (k * count)), `sqrt` (its square root, mean weight 1), `auto` (sqrt when the largest
    training class has more than `tltk.class_weights.IMBALANCE_RATIO` times the examples of
    the smallest, else none; the run says which; the default), {class name: weight} (1 for the
    others), or null (tltk/class_weights.py)."""
    init: Literal["auto", "probe", "random"] = "auto"
    """How the scores layer starts. `probe`: fitted before the first phase by a linear probe on
    the frozen backbone's cached features (multinomial logistic regression, one-vs-rest for
    multi-label, ridge for regression; L2 strength chosen on val), the LP of LP-FT. `random`:
    Keras' initialiser. `auto`: probe for a pretrained backbone with a linear head
    (`hidden_units: 0`) and at most `tltk.plan.PROBE_MAX_EXAMPLES` training examples."""

    @field_validator("type")
    @classmethod
    def _registered(cls, value: str) -> str:
        if value not in HEAD_TYPES:
            raise ValueError(f"unknown head type; expected one of {', '.join(HEAD_TYPES)}")
        return value


class AugmentLayer(StrictModel):
    name: str
    """A keras.layers class (RandomFlip, RandAugment, ...) or `keras_cv.<Name>`."""
    args: dict[str, Any] = Field(default_factory=dict)


class AugmentConfig(StrictModel):
    policy: Literal["auto", "none", "shift", "light", "medium", "heavy", "randaugment"] = "auto"
    """`shift`: small rotations and shifts, no flips (digits, text, shoes that all point one
    way: a mirror image is a new image). `light`..`heavy` add horizontal flips, zoom and
    (medium, heavy) colour. `auto`: `shift` for the default plan's fine-tune of a pretrained
    image backbone (a recipe without `phases`, `layers`, `mixup` or `cutmix`), else none
    (`tltk.plan.augment_config`); its head phase, if any, trains on cached un-augmented
    features."""
    layers: list[AugmentLayer] = Field(default_factory=list)
    """Explicit layers, applied after the policy's."""
    mixup: float = Field(0.0, ge=0.0)
    """MixUp alpha (0 = off). Applied to whole batches."""
    cutmix: float = Field(0.0, ge=0.0)
    """CutMix alpha (0 = off)."""


class PhaseConfig(StrictModel):
    name: str | None = None
    train: str | list[str] = "head"
    """`head`, `all`, `top:K` (the last K backbone groups), or a list of group names.
    The head always trains."""
    epochs: int | None = Field(None, ge=0)
    """How long the phase trains, in passes over the training split; or give `steps`."""
    steps: int | None = Field(None, ge=1)
    """How long the phase trains, in optimizer steps, instead of `epochs`: spread over
    ceil(steps / steps per epoch) epochs of equal length (an epoch, where validation,
    checkpoints and backups happen, is then at most one pass)."""
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    learning_rate: float | Literal["auto"] = 1e-3
    """A number, or `auto`: the learning-rate range test (`tltk lr-find`) runs at the phase's
    start and its suggestion is used, recorded in RUN/state.json and RUN/recipe.yaml (a
    resumed run reuses it)."""
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_epochs: float = Field(0.0, ge=0.0)
    weight_decay: float | None = None
    momentum: float = 0.9
    """SGD / RMSprop momentum."""
    nesterov: bool = False
    """SGD only: Nesterov momentum (the usual choice for ResNets trained from scratch)."""
    lr_multipliers: dict[str, float] = Field(default_factory=dict)
    """Per-group LR factor, e.g. {stem: 0.01, block1: 0.1}; groups not named get 1."""
    layerwise_decay: float | None = None
    """Discriminative LR: the top trainable group gets the phase LR, each group below it this
    factor more (0.8 -> 1, 0.8, 0.64, ...). Combined with lr_multipliers by product."""
    batchnorm: Literal["frozen", "train"] = "frozen"
    """BatchNorm layers stay in inference mode unless `train`."""

    @model_validator(mode="after")
    def _one_length(self) -> PhaseConfig:
        if self.epochs is not None and self.steps is not None:
            raise ValueError(
                f"a phase's length is `epochs` or `steps`, not both (got epochs {self.epochs} "
                f"and steps {self.steps}); drop one (with --set: KEY=null)"
            )
        if self.epochs is None and self.steps is None:
            object.__setattr__(self, "epochs", 1)  # no re-validation: this very validator
        return self

    @field_validator("learning_rate", mode="before")
    @classmethod
    def _positive_or_auto(cls, value: Any) -> Any:
        if value == "auto":
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not 0 < number < math.inf:
            raise ValueError("a positive number, or `auto` (the learning-rate range test)")
        return number


class EvaluateConfig(StrictModel):
    split: str = "test"
    top_k: int = Field(5, ge=1)
    plots: bool = True
    tta: Literal["none", "flip"] = "none"
    """Test-time augmentation of the evaluation (images): `flip` scores each image and its
    left-right mirror and averages the two. Off by default: a mirrored digit or letter is
    another image. The exported model is unchanged (one pass, the same signature)."""


class ExportConfig(StrictModel):
    enabled: bool = True
    dir: str = "saved_models"
    name: str | None = None
    """Model name in the TF-Serving layout; default: the recipe name."""
    version: int | None = None
    """Default: one more than the highest existing version."""
    parity: bool = True
    """Load the SavedModel in a fresh TensorFlow-only process and compare scores."""
    parity_examples: int = 16
    save_backbone: bool = True
    """Also write the fine-tuned backbone's weights with the run (for later transfer)."""
