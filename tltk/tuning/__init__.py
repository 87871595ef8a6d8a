"""Hyper-parameter search over recipe keys with KerasTuner (`tltk tune`, `tltk.tune`).

space.py: the `tune:` section -> HyperParameters and Oracle, a trial's values -> its recipe;
search.py: the search folder and one trial's runs; tuner.py: the KerasTuner tuner;
results.py: table, plot, best recipe; api.py: `tune()`.
"""
