"""What the trainer asks of continual learning at the end of a run: keep a replay buffer
(`replay.budget`, any run), and for a continue run the forgetting numbers (metrics.json's
`continual`), their terminal lines and the lineage plot (RUN/forgetting.png)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tltk.continual.past_run import PastRun
from tltk.continual.rehearsal import keep_buffer
from tltk.data.types import LabelledData
from tltk.log import say
from tltk.recipe import Recipe
from tltk.runs import Run

__all__ = ["forgetting", "keep_buffer", "report_forgetting"]

PLOT = "forgetting.png"


def forgetting(
    recipe: Recipe, data: LabelledData, run: Run
) -> Callable[[np.ndarray, np.ndarray], dict] | None:
    """For a continue run evaluated on its test split: `extra` for `tasks.evaluate`, which adds
    the `continual` block from the evaluation's own predictions."""
    if recipe.continue_from is None or recipe.evaluate.split != "test":
        return None
    from tltk.continual.measure import continual_metrics

    lineage = PastRun.open(recipe.continue_from.run).lineage()

    def extra(y_true: np.ndarray, y_score: np.ndarray) -> dict:
        block = continual_metrics(
            y_true,
            y_score,
            report=data.report["continual"],
            before=run.state["continual_before"],
            lineage=lineage,
            run_dir=run.dir,
            strategy=recipe.continue_from.strategy,
        )
        return {"continual": block}

    return extra


def report_forgetting(recipe: Recipe, metrics: dict, run: Run) -> None:
    """Print the `continual` block and draw the lineage (when there is one)."""
    block = metrics.get("continual")
    if block is None:
        return
    from tltk.continual.measure import plot_lineage, summary_lines

    say("\n".join(summary_lines(block)))
    if recipe.evaluate.plots:
        plot_lineage(block["lineage"], run.dir / PLOT)
