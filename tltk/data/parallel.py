"""Work over many files at once, with a progress bar: the file checks, shard hashing."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

PROGRESS_FROM = 2000
"""Work on at least this many items shows a progress bar (on a terminal)."""


def parallel_map(fn: Callable, items: Iterable, *, threads: int, desc: str | None = None) -> list:
    """`fn` over items, in a thread pool when `threads` > 1; with `desc`, a progress bar of
    that name when there are PROGRESS_FROM items or more and stderr is a terminal.

    Threads pay off only for large files, where Pillow's decoding (which releases the GIL)
    dominates; for small ones the GIL hand-offs cost more (docs/MEASURED.md).
    """
    items = list(items)
    bar = progress_bar(len(items), desc)
    try:
        if threads <= 1 or len(items) < 2 * threads:
            return [_ticked(fn(x), bar) for x in items]
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return [_ticked(r, bar) for r in pool.map(fn, items)]
    finally:
        if bar is not None:
            bar.close()


def progress_bar(total: int, desc: str | None):
    """A tqdm bar on stderr, or None (no `desc`, few items, or stderr is not a terminal)."""
    if desc is None or total < PROGRESS_FROM:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=" files", disable=None, mininterval=0.5)


def _ticked(result, bar):
    if bar is not None:
        bar.update(1)
    return result
