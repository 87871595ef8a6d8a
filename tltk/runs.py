"""Run folders: one per run, never overwritten; re-running an unfinished recipe resumes it.

A run folder is owned by one process at a time: `open_run` and `lock_run` take an exclusive
OS-level lock on `RUN/.lock` (flock, released by the kernel when the process dies, so a SIGKILL
never leaves a stale lock). A second process that wants the same run gets `RunLocked`, naming
the process that holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tltk.errors import TltkError
from tltk.io import atomic_write_json, atomic_write_text
from tltk.recipe import Recipe, ReplayConfig
from tltk.recipe.schema import DEPRECATED_MODALITY_KEY

_ADDED_SINCE = (  # (path, value when unused) of recipe keys added after runs were recorded
    (("continue_from",), None),
    (("replay",), ReplayConfig().model_dump()),
    (("train", "threads"), None),
    (("backbone", "features_from"), None),
)


def fingerprint(recipe: Recipe) -> str:
    """What identifies 'the same run': the resolved recipe, minus how verbose it prints."""
    data = recipe.model_dump(mode="json")
    data["train"].pop("verbose", None)
    data.pop("tune", None)  # how to search around a recipe does not change what it trains
    # Hashed under its old key, so an unfinished run started before `task` became `modality`
    # is still found and resumed (the keys are sorted: the position does not matter).
    data[DEPRECATED_MODALITY_KEY] = data.pop("modality")
    # Keys added since, hashed only when used: earlier unfinished runs still resume.
    for (*sections, key), unused in _ADDED_SINCE:
        within = data
        for section in sections:
            within = within[section]
        if within.get(key) == unused:
            within.pop(key, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class RunLocked(TltkError, RuntimeError):
    """Another live process owns the run folder."""


class TrainingDiverged(TltkError, RuntimeError):
    """The loss became NaN or infinite; nothing of the diverged epoch was saved."""


@contextlib.contextmanager
def lock_run(run_dir: str | Path) -> Iterator[None]:
    """Hold `run_dir`'s lock for the block (for commands that write into a finished run)."""
    fd = _lock(Path(run_dir))
    try:
        yield
    finally:
        os.close(fd)


def _lock(run_dir: Path) -> int:
    """Take RUN/.lock (non-blocking) and write our pid into it; RunLocked if another holds it."""
    path = run_dir / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise RunLocked(
            f"{run_dir} is in use by {holder}; wait for it to end, or start a separate run "
            "with `tltk train --new` (Python: resume=False)"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    return fd


@dataclass
class Run:
    dir: Path
    state: dict
    lock_fd: int | None = field(default=None, repr=False)
    created: bool = False
    """Made by this process (not resumed)."""
    scratch: bool = False
    """A non-chief worker's own folder (`open_worker_scratch`): removed by `close()`."""
    link_latest: bool = True
    """`finish` points RUNS/NAME/latest at this run: a run in its recipe's run folder, not one
    in a folder of its own choosing (a search's trials, `--run-dir` elsewhere)."""

    @property
    def finished(self) -> bool:
        return bool(self.state.get("finished"))

    def save(self) -> None:
        atomic_write_json(self.dir / "state.json", self.state)

    def phase(self, index: int) -> dict:
        return self.state["phases"][index]

    @property
    def trained(self) -> bool:
        """Has any phase started? (A run that failed before that holds no work.)"""
        return any(p.get("started") for p in self.state["phases"])

    def close(self) -> None:
        """Release the run folder's lock (and remove a worker's scratch folder)."""
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None
        if self.scratch:
            shutil.rmtree(self.dir, ignore_errors=True)

    def fail(self, error: BaseException) -> None:
        """A run that stopped before training leaves nothing a later run takes for work: a
        folder this process made is removed; a resumed one is marked failed (not resumed)."""
        if self.trained:
            return
        if self.created:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            self.state["failed"] = f"{type(error).__name__}: {error}"
            self.save()

    def finish(self) -> None:
        self.state["finished"] = True
        self.state["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.save()
        if self.scratch or not self.link_latest:
            return
        # runs/NAME/latest -> the newest finished run, so a later recipe can transfer from it
        # (`backbone.weights: runs/NAME/latest`). Replaced atomically; only ever a link.
        link = self.dir.parent / "latest"
        if link.exists() and not link.is_symlink():
            return
        tmp = self.dir.parent / f".latest.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(self.dir.name)
        os.replace(tmp, link)


def open_run(recipe: Recipe, *, run_dir: str | Path | None = None, resume: bool = True) -> Run:
    """The newest run of this exact recipe (unfinished: to resume; finished: nothing to do),
    or `run_dir`, or a new run. The returned run is locked until `close()` or process exit."""
    root = Path(recipe.train.runs_dir) / recipe.name
    if run_dir is not None:
        path = Path(run_dir)
        # Elsewhere (a search's trials/N, a folder of the user's), `latest` would be a stray
        # link beside it, or replace a link of the user's named so.
        link_latest = path.resolve().parent == root.resolve()
        state_file = path / "state.json"
        if state_file.is_file():
            run = Run(path, json.loads(state_file.read_text()), link_latest=link_latest)
            return _locked(run)
        if path.exists() and any(path.iterdir()):
            raise FileExistsError(f"{path} exists and is not a tltk run; choose another --run-dir")
        run = _new(recipe, path)
        run.link_latest = link_latest
        return run
    fp = fingerprint(recipe)
    if resume and root.is_dir():
        for candidate in sorted(root.iterdir(), reverse=True):
            state_file = candidate / "state.json"
            if candidate.is_symlink() or not state_file.is_file():
                continue
            state = json.loads(state_file.read_text())
            if state.get("fingerprint") != fp:
                continue
            run = Run(candidate, state)
            if state.get("failed") and not run.trained:
                continue  # stopped before training: nothing to resume
            return _locked(run)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        path = root / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir()  # atomic: two processes starting at once get two folders
        except FileExistsError:
            continue
        return _new(recipe, path)
    raise FileExistsError(f"{root}: no free run folder name for {stamp}")


def open_worker_scratch(recipe: Recipe, task: str) -> Run:
    """The run of a worker that is not the chief of a multi-worker job: a new temporary folder
    of its own for what its callbacks write (backups, logs, phase weights), removed by
    `close()`. It keeps nothing between launches: what a resumed job restores, every worker
    takes from the chief (tltk/multiworker.py), so the machines need no shared filesystem."""
    path = Path(tempfile.mkdtemp(prefix=f"tltk-{recipe.name}-{task.replace(' ', '')}-"))
    run = _new(recipe, path)
    run.scratch = True
    return run


def _new(recipe: Recipe, path: Path) -> Run:
    path.mkdir(parents=True, exist_ok=True)
    lock_fd = _lock(path)
    atomic_write_text(path / "recipe.yaml", recipe.to_yaml())
    run = Run(
        path,
        {
            "recipe": recipe.name,
            "fingerprint": fingerprint(recipe),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "phases": [],
            "finished": False,
        },
        lock_fd,
        created=True,
    )
    run.save()
    return run


def _locked(run: Run) -> Run:
    run.lock_fd = _lock(run.dir)
    run.state = json.loads((run.dir / "state.json").read_text())  # as of taking the lock
    return run
