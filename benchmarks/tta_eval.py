"""Test-time augmentation on finished runs: each run's test split scored without and with
`evaluate.tta: flip` (the same weights, so the difference is the flip alone).

    .venv/bin/python benchmarks/tta_eval.py RUN_DIR [RUN_DIR ...]

Prints one markdown row per run: accuracy and macro-F1 both ways, and the CPU seconds of the
flipped pass.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tltk import tasks  # noqa: E402
from tltk.evaluate import compute_metrics  # noqa: E402


def scores(run_dir: Path) -> dict[str, dict]:
    recipe, task_model, class_names = tasks.load_run(run_dir)
    data = tasks.load_data(recipe, run_dir=run_dir)
    split = recipe.evaluate.split
    out = {}
    for tta in ("none", "flip"):
        cpu = time.process_time()
        flipped = recipe.model_copy(
            update={"evaluate": recipe.evaluate.model_copy(update={"tta": tta})}
        )
        y_true, y_score, _ = tasks.predict_split(flipped, task_model, data, split, 64)
        metrics = compute_metrics(y_true, y_score, data.class_names, task=recipe.head_type, top_k=1)
        out[tta] = {"accuracy": metrics["accuracy"], "f1_macro": metrics["f1_macro"],
                    "cpu_s": time.process_time() - cpu}  # fmt: skip
    return out


def main(argv: list[str]) -> None:
    print("| run | accuracy | with flip | macro-F1 | with flip | CPU-s (flip) |")
    print("|---|---|---|---|---|---|")
    for run in argv:
        s = scores(Path(run))
        n, f = s["none"], s["flip"]
        cells = [Path(run).parent.name, f"{n['accuracy']:.4f}", f"{f['accuracy']:.4f}"]
        cells += [f"{n['f1_macro']:.4f}", f"{f['f1_macro']:.4f}", f"{f['cpu_s']:.1f}"]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
