#!/usr/bin/env bash
# The test command (README and CI run exactly this): set up, lint, run the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check tltk tests benchmarks scripts
# One pytest worker per core (at most 4: each holds a TensorFlow runtime): most tests are
# single-threaded Python and subprocess waits, so two workers on two cores halve the wall time.
# `bash scripts/test.sh -n 0` runs them in one process.
.venv/bin/pytest -q --numprocesses=auto --maxprocesses=4 "$@"
