#!/usr/bin/env bash
# The test command (README and CI run exactly this): set up, lint, run the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check tltk tests benchmarks scripts
.venv/bin/pytest -q "$@"
