"""`RecipeTuner`: a KerasTuner tuner whose trial is a tltk run of the recipe with the trial's
values; the search algorithm is the Oracle's (tltk/tuning/space.py)."""

from __future__ import annotations

import os

import keras_tuner as kt
import tensorflow as tf

from tltk.runs import TrainingDiverged
from tltk.tuning.search import Search, train_trial


def tuner_role() -> str:
    """`alone`, or under KerasTuner's distributed mode (KERASTUNER_ORACLE_IP, _PORT and
    KERASTUNER_TUNER_ID set) `chief` (the oracle: hands trials out, runs none) or `worker`."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "alone"
    return "chief" if "chief" in os.environ.get("KERASTUNER_TUNER_ID", "") else "worker"


class BudgetSpent(Exception):
    """The search's max_time has passed: no new trial starts."""


class RecipeTuner(kt.engine.base_tuner.BaseTuner):
    """Runs `search.recipe` once per trial (`train_trial`), in the search folder.

    KerasTuner's project (oracle state, trial files) is `SEARCH/tuner/`, so a search started
    again with the same folder reloads it. A trial that diverges or runs out of memory is a
    failed trial (the search goes on); any other error stops the search and is raised as is:
    a trial failing silently would make the search look fine while it tried nothing.
    """

    def __init__(self, search: Search, oracle: kt.Oracle, on_trial_done=None):
        self.recipe_search = search
        self.on_trial_done = on_trial_done
        super().__init__(oracle, directory=str(search.dir), project_name="tuner")

    def pre_create_trial(self) -> None:
        if self.recipe_search.out_of_time():
            raise BudgetSpent()

    def run_trial(self, trial: kt.engine.trial.Trial, *args, **kwargs) -> dict:
        try:
            record = train_trial(self.recipe_search, trial.trial_id, trial.hyperparameters.values)
        except (TrainingDiverged, tf.errors.ResourceExhaustedError) as error:
            raise kt.errors.FailedTrialError(f"{type(error).__name__}: {error}") from error
        except Exception as error:
            raise kt.errors.FatalError(str(error)) from error
        return {self.oracle.objective.name: record["value"]}

    def on_trial_end(self, trial: kt.engine.trial.Trial) -> None:
        super().on_trial_end(trial)
        self.recipe_search.save()
        if self.on_trial_done is not None:
            self.on_trial_done()

    def save_model(self, trial_id, model, step=0) -> None:
        """Nothing to do: each trial's run folder holds its model."""

    def load_model(self, trial):
        raise NotImplementedError("load a trial's model with tltk.tasks.load_run(trial run)")
