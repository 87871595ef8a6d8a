"""Phase plans: lengths in epochs or steps, the default plan's step counts, the head start,
and the warnings for phases too short to learn."""

from __future__ import annotations

import warnings

import pytest

from tltk import plan as pl
from tltk.recipe import PhaseConfig, RecipeError, load_recipe


def _recipe(**sections):
    return load_recipe({"name": "t", **sections})


def test_a_phase_is_given_in_epochs_or_steps():
    assert pl.phase_length(PhaseConfig(epochs=4), 37) == pl.PhaseLength(4, 37)
    assert PhaseConfig().epochs == 1 and PhaseConfig().steps is None
    # 500 steps at 37 an epoch: 14 equal epochs of 36 (504 steps), never more than a pass.
    assert pl.phase_length(PhaseConfig(steps=500), 37) == pl.PhaseLength(14, 36)
    assert pl.phase_length(PhaseConfig(steps=10), 37) == pl.PhaseLength(1, 10)
    assert pl.phase_length(PhaseConfig(steps=74), 37).steps == 74
    with pytest.raises(RecipeError, match=r"phases\.0: .*`epochs` or `steps`, not both.*=null"):
        _recipe(phases=[{"epochs": 3, "steps": 100}])
    # The resolved recipe (as a run folder keeps it) loads back the same.
    recipe = _recipe(phases=[{"steps": 300}, {"epochs": 2}])
    again = load_recipe(recipe.model_dump(mode="json"))
    assert [(p.epochs, p.steps) for p in again.phases] == [(None, 300), (2, None)]


def test_a_steps_phase_schedules_over_its_own_steps():
    from tltk.phases import make_optimizer

    phase = PhaseConfig(steps=100, schedule="cosine", warmup_epochs=1.0, learning_rate=1e-3)
    optimizer = make_optimizer(phase, steps_per_epoch=37)  # 3 epochs of 34 = 102 steps

    def lr_at(step: int) -> float:
        optimizer.iterations.assign(step)
        return float(optimizer.learning_rate)

    assert lr_at(17) == pytest.approx(0.5e-3, rel=1e-3)  # warm-up: one epoch of 34 steps
    assert lr_at(34) == pytest.approx(1e-3, rel=1e-3)
    assert lr_at(102) == pytest.approx(1e-5, rel=0.05)  # decayed to alpha * lr at its end


@pytest.mark.parametrize(
    ("n", "modality", "epochs"),
    [
        (1168, "image", 14),  # 37 steps an epoch: 14 epochs = 518 steps
        (200, "image", 30),  # 7 steps an epoch: capped at 30 epochs = 210 steps
        (7900, "text", 3),  # 247 steps an epoch: 3 epochs (the floor) = 741 steps
        (1_000_000, "image", 3),  # 31,250 steps an epoch: the floor of 3 epochs
    ],
)
def test_the_default_plan_sizes_fine_tuning_from_the_data(n, modality, epochs):
    backbone = {"name": "models/x", "sequence_length": 32} if modality == "text" else {}
    recipe = _recipe(modality=modality, backbone=backbone)
    steps = -(-n // 32)
    plan = pl.plan_run(recipe, n, steps)
    assert plan.init == ("probe" if n <= pl.PROBE_MAX_EXAMPLES else "random")
    finetune = plan.phases[-1]
    assert finetune.train == "all" and finetune.epochs == epochs
    assert finetune.schedule == "cosine" and finetune.batchnorm == "frozen"
    optimizer, lr, decay, weight_decay = pl.FINETUNE[modality]
    if plan.init == "probe":  # a gentler fine-tune of a probed head
        lr *= pl.AFTER_PROBE[modality]
    assert finetune.optimizer == optimizer
    assert finetune.learning_rate == pytest.approx(lr)
    # Warm-up: a tenth of the phase's steps.
    assert finetune.warmup_epochs == pytest.approx(0.1 * epochs, abs=0.01)
    assert (finetune.layerwise_decay, finetune.weight_decay) == (decay, weight_decay)
    assert f"{n:,} training examples, batch 32 -> {steps} steps/epoch" in plan.description
    assert f"all groups for {epochs} epochs = {epochs * steps:,} steps" in plan.description
    if plan.init == "probe":
        assert len(plan.phases) == 1 and "; probe, then all groups" in plan.description
    else:  # no probe on a million examples: a head phase on cached features first
        head = plan.phases[0]
        assert head.train == "head" and head.epochs == 1  # one pass is >= HEAD_STEPS steps


def test_a_random_head_gets_a_head_phase_of_enough_steps():
    recipe = _recipe(head={"init": "random"})
    plan = pl.plan_run(recipe, 200, 7)
    assert [p.train for p in plan.phases] == ["head", "all"]
    assert pl.phase_length(plan.phases[0], 7).steps >= pl.HEAD_STEPS  # 43 epochs of 7
    assert plan.description.startswith("Plan: 200 training examples") and "head train head" in (
        plan.description
    )


def test_weights_none_gets_a_from_scratch_plan():
    recipe = _recipe(backbone={"weights": "none"})
    plan = pl.plan_run(recipe, 1168, 37)
    assert plan.init == "random" and plan.why == "the backbone starts from random weights"
    (phase,) = plan.phases
    assert phase.train == "all" and phase.batchnorm == "train"
    assert phase.epochs == 41  # ceil(1500 / 37) = 41 epochs = 1,517 steps
    assert "from scratch: all groups for 41 epochs = 1,517 steps" in plan.description
    assert pl.plan_run(recipe, 100_000, 3125).phases[0].epochs == 10  # the floor
    text_rnn = _recipe(modality="text", backbone={"name": "text_rnn"})
    assert not pl.starts_pretrained(text_rnn)  # always random, whatever `weights` says


def test_augment_auto_shifts_the_default_plans_image_fine_tune_only():
    recipe = _recipe()  # a pretrained image backbone, no phases
    assert recipe.augment.policy == "auto" and pl.augment_config(recipe).policy == "shift"
    plan = pl.plan_run(recipe, 100, 4)
    assert plan.description.endswith("; augment: shift (small rotations and shifts, no flips)")
    own_phases = _recipe(phases=[{"train": "all", "epochs": 3}])
    layers = _recipe(augment={"layers": [{"name": "RandomZoom", "args": {"height_factor": 0.1}}]})
    asked = _recipe(augment={"policy": "none"})
    scratch = _recipe(backbone={"weights": "none"})
    text = _recipe(modality="text", backbone={"name": "models/x", "sequence_length": 32})
    for other in (own_phases, layers, asked, scratch, text):
        assert pl.augment_config(other).policy == "none"
    assert "augment" not in pl.plan_run(asked, 100, 4).description
    assert pl.augment_config(_recipe(augment={"policy": "light"})).policy == "light"


def test_head_init_auto_probe_and_random():
    assert pl.head_init(_recipe(), 100) == ("probe", "a pretrained backbone and a linear head")
    init, why = pl.head_init(_recipe(head={"hidden_units": 16}), 100)
    assert init == "random" and "hidden layer" in why
    with pytest.raises(ValueError, match="head.init: probe: head.hidden_units: 16.*random"):
        pl.head_init(_recipe(head={"hidden_units": 16, "init": "probe"}), 100)
    big = pl.PROBE_MAX_EXAMPLES + 1
    assert pl.head_init(_recipe(), big) == ("random", "more than 200,000 training examples")
    assert pl.head_init(_recipe(head={"init": "probe"}), big) == ("probe", "head.init")
    assert pl.head_init(_recipe(head={"init": "random"}), 10) == ("random", "head.init")


def test_head_init_auto_keeps_a_recipes_own_head_phase_when_it_is_long_enough():
    recipe = _recipe(phases=[{"train": "head", "epochs": 6}, {"train": "all", "epochs": 10}])
    # digits_transfer.yaml on its 1,168 digits: 37 steps an epoch, 222 head steps.
    assert pl.plan_run(recipe, 1168, 37).init == "random"
    assert pl.head_init(recipe, 1168, 37) == ("random", "phases[0] trains the head for 222 steps")
    # The same recipe on 200 images: 42 head steps, too few to learn: the probe starts it.
    assert pl.plan_run(recipe, 200, 7).init == "probe"
    backbone_first = _recipe(phases=[{"train": "all", "epochs": 10}])
    assert pl.plan_run(backbone_first, 1168, 37).init == "probe"
    explicit = _recipe(head={"init": "probe"}, phases=[{"train": "head", "epochs": 6}])
    assert pl.plan_run(explicit, 1168, 37).init == "probe"


def test_a_continue_run_starts_from_its_grown_head_never_a_probe():
    # A probe over all the scores on the new data alone would refit the old classes' columns:
    # the grown head (the past run's, new rows added) is the start whatever head.init says.
    for init in ("auto", "probe", "random"):
        recipe = _recipe(
            head={"init": init}, continue_from={"run": "runs/x", "strategy": "distill"}
        )
        start, why = pl.head_init(recipe, 100)
        assert start == "grown" and "continue run" in why
    plan = pl.plan_run(_recipe(continue_from={"run": "runs/x", "strategy": "distill"}), 500, 16)
    assert plan.init == "grown" and [p.name for p in plan.phases] == ["finetune"]
    # Fine-tuned from a fitted head, as after a probe: the gentler rate, with a warm-up.
    assert plan.phases[0].learning_rate == pytest.approx(pl.FINETUNE["image"][1] * 0.3)
    assert plan.phases[0].warmup_epochs > 0
    kw = dict(init="grown", pretrained=True, num_train=170, batch=32)
    assert pl.warn_short_phases([PhaseConfig(train="all", epochs=1)], 6, **kw) == []


def test_short_first_phase_under_a_random_head_warns_with_the_fix():
    phases = [PhaseConfig(name="head", epochs=6), PhaseConfig(train="all", epochs=10)]
    kw = dict(init="random", pretrained=True, num_train=170, batch=32)
    with pytest.warns(pl.PlanWarning) as caught:
        messages = pl.warn_short_phases(phases, 6, **kw)
    assert len(messages) == len(caught) == 1
    assert messages[0].startswith(
        "phases[0] 'head' trains a randomly initialised head for 36 optimizer steps (170 "
        "examples / batch 32 = 6 steps an epoch x 6 epochs)"
    )
    assert "`steps: 300`" in messages[0] and "head.init: probe" in messages[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at all:
        assert pl.warn_short_phases(phases, 6, **{**kw, "init": "probe"}) == []
        assert pl.warn_short_phases([PhaseConfig(steps=300)] + phases, 6, **kw) == []
    with pytest.warns(pl.PlanWarning, match="trains backbone groups \\(all\\) under a randomly"):
        pl.warn_short_phases([PhaseConfig(train="all", epochs=50)], 6, **kw)
