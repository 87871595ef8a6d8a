"""How the head starts, before a run's first phase: Keras' random initialisation, or the linear
probe (`head.init`, resolved by `tltk.plan.head_init`) fitted on the cached features of the
initial backbone and loaded into the task model's scores layer.

A probe is fitted once per run: its weights go to RUN/weights/probe.weights.h5 and what it
chose to RUN/state.json (`probe`), so a resumed run loads them instead of fitting again (the
first phase's own backup, when there is one, then takes over as for any phase).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from tltk import tasks
from tltk.heads.trunk import SCORES_LAYER
from tltk.io import save_weights_atomic
from tltk.log import say
from tltk.probe import fit_probe

if TYPE_CHECKING:
    from tltk.fit_setup import Fit

PROBE_WEIGHTS = "probe.weights.h5"


def start_head(fit: Fit) -> None:
    """Before phase 0: nothing for a random head; else fit (or reload) the probe."""
    if fit.plan.init != "probe":
        return
    run, model = fit.run, fit.task_model.model
    path = run.dir / "weights" / PROBE_WEIGHTS
    if run.state.get("probe") and path.is_file():
        model.load_weights(str(path))
        say(f"Head start: the linear probe fitted before the restart ({path})")
        return
    started = time.perf_counter()
    recipe, data = fit.recipe, fit.data
    splits = ["train"] + (["val"] if len(data.splits.get("val", ())) else [])
    pairs = {s: (fit.features.features(s), tasks.targets(recipe, data, s)) for s in splits}
    spec = tasks.head(recipe)
    probe = fit_probe(
        spec.activation, pairs["train"], pairs.get("val"), class_weight=fit.class_weight
    )
    scores = model.get_layer(SCORES_LAYER)
    scores.kernel.assign(probe.kernel)
    scores.bias.assign(probe.bias)
    path.parent.mkdir(exist_ok=True)
    save_weights_atomic(model, path)
    val = {f"val_{k}": v for k, v in probe.val.items()}
    run.state["probe"] = {"strength": probe.strength, **val}
    run.save()
    chosen = " chosen on val" if val else ""
    scored = "".join(f", {k.replace('_', ' ')} {v:.4f}" for k, v in val.items())
    say(
        f"Linear probe on {len(pairs['train'][0]):,} cached training features: "
        f"{probe.strength}{chosen}{scored}; fitted in {time.perf_counter() - started:.1f} s, "
        "the head starts from it"
    )
