"""Keep TensorFlow's C++ start-up log off the terminal (the CLI does, unless asked not to).

Importing TensorFlow writes absl log lines to file descriptor 2 before its logging is set up
("All log messages before absl::InitializeLog() ...", oneDNN and CUDA-stub notices), which
TF_CPP_MIN_LOG_LEVEL does not reach; the first op then logs a cuInit error on a machine without
a GPU. `import_tensorflow_quietly` holds fd 2 while TensorFlow imports, drops those lines and
passes anything else on, and sets TF_CPP_MIN_LOG_LEVEL=3 for what TensorFlow's C++ logs later
and the `absl` Python logger (tfds, TensorFlow) to errors only. Python warnings and tltk's own
output are untouched. `tltk --verbose` or TLTK_VERBOSE=1 skips
all of it.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
import tempfile

VERBOSE_ENV = "TLTK_VERBOSE"

# absl's format: severity, MMDD, time, thread id, file:line]. F (fatal) lines always pass.
_ABSL_LINE = re.compile(r"^[IWE]\d{4} [\d:.]+\s+\d+ \S+:\d+\] ")
_NOISE_LINES = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "To enable the following instructions:",  # the second line of the CPU-features notice
)


def verbose_from_env() -> bool:
    """TLTK_VERBOSE set to anything but empty, 0, false or no."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def drop_startup_noise(text: str) -> str:
    """`text` without TensorFlow's C++ info, warning and error log lines."""
    kept = [
        line
        for line in text.splitlines(keepends=True)
        if not (_ABSL_LINE.match(line) or line.startswith(_NOISE_LINES))
    ]
    return "".join(kept)


def import_tensorflow_quietly(module: str = "tensorflow") -> None:
    """Import `module` (TensorFlow; a parameter for tests) without its C++ start-up lines.

    If the import fails, everything it wrote is passed on unfiltered, then the error raised.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # read when TensorFlow loads
    # Python-side absl warnings from TensorFlow's libraries ("WARNING:absl:Variant folder ...
    # has no dataset_info.json" from tfds); tltk prints its own messages.
    logging.getLogger("absl").setLevel(logging.ERROR)
    if module in sys.modules:
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to hold (closed by a daemon's launcher): nothing to keep quiet
        importlib.import_module(module)
        return
    failed = True
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            importlib.import_module(module)
            failed = False
        finally:
            sys.stderr.flush()  # Python's own writes during the import belong to the held text
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode("utf-8", "replace")
            sys.stderr.write(text if failed else drop_startup_noise(text))
            sys.stderr.flush()
