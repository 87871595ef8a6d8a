"""Errors for expected failures: a bad recipe, data, weights, network, or model files.

Each message names the file, recipe key or `--set` override at fault and says how to fix it.
The CLI prints it as one line and exits with code 2; an exception of any other type is a bug
and keeps its traceback.
"""

from __future__ import annotations


class TltkError(Exception):
    """An expected failure; the message says what was asked, what is wrong and the fix."""


class RecipeError(TltkError, ValueError):
    """A recipe (file or `--set` override) that cannot be used; names the key and the fix."""


class PredictError(TltkError, ValueError):
    """A prediction tltk will not or cannot run: model metadata it refuses, an op library that
    is missing, or nothing to predict."""


class ContinueError(TltkError, ValueError):
    """A run that cannot be continued from as asked: not finished, not a classifier, a
    backbone that differs, an old test split whose files are gone."""
