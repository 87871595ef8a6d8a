"""A search process for tests/test_tuning.py's distributed test: `tltk.tune(RECIPE)` with each
trial's training replaced by a known objective, and every trial this process ran appended to
LOG as `TRIAL_ID TUNER_ID` (so the test sees which process ran which trial).

    python tests/tune_driver.py RECIPE LOG
"""

from __future__ import annotations

import math
import os
import sys
import time


def main(recipe: str, log: str) -> None:
    import tltk
    from tltk.io import atomic_write_json
    from tltk.tuning import tuner

    def train_trial(search, trial_id, values):
        with open(log, "a") as f:  # one short append per line: whole lines from each process
            f.write(f"{trial_id} {os.environ['KERASTUNER_TUNER_ID']}\n")
        time.sleep(1.0)  # long enough for the other worker to ask for a trial meanwhile
        lr = values["phases.1.learning_rate"]
        record = {"value": (math.log10(lr) + 3) ** 2, "seconds": 1.0, "runs": [trial_id]}
        atomic_write_json(search.trial_dir(trial_id) / "trial.json", record)
        return record

    tuner.train_trial = train_trial
    tltk.tune(recipe)


if __name__ == "__main__":
    main(*sys.argv[1:])
