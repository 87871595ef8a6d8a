"""Run folders: one per run, never overwritten; re-running an unfinished recipe resumes it."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from tltk.io import atomic_write_json, atomic_write_text
from tltk.recipe import Recipe


def fingerprint(recipe: Recipe) -> str:
    """What identifies 'the same run': the resolved recipe, minus how verbose it prints."""
    data = recipe.model_dump(mode="json")
    data["train"].pop("verbose", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Run:
    dir: Path
    state: dict

    @property
    def finished(self) -> bool:
        return bool(self.state.get("finished"))

    def save(self) -> None:
        atomic_write_json(self.dir / "state.json", self.state)

    def phase(self, index: int) -> dict:
        return self.state["phases"][index]

    def finish(self) -> None:
        self.state["finished"] = True
        self.state["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.save()
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
    """Resume `run_dir`, or the newest unfinished run of this exact recipe, or start a new one."""
    if run_dir is not None:
        path = Path(run_dir)
        state_file = path / "state.json"
        if state_file.is_file():
            return Run(path, json.loads(state_file.read_text()))
        if path.exists() and any(path.iterdir()):
            raise FileExistsError(f"{path} exists and is not a tltk run; choose another --run-dir")
        return _new(recipe, path)
    root = Path(recipe.train.runs_dir) / recipe.name
    fp = fingerprint(recipe)
    if resume and root.is_dir():
        for candidate in sorted(root.iterdir(), reverse=True):
            if candidate.is_symlink():
                continue
            state_file = candidate / "state.json"
            if state_file.is_file():
                state = json.loads(state_file.read_text())
                if state.get("fingerprint") == fp and not state.get("finished"):
                    return Run(candidate, state)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = root / stamp, 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{n}"
    return _new(recipe, path)


def _new(recipe: Recipe, path: Path) -> Run:
    path.mkdir(parents=True, exist_ok=True)
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
    )
    run.save()
    return run


def load_state(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "state.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: not a tltk run folder (no state.json)")
    return json.loads(path.read_text())
