"""Recipe schema: one typed, strict description of a whole transfer-learning run.

A recipe is YAML validated against the pydantic models below. Unknown keys and wrong types are
errors that name the file, the key's dotted path, its line, and the closest valid key.
`--set a.b=c` overrides are applied to the raw mapping before validation, so they are checked
exactly like the file, and an error they cause names the override instead of a line.
"""

from __future__ import annotations

import copy
import difflib
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tltk.errors import RecipeError
from tltk.heads import HEAD_TYPES
from tltk.overrides import apply_override

__all__ = ["Recipe", "RecipeError", "apply_override", "load_recipe"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CleanConfig(_Strict):
    """What to do with problems found before training."""

    corrupt: Literal["drop", "error"] = "drop"
    """Undecodable or truncated files (images) / empty texts: drop them (and report) or stop."""
    leakage: Literal["report", "drop", "error"] = "drop"
    """Exact duplicates across train/val/test: report only, drop from val/test, or stop."""
    min_per_class: int = 1
    """A class with fewer training examples than this is an error."""


class DataConfig(_Strict):
    source: Literal["folder", "csv", "tfds", "text"] = "folder"
    """folder: one sub-folder per class. csv: manifest of path,label(s) (images) or a
    CSV/TSV/JSONL file of texts (task: text). tfds: a TensorFlow Datasets name."""
    path: str | None = None
    """Folder or manifest file; a dict of split->path for pre-split data is given in `splits`."""
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
    clean: CleanConfig = Field(default_factory=CleanConfig)


class BackboneConfig(_Strict):
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
    lora_rank: int | None = None
    """Text backbones: enable LoRA of this rank instead of unfreezing whole layers."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra constructor arguments (e.g. `alpha`, `minimalistic` for MobileNetV3, or
    `vocabulary_size`, `rnn` for the from-scratch text RNN)."""

    @field_validator("weights", mode="before")
    @classmethod
    def _none_string(cls, value: Any) -> Any:
        return None if value in (None, "none", "None", "null") else value


class HeadConfig(_Strict):
    type: str = "classification"
    """The task type: a name registered in `tltk.heads.HEAD_TYPES` (classification,
    multilabel, regression)."""
    pooling: Literal["avg", "max"] = "avg"
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    hidden_units: int = 0
    l1: float = 0.0
    l2: float = 0.0
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    class_weight: Literal["balanced"] | dict[str, float] | None = None

    @field_validator("type")
    @classmethod
    def _registered(cls, value: str) -> str:
        if value not in HEAD_TYPES:
            raise ValueError(f"unknown head type; expected one of {', '.join(HEAD_TYPES)}")
        return value


class AugmentLayer(_Strict):
    name: str
    """A keras.layers class (RandomFlip, RandAugment, ...) or `keras_cv.<Name>`."""
    args: dict[str, Any] = Field(default_factory=dict)


class AugmentConfig(_Strict):
    policy: Literal["none", "light", "medium", "heavy", "randaugment"] = "none"
    layers: list[AugmentLayer] = Field(default_factory=list)
    """Explicit layers, applied after the policy's."""
    mixup: float = Field(0.0, ge=0.0)
    """MixUp alpha (0 = off). Applied to whole batches."""
    cutmix: float = Field(0.0, ge=0.0)
    """CutMix alpha (0 = off)."""


class PhaseConfig(_Strict):
    name: str | None = None
    train: str | list[str] = "head"
    """`head`, `all`, `top:K` (the last K backbone groups), or a list of group names.
    The head always trains."""
    epochs: int = Field(1, ge=0)
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
    lr_multipliers: dict[str, float] = Field(default_factory=dict)
    """Per-group LR factor, e.g. {stem: 0.01, block1: 0.1}; groups not named get 1."""
    layerwise_decay: float | None = None
    """Discriminative LR: the top trainable group gets the phase LR, each group below it this
    factor more (0.8 -> 1, 0.8, 0.64, ...). Combined with lr_multipliers by product."""
    batchnorm: Literal["frozen", "train"] = "frozen"
    """BatchNorm layers stay in inference mode unless `train`."""

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


class EarlyStoppingConfig(_Strict):
    monitor: str = "val_loss"
    patience: int = 3
    min_delta: float = 0.0
    restore_best_weights: bool = True


class ReduceLRConfig(_Strict):
    monitor: str = "val_loss"
    factor: float = 0.3
    patience: int = 2
    min_lr: float = 1e-7


class CallbacksConfig(_Strict):
    early_stopping: EarlyStoppingConfig | None = Field(default_factory=EarlyStoppingConfig)
    reduce_lr: ReduceLRConfig | None = Field(default_factory=ReduceLRConfig)
    """Only used in phases with a constant schedule (a schedule already owns the LR)."""
    checkpoint: bool = True
    backup: bool = True
    terminate_on_nan: bool = True
    csv_log: bool = True
    tensorboard: bool = True


class TrainConfig(_Strict):
    batch_size: int = Field(32, ge=1)
    """Per replica; the global batch is this times the number of replicas."""
    strategy: Literal["auto", "default", "one_device", "mirrored", "multi_worker", "tpu"] = "auto"
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = "float32"
    clipnorm: float | None = None
    """Clip each gradient tensor to this norm."""
    global_clipnorm: float | None = None
    """Clip all gradients together to this global norm."""
    jit_compile: bool | Literal["auto"] = "auto"
    steps_per_epoch: int | None = None
    """Cap the batches per epoch (quick runs)."""
    runs_dir: str = "runs"
    deterministic: bool = False
    """Enable TensorFlow op determinism (slower)."""
    verbose: Literal[0, 1, 2] = 1
    callbacks: CallbacksConfig = Field(default_factory=CallbacksConfig)


class EvaluateConfig(_Strict):
    split: str = "test"
    top_k: int = Field(5, ge=1)
    plots: bool = True


class ExportConfig(_Strict):
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


class Recipe(_Strict):
    name: str
    task: Literal["image", "text"] = "image"
    seed: int = 42
    data: DataConfig = Field(default_factory=DataConfig)
    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    head: HeadConfig = Field(default_factory=HeadConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    phases: list[PhaseConfig] = Field(default_factory=list)
    """Empty: a default head phase, then the top blocks at a lower LR."""
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)

    @model_validator(mode="after")
    def _labels_fit_the_head(self) -> Recipe:
        if self.data.multi_label and self.head.type == "regression":
            raise ValueError(
                "data.multi_label: a regression head takes one number per example; use "
                "head.type: multilabel for several labels per example"
            )
        return self

    @property
    def head_type(self) -> str:
        """The task type the whole run uses (model, loss, labels, evaluation, export):
        `head.type`, or multilabel when `data.multi_label` says so."""
        return "multilabel" if self.data.multi_label else self.head.type

    @property
    def multi_label(self) -> bool:
        return self.head_type == "multilabel"

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# --------------------------------------------------------------------------- loading


def load_recipe(source: str | Path | dict, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a recipe from a YAML file (or a dict), apply `a.b=c` overrides, validate it."""
    if isinstance(source, dict):
        raw, where, lines = copy.deepcopy(source), "<recipe>", {}  # overrides edit it in place
    else:
        path = Path(source)
        if not path.is_file():
            raise RecipeError(f"{path}: recipe file not found")
        text = path.read_text()
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise RecipeError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise RecipeError(f"{path}: a recipe is a mapping of sections (data, backbone, ...)")
        where, lines = str(path), _key_lines(text)
        raw.setdefault("name", path.stem)
    overridden = {apply_override(raw, item): item for item in overrides}
    try:
        return Recipe.model_validate(raw)
    except ValidationError as e:
        raise RecipeError(_explain(e, where, lines, overridden)) from None


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The pydantic model that owns the field at `loc` (for suggesting close keys)."""
    model: Any = Recipe
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) else None
        if field is None:
            return None
        model = _inner_model(field.annotation)
        if model is None:
            return None
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _explain(
    error: ValidationError, where: str, lines: dict[str, int], overridden: dict[str, str]
) -> str:
    out = [f"{where}: invalid recipe"]
    for err in error.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p[:1].isupper()))
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        at = _origin(dotted, lines, overridden)
        if err["type"] == "extra_forbidden":
            model = _model_at(loc)
            valid = list(model.model_fields) if model else []
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            out.append(f"  {dotted}{at}: unknown key{hint} Valid keys here: {', '.join(valid)}")
        else:
            got = err.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            out.append(f"  {dotted}{at}: {err['msg']}{shown}")
    return "\n".join(out)


def _origin(dotted: str, lines: dict[str, int], overridden: dict[str, str]) -> str:
    """Where `dotted` came from: its line in the file, or the `--set` that wrote it or a section
    around it (there, the file's line would point at a value that is no longer used)."""
    for key, item in overridden.items():
        if _within(dotted, key) or _within(key, dotted):
            return f" (--set {item!r})"
    line = lines.get(dotted)
    return f" (line {line})" if line else ""


def _within(dotted: str, section: str) -> bool:
    return dotted == section or dotted.startswith(section + ".")


def _key_lines(text: str) -> dict[str, int]:
    """Map dotted key paths to 1-based line numbers, for error messages."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    found: dict[str, int] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                dotted = f"{prefix}.{key.value}" if prefix else str(key.value)
                found[dotted] = key.start_mark.line + 1
                walk(value, dotted)
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                dotted = f"{prefix}.{i}"
                found[dotted] = value.start_mark.line + 1
                walk(value, dotted)

    walk(root, "")
    return found
