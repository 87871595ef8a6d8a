"""The `tune:` section: a search space over recipe keys, its objective, tuner and budget.

```yaml
tune:
  space:
    phases.1.learning_rate: {log: [1.0e-5, 1.0e-3]}   # log-uniform float
    head.dropout: {range: [0.0, 0.5]}                  # uniform float (int if both ends are)
    head.hidden_units: {range: [0, 256], step: 64}     # int with a step
    phases.1.train: [top:1, top:2, all]                # a choice list
  objective: val_accuracy                              # or {name: val_loss, direction: min}
  tuner: random                                        # random | bayesian | hyperband
  max_trials: 10
  max_time: 20m                                        # seconds, or 30s / 20m / 2h
```

A key is any dotted path `--set` takes. Every value the space can give (each choice, both ends
of a range) is set into the recipe and validated like the file itself (`check_space`), so a
misspelled path or a value out of a key's bounds is an error before any trial runs.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tltk.recipe.sections import StrictModel

Scalar = bool | int | float | str | None


class Dimension(StrictModel):
    """One searched key: exactly one of `choice`, `range` (uniform) or `log` (log-uniform)."""

    choice: list[Scalar] | None = None
    range: tuple[int, int] | tuple[float, float] | None = None
    log: tuple[int, int] | tuple[float, float] | None = None
    step: int | float | None = Field(None, gt=0)
    """A range's step (an int range steps by 1 unless given)."""

    @model_validator(mode="before")
    @classmethod
    def _list_is_a_choice(cls, raw: Any) -> Any:
        return {"choice": raw} if isinstance(raw, list) else raw

    @model_validator(mode="after")
    def _one_kind(self) -> Dimension:
        given = [k for k in ("choice", "range", "log") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of `choice: [a, b, ...]` (or a plain list), "
                f"`range: [low, high]`, `log: [low, high]`; got {given or 'none'}"
            )
        if self.choice is not None and not self.choice:
            raise ValueError("an empty choice list; give at least one value")
        if self.choice is not None and len(set(map(repr, self.choice))) != len(self.choice):
            raise ValueError(f"repeated values in the choice list {self.choice}")
        bounds = self.range or self.log
        if bounds is not None and not bounds[0] < bounds[1]:
            raise ValueError(f"a range needs low < high; got {list(bounds)}")
        if self.log is not None and self.log[0] <= 0:
            raise ValueError(f"a log range needs low > 0; got {list(self.log)}")
        if self.step is not None and self.choice is not None:
            raise ValueError("`step` belongs to a range, not a choice list")
        return self

    @property
    def is_int(self) -> bool:
        """A range written with integers (`[0, 256]`, not `[0.0, 256.0]`) searches integers."""
        bounds = self.range or self.log
        ends = [*(bounds or ()), *([self.step] if self.step is not None else [])]
        return bool(bounds) and all(isinstance(v, int) for v in ends)

    def edge_values(self) -> list[Any]:
        """Every value worth validating: each choice, or both ends of a range."""
        if self.choice is not None:
            return list(self.choice)
        low, high = self.range or self.log
        return [int(low), int(high)] if self.is_int else [float(low), float(high)]


class ObjectiveConfig(StrictModel):
    name: str = "val_loss"
    """A validation metric of the run's history (val_loss, val_accuracy, val_auc, ...)."""
    direction: Literal["min", "max"] | None = None
    """Default: min for a loss or an error, max for anything else."""

    @model_validator(mode="before")
    @classmethod
    def _plain_name(cls, raw: Any) -> Any:
        return {"name": raw} if isinstance(raw, str) else raw

    @property
    def resolved_direction(self) -> str:
        if self.direction:
            return self.direction
        lowered = self.name.lower()
        return "min" if "loss" in lowered or "error" in lowered else "max"


class TuneConfig(StrictModel):
    space: dict[str, Dimension]
    """Dotted recipe key -> its search dimension."""
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    tuner: Literal["random", "bayesian", "hyperband"] = "random"
    max_trials: int | None = Field(10, ge=1)
    """Stop after this many trials (null: only `max_time` stops the search)."""
    max_time: float | None = None
    """Wall-clock budget in seconds, or text: `90s`, `20m`, `1.5h`. A trial that started
    within it finishes; no new one starts after it."""
    executions_per_trial: int = Field(1, ge=1)
    """Train each trial's recipe this many times (seeds seed, seed+1, ...); the objective is
    their mean."""
    hyperband_factor: int = Field(3, ge=2)
    seed: int | None = None
    """The tuner's own seed; default: the recipe's."""

    @field_validator("space")
    @classmethod
    def _not_empty(cls, value: dict) -> dict:
        if not value:
            raise ValueError("an empty search space; map at least one recipe key to its values")
        return value

    @field_validator("max_time", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _budget(self) -> TuneConfig:
        if self.max_trials is None and self.max_time is None:
            raise ValueError("no budget: give max_trials, max_time, or both")
        if self.max_time is not None and self.max_time <= 0:
            raise ValueError(f"max_time must be positive; got {self.max_time}")
        return self


_UNITS = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """`90`, `90s`, `20m`, `1.5h` -> seconds."""
    found = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|m|min|h)?\s*", text)
    if not found:
        raise ValueError(f"{text!r} is not a duration; write e.g. 600, 90s, 20m or 1.5h")
    return float(found.group(1)) * _UNITS[found.group(2) or ""]


def check_space(
    raw: dict, tune: TuneConfig, validate: Any, where_file: str, lines: dict[str, int]
) -> None:
    """Set each value the space can give into a copy of the recipe mapping `raw` (without its
    `tune` section) and `validate` it; raise RecipeError naming `tune.space.KEY` on the first
    value the recipe refuses."""
    from tltk.errors import RecipeError
    from tltk.overrides import set_key

    for key, dimension in tune.space.items():
        where = f"{where_file}: tune.space.{key}"
        line = lines.get(f"tune.space.{key}")
        at = f" (line {line})" if line else ""
        for value in dimension.edge_values():
            trial = copy.deepcopy(raw)
            set_key(trial, key, value, f"{where}{at}")
            try:
                validate(trial)
            except RecipeError as error:
                problems = str(error).split("\n", 1)[-1]
                raise RecipeError(
                    f"{where}{at}: the recipe with {key}={value!r} is invalid:\n{problems}"
                ) from None
