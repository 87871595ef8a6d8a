"""`Recipe`: the whole run in one strict model; its sections are in tltk/recipe/sections.py."""

from __future__ import annotations

import warnings
from functools import cache
from typing import Any

import yaml
from pydantic import Field, field_validator, model_validator

from tltk.modalities import MODALITIES
from tltk.recipe.continual import ContinueConfig, ReplayConfig
from tltk.recipe.sections import (
    AugmentConfig,
    BackboneConfig,
    DataConfig,
    EvaluateConfig,
    ExportConfig,
    HeadConfig,
    PhaseConfig,
    StrictModel,
)
from tltk.recipe.training import TrainConfig
from tltk.recipe.tuning import TuneConfig

DEPRECATED_MODALITY_KEY = "task"
"""What `modality` was called before the head's task types arrived (`task: image|text`);
still read, with a warning, from recipes and run folders written then."""


class Recipe(StrictModel):
    name: str
    modality: str = "image"
    """What one example is: `image` or `text` (a name in `tltk.modalities.MODALITIES`)."""
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
    replay: ReplayConfig = Field(default_factory=ReplayConfig)
    continue_from: ContinueConfig | None = None
    """Start from a finished run (tltk/continual/): its model, its classes first."""
    tune: TuneConfig | None = None
    """A hyper-parameter search over this recipe's keys (`tltk tune`); `tltk train` ignores it."""

    @model_validator(mode="before")
    @classmethod
    def _deprecated_task_key(cls, raw: Any) -> Any:
        if not isinstance(raw, dict) or DEPRECATED_MODALITY_KEY not in raw:
            return raw
        raw = dict(raw)
        task = raw.pop(DEPRECATED_MODALITY_KEY)
        if "modality" in raw and raw["modality"] != task:
            raise ValueError(
                f"`task: {task}` (the old name of `modality`) disagrees with "
                f"`modality: {raw['modality']}`; remove `task`"
            )
        raw["modality"] = task
        _warn_task_key()
        return raw

    @field_validator("modality")
    @classmethod
    def _registered_modality(cls, value: str) -> str:
        if value not in MODALITIES:
            raise ValueError(f"unknown modality; expected one of {', '.join(MODALITIES)}")
        return value

    @model_validator(mode="after")
    def _labels_fit_the_head(self) -> Recipe:
        if self.data.multi_label and self.head.type == "regression":
            raise ValueError(
                "data.multi_label: a regression head takes one number per example; use "
                "head.type: multilabel for several labels per example"
            )
        return self

    @model_validator(mode="after")
    def _tta_fits(self) -> Recipe:
        if self.evaluate.tta != "none" and self.modality != "image":
            raise ValueError(
                f"evaluate.tta: {self.evaluate.tta} mirrors images; a {self.modality} recipe "
                "has none (use evaluate.tta: none)"
            )
        return self

    @model_validator(mode="after")
    def _continual_fits(self) -> Recipe:
        cont = self.continue_from
        if cont is None:
            return self
        if self.head_type != "classification":
            raise ValueError(
                "continue_from: continuing a run with new classes is for classification heads "
                f"(this recipe's head is {self.head_type})"
            )
        if "rehearsal" in cont.strategy and not self.replay.budget:
            raise ValueError(
                "continue_from.strategy: rehearsal replays a buffer of old examples; give it a "
                "size with replay.budget (examples in all, e.g. 500)"
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
        exclude = {"tune"} if self.tune is None else set()
        return yaml.safe_dump(self.model_dump(mode="json", exclude=exclude), sort_keys=False)

    def without_tune(self) -> dict:
        """The recipe as a plain mapping, without its `tune` section."""
        return self.model_dump(mode="json", exclude={"tune"})


@cache  # once per process: a run folder's recipe is read again at every resume
def _warn_task_key() -> None:
    warnings.warn(
        "recipe key `task: image|text` is now `modality: image|text`; `task` is still read "
        "but will be removed: rename it in your recipe",
        FutureWarning,
        stacklevel=2,
    )
