"""Continual learning: continue a finished classification run with new data and new classes,
keep what it knew, and measure what it forgot.

    recipe `continue_from: {run: RUN, strategy: ...}` (or `tltk continue RUN --data NEW`)
    -> data.py      new data (checked like any run's) + the past run's classes first, its
                    val/test splits, its replay buffer; leakage into its test split reported
    -> model.py     the past model grown by the new classes (growth.py: old columns copied,
                    new rows from a probe on features.py's features); the past model as teacher
    -> distill.py   `DistillingModel`: Learning without Forgetting's soft targets
    -> rehearsal.py, replay.py   replay buffers kept with runs (herding or random, a budget)
    -> measure.py   old classes before/after, forgetting, new classes, overall; the lineage
    -> continue_run.py   `continue_run`, and the recipe `tltk continue` builds

Strategies: `finetune` (the new data alone), `rehearsal` (+ the past run's buffer), `distill`
(+ the past model's soft targets), `rehearsal+distill`. A continue run is a normal run in
everything else: phases, callbacks, resume after a kill, evaluation, export.
"""
