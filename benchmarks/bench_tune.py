"""What a search costs: N trials with the shared head vs N whole runs, and memory per trial.

    nice -n 5 .venv/bin/python benchmarks/bench_tune.py --trials 6 --out /tmp/bench_tune

Two searches of the same tiny recipe (resnet8 at 16 px, weights none, 2 classes x 40 images,
1 head epoch + 1 fine-tuning epoch): one over `phases.1.learning_rate` only (the head is trained
once and shared), one that also searches `head.label_smoothing` over values that all mean the
same (0 and 1e-9: every trial trains its head, the same work as N whole runs). Prints the CPU
seconds (user+sys) and wall seconds of each search and the resident memory after every trial.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def recipe(out: Path, trials: int, shared: bool) -> dict:
    from helpers import tiny_recipe

    raw = tiny_recipe(out, out / "images", name="shared" if shared else "whole")
    raw["backbone"].update(name="resnet8", image_size=16)
    raw["evaluate"] = {"plots": False}
    raw["export"] = {"enabled": False}
    raw["train"]["callbacks"].update(checkpoint=False, backup=False)
    space = {"phases.1.learning_rate": {"log": [1.0e-4, 1.0e-2]}}
    if not shared:
        space["head.label_smoothing"] = {"choice": [0.0, 1.0e-9]}
    raw["tune"] = {"space": space, "max_trials": trials, "objective": "val_accuracy"}
    return raw


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_tune"))
    parser.add_argument(
        "--modes", default="shared,whole", help="which searches: shared, whole or both"
    )
    args = parser.parse_args()
    from helpers import make_image_folder

    import tltk
    from tltk.tuning import tuner

    make_image_folder(args.out / "images", {"a": 40, "b": 40})
    rss: list[float] = []
    real_end = tuner.RecipeTuner.on_trial_end

    def on_trial_end(self, trial):
        real_end(self, trial)
        rss.append(rss_mb())

    tuner.RecipeTuner.on_trial_end = on_trial_end
    modes = args.modes.split(",")
    for shared in [m == "shared" for m in ("shared", "whole") if m in modes]:
        rss.clear()
        cpu0, wall0 = cpu_s(), time.perf_counter()
        result = tltk.tune(recipe(args.out, args.trials, shared))
        cpu, wall = cpu_s() - cpu0, time.perf_counter() - wall0
        mode = "shared head" if shared else "whole runs "
        print(f"{mode}: {args.trials} trials, {cpu:.1f} CPU-s, {wall:.1f} s wall, "
              f"best {result.best_value:.3f}")  # fmt: skip
        print(f"  RSS after each trial (MB): {' '.join(f'{v:.0f}' for v in rss)}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"  peak RSS of the process so far: {peak:.0f} MB")
        if len(rss) > 2:
            growth = (rss[-1] - rss[1]) / rss[1] * 100
            print(f"  growth from trial 2 to trial {len(rss)}: {growth:+.1f} %")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
