"""Remembered file checks, so a second run over the same files hashes and decodes nothing.

A result is stored under (what was checked, absolute path) with the file's size, mtime_ns and
ctime_ns when it was checked; it is used only while all three are unchanged (an edited,
replaced or `cp -p`-restored file has a new ctime, so it is checked again). The store is one
SQLite file (stdlib `sqlite3`: each write is one atomic transaction, several processes may
share it): $TLTK_CHECKS_CACHE, else ~/.cache/tltk/checks.sqlite3.

The cache can only save time, never fail a run: a corrupt file is set aside and rebuilt, and
any other error (a read-only home, a locked database) turns the cache off for that run with a
warning.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

CACHE_ENV = "TLTK_CHECKS_CACHE"
SCHEMA_VERSION = 1
"""Bumped when what a check stores changes; an older store is emptied."""
_CHUNK = 500  # paths per SELECT (SQLite allows 999 parameters by default)


def cache_path() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache/tltk/checks.sqlite3")


def file_key(path: str) -> tuple[str, int, int, int]:
    """(absolute path, size, mtime_ns, ctime_ns) of a file; OSError if it cannot be stat'ed."""
    st = os.stat(path)
    return os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns


class CheckCache:
    """Results of one kind of check (e.g. "image", "sha256") by file, as JSON values.

    Example:
        >>> with CheckCache("sha256") as cache:  # doctest: +SKIP
        ...     known = cache.get_many([file_key("a.tfrecord")])
    """

    def __init__(self, kind: str, path: str | Path | None = None):
        self.kind = kind
        self.path = Path(path) if path is not None else cache_path()
        self.db: sqlite3.Connection | None = None
        try:
            self.db = self._open()
        except sqlite3.DatabaseError:  # not a database (corrupt, truncated): rebuild it
            self._set_aside()
        except (OSError, sqlite3.Error) as e:
            self._off(e)

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                with db:
                    db.execute("DROP TABLE IF EXISTS checks")
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            with db:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS checks (kind TEXT, path TEXT, size INTEGER, "
                    "mtime_ns INTEGER, ctime_ns INTEGER, result TEXT, PRIMARY KEY (kind, path))"
                )
            db.execute("SELECT count(*) FROM checks WHERE kind = ?", (self.kind,)).fetchone()
        except BaseException:
            db.close()
            raise
        return db

    def _set_aside(self) -> None:
        with contextlib.suppress(OSError):
            os.replace(self.path, self.path.with_name(self.path.name + ".corrupt"))
        try:
            self.db = self._open()
        except (OSError, sqlite3.Error) as e:
            self._off(e)
            return
        warnings.warn(f"{self.path} was not a readable cache; rebuilt it", stacklevel=3)

    def _off(self, error: Exception) -> None:
        self.db = None
        warnings.warn(f"file check cache {self.path} unusable, checking every file: {error}",
                      stacklevel=3)  # fmt: skip

    def get_many(self, keys: Iterable[tuple[str, int, int, int]]) -> dict[str, object]:
        """path -> stored result, for the keys whose file is unchanged since it was stored."""
        if self.db is None:
            return {}
        keys = {k[0]: k[1:] for k in keys}
        found: dict[str, object] = {}
        paths = list(keys)
        try:
            for start in range(0, len(paths), _CHUNK):
                chunk = paths[start : start + _CHUNK]
                rows = self.db.execute(
                    "SELECT path, size, mtime_ns, ctime_ns, result FROM checks WHERE kind = ? "
                    f"AND path IN ({','.join('?' * len(chunk))})",
                    (self.kind, *chunk),
                )
                for path, size, mtime, ctime, result in rows:
                    if keys[path] == (size, mtime, ctime):
                        found[path] = json.loads(result)
        except (sqlite3.Error, ValueError) as e:
            self._off(e)
            return {}
        return found

    def put_many(self, items: Iterable[tuple[tuple[str, int, int, int], object]]) -> None:
        """Store (key, result) pairs, replacing what was stored for those paths."""
        if self.db is None:
            return
        rows = [(self.kind, *key, json.dumps(result)) for key, result in items]
        try:
            with self.db:
                self.db.executemany("INSERT OR REPLACE INTO checks VALUES (?, ?, ?, ?, ?, ?)", rows)
        except sqlite3.Error as e:
            self._off(e)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def __enter__(self) -> CheckCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def maybe_cache(kind: str, enabled: bool) -> Iterator[CheckCache | None]:
    """A `CheckCache` of `kind` when `enabled`, else None; closed at the end."""
    if not enabled:
        yield None
        return
    cache = CheckCache(kind)
    try:
        yield cache
    finally:
        cache.close()
