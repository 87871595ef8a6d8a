#!/usr/bin/env bash
# The test command (README and CI run exactly this): set up, lint, run the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check tltk tests benchmarks scripts
# One pytest worker per core (at most 4: each holds a TensorFlow runtime): most tests are
# single-threaded Python and subprocess waits, so two workers on two cores halve the wall time.
# Work stealing: each worker starts on one contiguous half of the tests (the files with slow
# tests first, tests/conftest.py) and takes from the end of the other's when it runs out, so
# a file's module fixtures are built on one worker, not on each. `-n 0`: one process.
# --cpu-durations: the 25 tests that took the most CPU seconds (subprocesses included), the
# list to cut from when the suite grows slow.
.venv/bin/pytest -q --numprocesses=auto --maxprocesses=4 --dist=worksteal --cpu-durations=25 "$@"
