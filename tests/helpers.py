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
