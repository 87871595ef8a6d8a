"""Test helpers shared by test files: tiny, seeded image data on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_image_folder(
    root: str | Path,
    classes: dict[str, int] | None = None,
    size: int = 16,
    seed: int = 0,
    ext: str = "png",
) -> Path:
    """Write `root/<class>/<i>.<ext>` with `classes[class]` images each; return `root`.

    Each class has its own base colour plus seeded noise, so the images are distinct (no
    accidental duplicates) and a tiny model can tell the classes apart.
    """
    classes = {"cat": 6, "dog": 6} if classes is None else classes
    root = Path(root)
    rng = np.random.default_rng(seed)
    for k, (name, count) in enumerate(sorted(classes.items())):
        base = np.array([(k * 97) % 256, (k * 53 + 128) % 256, (255 - k * 71) % 256])
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            noise = rng.integers(-40, 41, size=(size, size, 3))
            pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.{ext}")
    return root


def tiny_recipe(
    tmp_path: Path,
    data_path: str | Path,
    *,
    epochs: tuple[int, int] = (1, 1),
    top: str = "top:1",
    name: str = "tiny",
    **sections: dict,
) -> dict:
    """A tiny two-phase image recipe (head, then `top`) on `data_path`: MobileNetV3-Small at
    32 px with no pretrained weights, runs and exports under `tmp_path`. Each keyword updates
    that recipe section, e.g. `train={"verbose": 2}`."""
    recipe = {
        "name": name,
        "data": {"path": str(data_path), "val_fraction": 0.2, "test_fraction": 0.2},
        "backbone": {"name": "mobilenet_v3_small", "weights": "none", "image_size": 32},
        "phases": [
            {"name": "head", "train": "head", "epochs": epochs[0], "learning_rate": 0.01},
            {"name": "top", "train": top, "epochs": epochs[1], "learning_rate": 0.001},
        ],
        "train": {
            "batch_size": 8,
            "runs_dir": str(tmp_path / "runs"),
            "verbose": 0,
            "callbacks": {"tensorboard": False},
        },
        "export": {"dir": str(tmp_path / "saved_models"), "parity_examples": 4},
    }
    for section, values in sections.items():
        recipe.setdefault(section, {}).update(values)
    return recipe


def train_in_this_process(capsys, recipe_path) -> str:
    """`tltk train RECIPE` in the test's process (a resume after a kill in a child: it sees only
    what the killed run left on disk); asserts exit status 0 and returns all it printed."""
    from tltk.cli import main

    capsys.readouterr()
    assert main(["train", str(recipe_path)]) == 0
    return "".join(capsys.readouterr())
