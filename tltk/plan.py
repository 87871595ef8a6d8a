"""Phase plans that fit the data: how long each phase is, the default plan of a recipe without
`phases`, how the head starts (`head.init`), and warnings for phases too short to learn.

The default plan (printed at the start of a run) follows the practice of fastai's
`fine_tune`, LP-FT (Kumar et al. 2022) and BiT's hyper-rule (Kolesnikov et al. 2020: a
schedule length from the data set's size):

    pretrained backbone  the head from a linear probe (else a head phase of ~HEAD_STEPS on
                         cached features), then every group fine-tuned for
                         clamp(ceil(FINETUNE_STEPS / steps an epoch), *FINETUNE_EPOCHS)
                         epochs, cosine with warm-up, layer-wise decayed learning rates by
                         backbone kind (`FINETUNE`), BatchNorm in inference mode
    weights: none        one from-scratch phase: every group and BatchNorm train, for
                         clamp(ceil(SCRATCH_STEPS / steps an epoch), *SCRATCH_EPOCHS) epochs
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from tltk.recipe import AugmentConfig, PhaseConfig, Recipe

PROBE_MAX_EXAMPLES = 200_000
"""`head.init: auto` probes up to this many training examples (beyond, the probe's fits cost
more than a head phase on cached features)."""
MIN_HEAD_STEPS = 50
"""Fewer optimizer steps than this for a randomly initialised head is a warning."""
HEAD_STEPS = 300
FINETUNE_STEPS, FINETUNE_EPOCHS = 500, (3, 30)
SCRATCH_STEPS, SCRATCH_EPOCHS = 1500, (10, 60)
FINETUNE = {
    # modality: (optimizer, learning rate, layer-wise decay, weight decay)
    "image": ("adam", 1e-3, 0.7, None),  # convnets: the main job's fine-tune
    "text": ("adamw", 1e-4, 0.8, 0.01),  # transformers: BERT/ELECTRA-style fine-tuning
}
AFTER_PROBE = {"image": 0.3, "text": 1.0}
"""The fine-tune's rate after a fitted head start (a probe, or a continue run's grown head), as
a fraction of FINETUNE's: LP-FT fine-tunes a probed head gently, as the full rate first throws
the probe away (measured on few-shot Fashion-MNIST: the probe's val accuracy 0.80 fell to 0.70
in the first epoch at Adam 1e-3; a continue step at 1e-3 without warm-up diverged, training
loss in the hundreds within 40 steps: BENCHMARKS.md, continual learning)."""
WARMUP_FRACTION = 0.1
"""The default fine-tune's warm-up, a fraction of its steps (at least one step)."""
AUTO_AUGMENT = "shift"
"""`augment.policy: auto` for the default plan's image fine-tune: small rotations and shifts,
no flips (measured on few-shot digits and Fashion-MNIST, BENCHMARKS.md)."""


FITTED_STARTS = ("probe", "grown")
"""Head starts that are fitted already, so a run needs no head phase for them: the linear probe,
and a continue run's grown head (the past run's scores, new rows from a probe:
tltk/continual/growth.py)."""


class PlanWarning(UserWarning):
    """A phase plan that will probably not learn what it should."""


@dataclass(frozen=True)
class PhaseLength:
    """A phase's length in epochs of `steps_per_epoch` optimizer steps."""

    epochs: int
    steps_per_epoch: int

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch


@dataclass
class Plan:
    """What a run trains: its phases, and how the head starts."""

    phases: list[PhaseConfig]
    init: str
    """"probe", "random" (`head.init` resolved) or "grown" (a continue run)."""
    why: str
    """Why that head start."""
    description: str | None
    """The default plan's line ("Plan: ..."); None for a recipe's own phases."""


def plan_run(recipe: Recipe, num_train: int, steps_per_epoch: int) -> Plan:
    """The recipe's phases (or the default plan) and head start, for `num_train` training
    examples in epochs of `steps_per_epoch` optimizer steps."""
    init, why = head_init(recipe, num_train, steps_per_epoch)
    if recipe.phases:
        return Plan(list(recipe.phases), init, why, None)
    phases, description = default_plan(recipe, num_train, steps_per_epoch, init)
    return Plan(phases, init, why, description)


def phase_length(phase: PhaseConfig, steps_per_epoch: int) -> PhaseLength:
    """`epochs` of the run's epoch length, or `steps` spread over ceil(steps / epoch length)
    equal epochs (at most one pass each; the last may add a step or two: 500 steps at 37 an
    epoch are 14 epochs of 36)."""
    if phase.steps is None:
        return PhaseLength(phase.epochs, steps_per_epoch)
    epochs = math.ceil(phase.steps / steps_per_epoch)
    return PhaseLength(epochs, math.ceil(phase.steps / epochs))


def starts_pretrained(recipe: Recipe) -> bool:
    """Whether the backbone starts from learned weights: `weights` is not none, and it is not
    a registered text backbone (`text_rnn` always starts from random weights)."""
    from tltk.backbones.base import TextBackboneSpec, lookup

    cfg = recipe.backbone
    return cfg.weights is not None and not isinstance(lookup(cfg.name), TextBackboneSpec)


def head_init(
    recipe: Recipe, num_train: int, steps_per_epoch: int | None = None
) -> tuple[str, str]:
    """("probe" | "random" | "grown", why) for `head.init`; ValueError when `probe` cannot
    apply. A continue run's head is the past run's, grown by the new classes: `head.init` does
    not apply (a probe on the new data would refit the old classes' scores too).

    `auto` keeps a recipe's own head start: a first phase that trains the head alone for at
    least MIN_HEAD_STEPS optimizer steps (of `steps_per_epoch` an epoch) starts it at random,
    as the recipe was written for (measured on the main job's recipes: the probe before their
    head phases cost 0.6 and 1.7 points of test accuracy)."""
    from tltk.heads import get_head
    from tltk.probe import ACTIVATIONS

    if recipe.continue_from is not None:
        return "grown", "a continue run: the past run's head, grown by the new classes"
    asked = recipe.head.init
    reasons = []
    if recipe.head.hidden_units:
        reasons.append(
            f"head.hidden_units: {recipe.head.hidden_units} puts a hidden layer between the "
            "features and the scores, which a linear probe cannot fit"
        )
    if get_head(recipe.head_type).activation not in ACTIVATIONS:
        reasons.append(f"there is no linear probe for the {recipe.head_type} head")
    if asked == "probe" and reasons:
        raise ValueError(f"head.init: probe: {reasons[0]}; use head.init: random (or auto)")
    if asked != "auto":
        return asked, "head.init"
    if not starts_pretrained(recipe):
        reasons.append("the backbone starts from random weights")
    if num_train > PROBE_MAX_EXAMPLES:
        reasons.append(f"more than {PROBE_MAX_EXAMPLES:,} training examples")
    first = recipe.phases[0] if recipe.phases else None
    if first is not None and first.train == "head" and steps_per_epoch:
        steps = phase_length(first, steps_per_epoch).steps
        if steps >= MIN_HEAD_STEPS:
            reasons.append(f"phases[0] trains the head for {steps} steps")
    if reasons:
        return "random", reasons[0]
    return "probe", "a pretrained backbone and a linear head"


def default_plan(
    recipe: Recipe, num_train: int, steps_per_epoch: int, init: str
) -> tuple[list[PhaseConfig], str]:
    """The phases of a recipe without `phases`, and the line that says what was chosen."""
    epoch = f"{num_train:,} training examples, batch {recipe.train.batch_size} -> "
    epoch += f"{steps_per_epoch} steps/epoch"
    if not starts_pretrained(recipe):
        epochs = _epochs(SCRATCH_STEPS, steps_per_epoch, SCRATCH_EPOCHS)
        phase = PhaseConfig(
            name="scratch", train="all", epochs=epochs, learning_rate=2e-3, schedule="cosine",
            warmup_epochs=min(1.0, 0.05 * epochs), batchnorm="train",
        )  # fmt: skip
        return [phase], f"Plan: {epoch}; from scratch: {_describe(phase, steps_per_epoch)}"
    phases, start = [], init
    if init not in FITTED_STARTS:
        epochs = _epochs(HEAD_STEPS, steps_per_epoch, (1, 50))
        phases.append(PhaseConfig(name="head", train="head", epochs=epochs, learning_rate=1e-3))
        start = f"head {_describe(phases[0], steps_per_epoch)}"
    optimizer, lr, decay, weight_decay = FINETUNE[recipe.modality]
    if init in FITTED_STARTS:  # a grown head is fitted as a probe is: fine-tune it as gently
        lr *= AFTER_PROBE[recipe.modality]
    epochs = _epochs(FINETUNE_STEPS, steps_per_epoch, FINETUNE_EPOCHS)
    finetune = PhaseConfig(
        name="finetune", train="all", epochs=epochs, optimizer=optimizer,
        learning_rate=float(f"{lr:.3g}"), schedule="cosine",
        warmup_epochs=max(round(WARMUP_FRACTION * epochs, 2), round(1 / steps_per_epoch, 2)),
        layerwise_decay=decay, weight_decay=weight_decay,
    )  # fmt: skip
    phases.append(finetune)
    text = f"Plan: {epoch}; {start}, then {_describe(finetune, steps_per_epoch)}"
    if recipe.augment.policy == "auto" and augment_config(recipe).policy != "none":
        text += f"; augment: {AUTO_AUGMENT} (small rotations and shifts, no flips)"
    return phases, text


def augment_config(recipe: Recipe) -> AugmentConfig:
    """The recipe's `augment` with `policy: auto` resolved: AUTO_AUGMENT for the default plan
    of a pretrained image backbone when the section asks nothing else (no layers, MixUp or
    CutMix), else none. A recipe's own `phases` keep the augmentation they were written with."""
    cfg = recipe.augment
    if cfg.policy != "auto":
        return cfg
    chosen = (
        AUTO_AUGMENT
        if recipe.modality == "image"
        and not recipe.phases
        and starts_pretrained(recipe)
        and not (cfg.layers or cfg.mixup > 0 or cfg.cutmix > 0)
        else "none"
    )
    return cfg.model_copy(update={"policy": chosen})


def _epochs(steps: int, steps_per_epoch: int, bounds: tuple[int, int]) -> int:
    low, high = bounds
    return max(low, min(high, math.ceil(steps / steps_per_epoch)))


def _describe(phase: PhaseConfig, steps_per_epoch: int) -> str:
    length = phase_length(phase, steps_per_epoch)
    groups = "all groups" if phase.train == "all" else f"train {phase.train}"
    text = f"{groups} for {length.epochs} epochs = {length.steps:,} steps, "
    text += f"{phase.optimizer} lr {phase.learning_rate:g} {phase.schedule}"
    if phase.warmup_epochs:
        text += f" (warm-up {phase.warmup_epochs:g} epochs)"
    if phase.layerwise_decay is not None:
        text += f", layer-wise decay {phase.layerwise_decay:g}"
    if phase.weight_decay is not None:
        text += f", weight decay {phase.weight_decay:g}"
    return text + f", BatchNorm {phase.batchnorm}"


def warn_short_phases(
    phases: list[PhaseConfig],
    steps_per_epoch: int,
    *,
    init: str,
    pretrained: bool,
    num_train: int,
    batch: int,
) -> list[str]:
    """Warn (PlanWarning) about a first phase too short for a randomly initialised head, and
    about fine-tuning a pretrained backbone under one; returns the messages."""
    if init in FITTED_STARTS or not phases:
        return []
    first, messages = phases[0], []
    length = phase_length(first, steps_per_epoch)
    name = f"phases[0] '{first.name or 'phase0'}'"
    if length.steps < MIN_HEAD_STEPS:
        messages.append(
            f"{name} trains a randomly initialised head for {length.steps} optimizer steps "
            f"({num_train:,} examples / batch {batch} = {steps_per_epoch} steps an epoch x "
            f"{length.epochs} epochs); it needs about {MIN_HEAD_STEPS} or more to learn. Give "
            f"the phase `steps: {HEAD_STEPS}` (or more epochs), a smaller train.batch_size, or "
            "start the head from a linear probe (head.init: probe)"
        )
    if pretrained and first.train != "head":
        messages.append(
            f"{name} trains backbone groups ({first.train}) under a randomly initialised head: "
            "its first gradients distort the pretrained features. Start with a head phase "
            "(train: head) or head.init: probe"
        )
    for message in messages:
        warnings.warn(message, PlanWarning, stacklevel=2)
    return messages
