"""Real photos that ship inside installed packages (so they work offline), each with the ImageNet
classes a person would accept for it. tests/test_efficientnet_lite.py asserts them and
benchmarks/imagenet_photos.py prints the full top-5 (`from imagenet_photos import ...`).

ImageNet-1k has no class for some subjects: a dahlia is closest to "daisy", a motorcycle to
"moped"/"motor_scooter" and an astronaut has none (the helmet she holds is what can be named).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

CATS = {"tabby", "tiger_cat", "Persian_cat", "Siamese_cat", "Egyptian_cat"}


@dataclass(frozen=True)
class Photo:
    name: str
    source: str
    """The package and call that ship it."""
    load: Callable[[], Image.Image]
    accepted: frozenset[str]
    """ImageNet class names (KerasHub's spelling) that are right for this photo."""
    within: int = 1
    """An accepted class must be among the top `within` predictions."""


def _matplotlib(name: str) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        import matplotlib.cbook

        return Image.open(matplotlib.cbook.get_sample_data(name))

    return load


def _sklearn(index: int) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        from sklearn.datasets import load_sample_images

        return Image.fromarray(load_sample_images().images[index])

    return load


def _skimage(name: str) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        import skimage.data

        image = getattr(skimage.data, name)()
        return Image.fromarray(image[0] if name == "stereo_motorcycle" else image)

    return load


PHOTOS = [
    Photo("grace_hopper", "matplotlib get_sample_data", _matplotlib("grace_hopper.jpg"),
          frozenset({"military_uniform"})),
    Photo("china", "scikit-learn load_sample_images", _sklearn(0),
          frozenset({"palace", "monastery", "bell_cote", "castle", "church"})),
    Photo("flower", "scikit-learn load_sample_images", _sklearn(1), frozenset({"daisy"})),
    Photo("chelsea", "scikit-image data.chelsea", _skimage("chelsea"), frozenset(CATS)),
    Photo("coffee", "scikit-image data.coffee", _skimage("coffee"),
          frozenset({"espresso", "cup", "coffee_mug"})),
    Photo("motorcycle", "scikit-image data.stereo_motorcycle", _skimage("stereo_motorcycle"),
          frozenset({"moped", "motor_scooter"})),
    Photo("rocket", "scikit-image data.rocket", _skimage("rocket"),
          frozenset({"missile", "projectile", "space_shuttle"})),
    Photo("camera", "scikit-image data.camera (grey)", _skimage("camera"),
          frozenset({"tripod", "reflex_camera", "Polaroid_camera"})),
    Photo("astronaut", "scikit-image data.astronaut", _skimage("astronaut"),
          frozenset({"football_helmet", "crash_helmet", "space_shuttle"}), within=5),
]  # fmt: skip


def center_crop(image: Image.Image, size: int = 224, fraction: float = 1.0) -> np.ndarray:
    """The centred square of `fraction` of the shorter side, resized (bicubic) to `size`, as
    0..255 RGB float32. fraction 0.875 is the reference Lite evaluation's (224 of 224 + 32)."""
    image = image.convert("RGB")
    w, h = image.size
    side = int(min(w, h) * fraction)
    left, top = (w - side) // 2, (h - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return np.asarray(square.resize((size, size), Image.BICUBIC), np.float32)


def photo_batch(photos: list[Photo], fraction: float = 1.0) -> np.ndarray:
    return np.stack([center_crop(p.load(), fraction=fraction) for p in photos])


def top5(probs: np.ndarray) -> list[list[tuple[str, float]]]:
    """(name, probability) of the 5 likeliest classes of each row of 1000 ImageNet scores."""
    import keras_hub

    return keras_hub.utils.decode_imagenet_predictions(probs, top=5)


def holds(photo: Photo, ranked: list[tuple[str, float]]) -> bool:
    return any(name in photo.accepted for name, _ in ranked[: photo.within])
