"""One set of functions the trainer, evaluation and export call for any run.

What differs between modalities (image, text) is asked of the recipe's `Modality`
(`modality(recipe)`, see tltk/modalities/); what differs between task types (classification,
multilabel, regression) of its `HeadSpec` (`head(recipe)`, see tltk/heads/). Everything else
(phases, callbacks, strategy, evaluation, export mechanics) is shared.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tltk.data import LabelledData
from tltk.data.passes import StreamOrder
from tltk.data.passes import stream_order as data_stream_order
from tltk.data.pipeline import predict_unpadded
from tltk.data.types import Split
from tltk.heads import get_head
from tltk.heads.base import HeadSpec
from tltk.modalities import get_modality
from tltk.modalities.base import Modality
from tltk.model import TaskModel, build_model
from tltk.plan import augment_config
from tltk.recipe import HeadConfig, Recipe, load_recipe
from tltk.tta import flip_averaged


def modality(recipe: Recipe) -> Modality:
    """The recipe's modality (`recipe.modality`): images or texts."""
    return get_modality(recipe.modality)


def head(recipe: Recipe) -> HeadSpec:
    """The spec of the recipe's task type (`recipe.head_type`)."""
    return get_head(recipe.head_type)


def head_config(recipe: Recipe) -> HeadConfig:
    """The recipe's head section with its type resolved (`data.multi_label` makes it multilabel)."""
    return recipe.head.model_copy(update={"type": recipe.head_type})


def load_data(
    recipe: Recipe, *, report_path: Path | None = None, run_dir: Path | None = None
) -> LabelledData:
    """The recipe's data, checked and split; a continue run's joined with its past run's
    (tltk/continual/data.py; `run_dir`: the continue run's folder)."""
    if recipe.continue_from is not None:
        from tltk.continual.data import load_continue_data

        return load_continue_data(recipe, report_path=report_path, run_dir=run_dir)
    return modality(recipe).load_data(
        recipe.data, seed=recipe.seed, label_kind=head(recipe).label_kind, report_path=report_path
    )


def num_outputs(recipe: Recipe, data: LabelledData) -> int:
    return head(recipe).num_outputs(data.num_classes)


def build_task_model(
    recipe: Recipe, data: LabelledData, *, weights: str | None | bool = True
) -> TaskModel:
    """Backbone (with the recipe's weights, or none when `weights=False`) plus head."""
    cfg = (
        recipe.backbone if weights is True else recipe.backbone.model_copy(update={"weights": None})
    )
    backbone = modality(recipe).build_backbone(cfg, data.splits.get("train"))
    return build_model(backbone, head_config(recipe), num_outputs(recipe, data), name=recipe.name)


def pipeline(
    recipe: Recipe,
    data: LabelledData,
    split: str | Split,
    task_model: TaskModel,
    batch: int,
    *,
    training: bool,
    replicas: int = 1,
    start_batch: int = 0,
) -> tf.data.Dataset:
    """Batches of a split (by name, or a `Split` of `data`'s classes) for `task_model`:
    training, an endless stream from `start_batch` (see `build_pipeline`). Under several
    replicas every batch is whole, so no replica ever gets an empty or ragged one: training
    drops the remainder (a different one each epoch), evaluation pads it (`predict_unpadded`
    slices the blanks off)."""
    from tltk.data import build_pipeline

    kind, backbone = modality(recipe), task_model.backbone
    cfg = augment_config(recipe)
    augment = kind.augment(cfg, seed=recipe.seed, backbone=backbone) if training else None
    return build_pipeline(
        data.splits[split] if isinstance(split, str) else split,
        num_classes=data.num_classes,
        preprocessor=kind.preprocessor(backbone),
        batch_size=batch,
        training=training,
        seed=recipe.seed,
        augment=augment,
        cache=recipe.data.cache,
        head_type=recipe.head_type,
        remainder=remainder(training, replicas),
        start_batch=start_batch,
        shuffle_buffer=recipe.data.shuffle_buffer,
    )


def remainder(training: bool, replicas: int) -> str:
    """What becomes of a split's last partial batch (`build_pipeline`'s `remainder`)."""
    return "keep" if replicas == 1 else ("drop" if training else "pad")


def stream_order(
    recipe: Recipe, data: LabelledData, split: str, task_model: TaskModel, batch: int
) -> StreamOrder:
    """How `pipeline(..., training=True)` orders `split`'s examples."""
    preprocessor = modality(recipe).preprocessor(task_model.backbone)
    return data_stream_order(
        len(data.splits[split]), preprocessor.example_nbytes, recipe.data.cache, batch
    )


def augments(recipe: Recipe, task_model: TaskModel) -> bool:
    """Whether training batches are augmented (the modality's augmentation is not None)."""
    kind, cfg = modality(recipe), augment_config(recipe)
    return kind.augment(cfg, seed=recipe.seed, backbone=task_model.backbone) is not None


def loss(recipe: Recipe) -> keras.losses.Loss:
    return head(recipe).loss(recipe.head)


def metrics(recipe: Recipe, task_model: TaskModel) -> list:
    width = task_model.model.output.shape[-1]
    return head(recipe).metrics(width, recipe.evaluate.top_k)


def predict_split(
    recipe: Recipe,
    task_model: TaskModel,
    data: LabelledData,
    split: str,
    batch: int,
    *,
    replicas: int = 1,
    outputs_of: Callable[[str], np.ndarray] | None = None,
):
    """(y_true, y_score, loss) on a split, in the split's order; each example counted once.
    `outputs_of(split)`: the model's outputs from elsewhere (its head on cached features)."""
    labels = data.splits[split].labels
    if outputs_of is not None and recipe.evaluate.tta == "none":
        outputs = outputs_of(split)
    else:
        ds = pipeline(recipe, data, split, task_model, batch, training=False, replicas=replicas)
        predict = flip_averaged if recipe.evaluate.tta == "flip" else predict_unpadded
        outputs = predict(task_model.model, ds, len(labels))
    scores = head(recipe).predictions(outputs)
    value = loss(recipe)(targets(recipe, data, split), scores)
    value = float(keras.ops.convert_to_numpy(value))
    return labels, scores, value


def targets(recipe: Recipe, data: LabelledData, split: str):
    """A split's labels as the loss sees them: one-hot, multi-hot or flat values (float32)."""
    return head(recipe).targets(data.splits[split].labels, data.num_classes)


def evaluate(
    recipe: Recipe,
    task_model: TaskModel,
    data: LabelledData,
    split: str,
    out_dir: Path,
    batch: int,
    *,
    replicas: int = 1,
    extra: Callable[[np.ndarray, np.ndarray], dict] | None = None,
    outputs_of: Callable[[str], np.ndarray] | None = None,
) -> dict:
    """metrics.json (and plots) of `split` in `out_dir`; `extra(y_true, y_score)` adds keys
    computed from the same predictions (a continue run's forgetting); `outputs_of`: see
    `predict_split`."""
    from tltk.evaluate import compute_metrics, write_metrics

    if split not in data.splits or not len(data.splits[split]):
        raise ValueError(f"evaluate.split: no {split!r} split (have {sorted(data.splits)})")
    y_true, y_score, value = predict_split(
        recipe, task_model, data, split, batch, replicas=replicas, outputs_of=outputs_of
    )
    result = compute_metrics(
        y_true,
        y_score,
        data.class_names,
        task=recipe.head_type,
        top_k=recipe.evaluate.top_k,
        loss=value,
    )
    result["split"] = split
    if extra is not None:
        result.update(extra(y_true, y_score))
    write_metrics(result, out_dir, plots=recipe.evaluate.plots)
    return result


def save_run_assets(recipe: Recipe, task_model: TaskModel, run_dir: Path) -> None:
    """What the run folder keeps of the backbone besides the model's weights (images: its own
    weights for transfer; text: what rebuilds it offline, e.g. the vocabulary)."""
    modality(recipe).save_run_assets(recipe, task_model.backbone, run_dir)


def load_run(run_dir: str | Path) -> tuple[Recipe, TaskModel, list[str]]:
    """Rebuild a finished run's model offline: recipe + class names + saved weights."""
    run_dir = Path(run_dir)
    recipe = load_recipe(run_dir / "recipe.yaml")
    class_names = json.loads((run_dir / "classes.json").read_text())
    shell = LabelledData(class_names=class_names, splits={}, multi_label=recipe.multi_label)
    backbone = modality(recipe).restore_backbone(recipe.backbone, run_dir)
    task_model = build_model(
        backbone, head_config(recipe), num_outputs(recipe, shell), name=recipe.name
    )
    task_model.model.load_weights(str(run_dir / "model.weights.h5"))
    return recipe, task_model, class_names


def export(
    recipe: Recipe, task_model: TaskModel, data: LabelledData, metrics: dict, run_dir: Path
) -> Path:
    from tltk import export as ex

    card = {
        "recipe": recipe.model_dump(mode="json"),
        "metrics": {k: v for k, v in metrics.items() if not isinstance(v, (list, dict))},
        "per_class": metrics.get("per_class"),
        "data": data.report.get("counts", {}),
        "run_dir": str(run_dir),
    }
    if "continual" in metrics:  # the runs this model continued, their classes and accuracies
        card["lineage"] = metrics["continual"]["lineage"]
    test = data.splits.get(recipe.evaluate.split) or data.splits["train"]
    n = recipe.export.parity_examples if recipe.export.parity else 0
    common = dict(
        class_names=data.class_names,
        export_root=recipe.export.dir,
        name=recipe.export.name or recipe.name,
        version=recipe.export.version,
        task=recipe.head_type,
        card=card,
    )
    kind = modality(recipe)
    result = ex.export_model(
        task_model.model,
        kind.preprocessor(task_model.backbone),
        parity_inputs=kind.serving_examples(test, n) if n else None,
        **common,
    )
    if result.parity is not None:
        print(
            "Parity (fresh TensorFlow-only process): "
            f"max |diff| {result.parity['max_abs_diff']:.2e} "
            f"on {result.parity['n']} examples"
        )
    return result.path
