"""What every phase of a run trains with (`Fit`), set up once per run by `prepare`: the model in
the strategy's scope, the training batch, validation, the phase plan and head start
(`tltk.plan`), class weights and the backbone's feature cache. `tltk.fitting` then runs the
phases with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import tensorflow as tf

from tltk import plan as pl
from tltk import tasks
from tltk.callbacks import ValidationMetrics
from tltk.class_weights import resolve_class_weight
from tltk.data import LabelledData
from tltk.data.passes import batches_per_pass
from tltk.features import FeatureCache, SharedFeatures
from tltk.hardware import Hardware
from tltk.log import say as _say
from tltk.model import TaskModel
from tltk.recipe import Recipe
from tltk.runs import Run
from tltk.strategy import Role, describe


@dataclass
class Fit:
    """What every phase of one run trains with."""

    recipe: Recipe
    run: Run
    task_model: TaskModel
    data: LabelledData
    strategy: tf.distribute.Strategy
    role: Role
    hardware: Hardware
    train_batch: int
    steps: int
    """Optimizer steps per epoch."""
    validation: ValidationMetrics | None
    class_weight: dict[int, float] | None
    plan: pl.Plan
    features: FeatureCache
    """The frozen backbone's pooled features, for phases that train only the head."""
    trained: set[int] = field(default_factory=set)
    """The phases this process trained (so a worker has their weights in its own folder)."""
    train_model: keras.Model | None = None
    """What `fit` trains: the task model itself, or a model wrapping it (a continue run's
    `DistillingModel`); the run saves the task model's weights either way."""

    def __post_init__(self) -> None:
        if self.train_model is None:
            self.train_model = self.task_model.model


def prepare(
    recipe: Recipe,
    run: Run,
    data: LabelledData,
    strategy: tf.distribute.Strategy,
    role: Role,
    hardware: Hardware,
    shared_features: SharedFeatures | None = None,
) -> Fit:
    """Model in the strategy's scope, batch sizes, validation and class weights; what the
    hardware made of the recipe's `auto` values is logged and kept in RUN/state.json.
    `shared_features`: features other runs of this process computed (`SharedFeatures`)."""
    replicas = strategy.num_replicas_in_sync
    global_batch = hardware.global_batch
    _say(f"Strategy: {describe(strategy)}; global batch {global_batch}")
    _say(f"Hardware: {hardware.describe()}")
    run.state["hardware"] = hardware.as_dict()
    run.save()
    grown_features = {}  # the splits' features a continue run's growth computed
    with strategy.scope():
        if recipe.continue_from is not None:
            from tltk.continual.model import continue_models

            task_model, train_model, grown_features = continue_models(recipe, run, data)
        else:
            task_model = tasks.build_task_model(recipe, data)
            train_model = task_model.model
    n_train = len(data.splits["train"])
    train_batch = first_batch_size(n_train, global_batch, replicas)
    remainder = "drop" if replicas > 1 else "keep"
    per_pass = batches_per_pass(n_train, train_batch, remainder)
    if replicas > 1 and n_train % train_batch:
        _say(
            f"{describe(strategy)}: every replica gets whole batches, so each epoch leaves out "
            f"{n_train % train_batch} of the {n_train} training examples (different ones each "
            "epoch: the split is reshuffled)"
        )
    validation = None
    if len(data.splits.get("val", ())):
        val_ds = tasks.pipeline(
            recipe, data, "val", task_model, global_batch, training=False, replicas=replicas
        )
        validation = ValidationMetrics(
            val_ds,
            tasks.targets(recipe, data, "val"),
            tasks.loss(recipe),
            tasks.metrics(recipe, task_model),
        )
    steps = recipe.train.steps_per_epoch or per_pass
    plan = pl.plan_run(recipe, n_train, steps)
    _say(f"Head start: {plan.init} ({plan.why})")
    if plan.description:
        _say(plan.description)
    pl.warn_short_phases(
        plan.phases, steps, init=plan.init, pretrained=pl.starts_pretrained(recipe),
        num_train=n_train, batch=train_batch,
    )  # fmt: skip
    features = FeatureCache(
        recipe, data, task_model, global_batch, replicas, folder=run.dir / "features",
        strategy=strategy, shared=shared_features,
    )  # fmt: skip
    for split, computed in grown_features.items():
        features.put(split, computed)
    class_weight, why = resolve_class_weight(recipe, data)
    if why:
        _say(why)
    return Fit(
        recipe=recipe,
        run=run,
        task_model=task_model,
        data=data,
        strategy=strategy,
        role=role,
        hardware=hardware,
        train_batch=train_batch,
        steps=steps,
        validation=validation,
        class_weight=class_weight,
        plan=plan,
        features=features,
        train_model=train_model,
    )


def first_batch_size(n: int, global_batch: int, replicas: int) -> int:
    """The training batch size for a split of `n` examples under `replicas` replicas.

    Under several replicas every batch must split evenly (the remainder is dropped), so a
    split smaller than one global batch gets the largest batch that does.
    """
    if replicas == 1 or n >= global_batch:
        return global_batch
    return max(replicas, n - n % replicas)
