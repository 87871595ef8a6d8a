"""The recipe sections of continual learning: `continue_from` (start from a finished run, grow
its head, keep what it knew) and `replay` (a buffer of training examples kept with a run)."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, field_validator

from tltk.recipe.sections import StrictModel

Strategy = Literal["finetune", "rehearsal", "distill"]
STRATEGIES: tuple[str, ...] = ("finetune", "rehearsal", "distill")
"""In the order a strategy list is written back: finetune alone, or rehearsal and/or distill."""


class ReplayConfig(StrictModel):
    """A replay buffer kept with the run (RUN/replay/): examples of each class of its training
    split, with their bytes or texts, so that a later continue run can rehearse them when the
    original data is gone."""

    budget: int = Field(0, ge=0)
    """Examples kept in all, shared evenly by the classes (0: no buffer)."""
    selection: Literal["herding", "random"] = "herding"
    """herding: per class, the examples whose feature mean best approaches the class mean
    (iCaRL); random: a seeded uniform sample per class."""


class DistillConfig(StrictModel):
    """Learning without Forgetting: the old model's scores on each training batch are soft
    targets for the old classes' columns."""

    temperature: float = Field(2.0, gt=0.0)
    """Both score vectors are softened by this temperature before they are compared."""
    weight: float = Field(1.0, ge=0.0)
    """The distillation term's weight beside the classification loss (it is scaled by T^2)."""


class ContinueConfig(StrictModel):
    """Continue from a finished classification run: its model is the start, its classes come
    first (new classes grow the head), and its test split measures what was forgotten."""

    run: str
    """The finished run folder (`runs/NAME/latest` is resolved to the run it points at now)."""
    strategy: list[Strategy] = Field(default_factory=lambda: ["rehearsal", "distill"])
    """`finetune` (train on the new data alone: the naive baseline), or `rehearsal` (mix the
    old run's replay buffer into training) and/or `distill` (the old model's scores as soft
    targets). A string with `+` also works: `rehearsal+distill`."""
    distill: DistillConfig = Field(default_factory=DistillConfig)
    new_rows: Literal["probe", "random"] = "probe"
    """How the new classes' rows of the scores layer start: `probe`, a logistic regression on
    the training examples' features with the old rows held fixed; `random`, Keras' default
    initialisation."""

    @field_validator("run", mode="after")
    @classmethod
    def _resolve_link(cls, value: str) -> str:
        # `runs/NAME/latest` moves when this run finishes; the recipe keeps the run it meant.
        return os.path.realpath(value) if os.path.islink(value.rstrip("/")) else value

    @field_validator("strategy", mode="before")
    @classmethod
    def _split_plus(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split("+")]
        return value

    @field_validator("strategy", mode="after")
    @classmethod
    def _combination(cls, value: list[str]) -> list[str]:
        chosen = [s for s in STRATEGIES if s in value]
        if not chosen:
            raise ValueError("name a strategy: finetune, rehearsal, distill or rehearsal+distill")
        if "finetune" in chosen and len(chosen) > 1:
            raise ValueError(
                "finetune is the naive baseline (the new data alone, no protection of the old "
                "classes); it does not combine with rehearsal or distill"
            )
        return chosen
