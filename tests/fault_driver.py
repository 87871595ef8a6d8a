"""Run `tltk train RECIPE` in this process, SIGKILLing it at one stage (tests/test_faults.py).

    python fault_driver.py RECIPE STAGE     STAGE: none | mid_epoch | mid_head_epoch |
                                                   between_phases | evaluation | export_start |
                                                   export_written

The kill is a real SIGKILL of this process at the named point, as a crash or an OOM kill would
be: no Python cleanup runs.
"""

from __future__ import annotations

import os
import signal
import sys

import keras


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class KillMidEpoch(keras.callbacks.Callback):
    """SIGKILL in the middle of the second epoch of a phase (its first epoch is backed up, its
    second half done)."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch, self.current = epoch, -1

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == 1:
            die()


def main(recipe: str, stage: str) -> int:
    from tltk import cli, fitting, tasks

    if stage in ("mid_epoch", "mid_head_epoch"):
        make_callbacks = fitting.phase_callbacks
        # mid_head_epoch: in the first phase, which trains the head on cached features
        killed = 0 if stage == "mid_head_epoch" else None

        def with_killer(recipe, run, index, phase, **kw):
            callbacks = make_callbacks(recipe, run, index, phase, **kw)
            if index == (len(run.state["phases"]) - 1 if killed is None else killed):
                callbacks.append(KillMidEpoch(run.phase(index)["start_epoch"] + 1))
            return callbacks

        fitting.phase_callbacks = with_killer
    elif stage == "between_phases":
        compile_phase = fitting._compile

        def compile_or_die(fit, index, phase, *model):
            if index == 1:
                die()
            return compile_phase(fit, index, phase, *model)

        fitting._compile = compile_or_die
    elif stage == "evaluation":
        tasks.evaluate = lambda *a, **k: die()
    elif stage == "export_start":
        tasks.export = lambda *a, **k: die()
    elif stage == "export_written":
        export = tasks.export

        def export_then_die(*args, **kwargs):
            export(*args, **kwargs)  # the version folder is complete, the run has not said so
            die()

        tasks.export = export_then_die
    return cli.main(["train", recipe])


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
