"""Recipe schema: one typed, strict description of a whole transfer-learning run.

A recipe is YAML validated against the pydantic models of `schema.py` (the `Recipe`),
`sections.py` (data, backbone, head, ...) and `training.py` (train). Unknown keys and wrong
types are errors that name the file, the key's dotted path, its line, and the closest valid
key (`loading.py`).
`--set a.b=c` overrides are applied to the raw mapping before validation, so they are checked
exactly like the file, and an error they cause names the override instead of a line.
"""

from tltk.errors import RecipeError
from tltk.overrides import apply_override
from tltk.recipe.continual import ContinueConfig, DistillConfig, ReplayConfig
from tltk.recipe.loading import load_recipe
from tltk.recipe.schema import Recipe
from tltk.recipe.sections import (
    AugmentConfig,
    AugmentLayer,
    BackboneConfig,
    CleanConfig,
    DataConfig,
    EvaluateConfig,
    ExportConfig,
    HeadConfig,
    PhaseConfig,
)
from tltk.recipe.training import CallbacksConfig, EarlyStoppingConfig, ReduceLRConfig, TrainConfig

__all__ = [
    "AugmentConfig",
    "AugmentLayer",
    "BackboneConfig",
    "CallbacksConfig",
    "CleanConfig",
    "ContinueConfig",
    "DataConfig",
    "DistillConfig",
    "EarlyStoppingConfig",
    "EvaluateConfig",
    "ExportConfig",
    "HeadConfig",
    "PhaseConfig",
    "Recipe",
    "RecipeError",
    "ReduceLRConfig",
    "ReplayConfig",
    "TrainConfig",
    "apply_override",
    "load_recipe",
]
