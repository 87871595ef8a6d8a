"""tltk's own progress lines: `[tltk HH:MM:SS] message`, flushed at once."""

from __future__ import annotations

import time


def say(message: str) -> None:
    print(f"[tltk {time.strftime('%H:%M:%S')}] {message}", flush=True)
