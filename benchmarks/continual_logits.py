"""Where a continue run's old classes went: the logits of its model on its test split.

For each continue run folder given, twice (the grown head before any training,
RUN/weights/grown.weights.h5, and the trained model, RUN/model.weights.h5) it prints the test
accuracy on the old and the new classes over all columns, the old classes' accuracy with the
argmax over the old columns alone, the mean logit of the old and of the new columns on the old
test examples, and the new rows' biases beside the old ones'. Logits are the scores layer's
inputs times its kernel plus its bias (the pre-softmax scores).

    .venv/bin/python benchmarks/continual_logits.py runs/bench_continual/cl_digits/RUN ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def logits_of(run: Path, weights: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(logits [N, K] on the run's test split, its labels, the scores layer's bias)."""
    from tltk import tasks
    from tltk.continual.features import SCORES_LAYER, split_features
    from tltk.continual.past_run import PastRun

    recipe, task_model, classes = tasks.load_run(run)
    task_model.model.load_weights(str(weights))
    test = PastRun.open(run).split("test")
    features = split_features(recipe, task_model, test, len(classes), recipe.train.batch_size)
    kernel, bias = task_model.model.get_layer(SCORES_LAYER).get_weights()
    return features @ kernel + bias, test.labels, bias


def describe(logits: np.ndarray, labels: np.ndarray, bias: np.ndarray, k_old: int) -> dict:
    old = labels < k_old
    right = logits.argmax(1) == labels
    return {
        "old": float(right[old].mean()),
        "new": float(right[~old].mean()),
        "overall": float(right.mean()),
        "old_among_old": float((logits[old][:, :k_old].argmax(1) == labels[old]).mean()),
        "old_test_logit_old_columns": float(logits[old][:, :k_old].mean()),
        "old_test_logit_new_columns": float(logits[old][:, k_old:].mean()),
        "bias_old_mean": float(bias[:k_old].mean()),
        "bias_new": [round(float(b), 2) for b in bias[k_old:]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    out = {}
    for run in args.runs:
        block = json.loads((run / "metrics.json").read_text())["continual"]
        k_old = len(block["lineage"][-1]["classes"]) - len(block["lineage"][-1]["new_classes"])
        rows = {}
        for stage, weights in (
            ("grown", "weights/grown.weights.h5"),
            ("trained", "model.weights.h5"),
        ):
            rows[stage] = describe(*logits_of(run, run / weights), k_old)
            r = rows[stage]
            print(
                f"{run.name} {'+'.join(block['strategy'])} {stage:>7}: old {r['old']:.3f} "
                f"new {r['new']:.3f} overall {r['overall']:.3f} | old among old "
                f"{r['old_among_old']:.3f} | old test mean logit: old columns "
                f"{r['old_test_logit_old_columns']:.2f}, new {r['old_test_logit_new_columns']:.2f}"
                f" | biases: old mean {r['bias_old_mean']:.2f}, new {r['bias_new']}"
            )
        out[str(run)] = {"strategy": block["strategy"], **rows}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
