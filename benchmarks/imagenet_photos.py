"""The converted ImageNet EfficientNet-Lite0, with its 1000-class top, on the real photos that
ship with matplotlib, scikit-learn and scikit-image: top-5 class names (KerasHub's list) under
the Lite normalisation (x - 127) / 128 and under ImageNet mean/std, for two centre crops.

    .venv/bin/python benchmarks/imagenet_photos.py              # the converted cached weights
    .venv/bin/python benchmarks/imagenet_photos.py --weights FILE.weights.h5

Prints a markdown table of top-5 per photo (Lite normalisation, full square crop), then per
normalisation and crop: top-1 agreement between the two normalisations, mean top-1
probability, and how many photos have an accepted class where tests/imagenet_photos.py asks.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402
from imagenet_photos import PHOTOS, holds, photo_batch, top5  # noqa: E402

from tltk.backbones import efficientnet_lite as E  # noqa: E402

NORMALISATIONS = {
    "lite (x-127)/128": (np.float32(E.MEAN), np.float32(E.STD)),
    "ImageNet mean/std": (
        np.array([0.485, 0.456, 0.406], np.float32) * 255,
        np.array([0.229, 0.224, 0.225], np.float32) * 255,
    ),
}
CROPS = (1.0, 0.875)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="a converted top file (default: the cache's)")
    args = parser.parse_args(argv)
    start, cpu = time.time(), time.process_time()
    model = E.efficientnet_lite0(224, include_top=True)
    model.load_weights(args.weights or E.imagenet_weights(include_top=True))
    ranked = {}  # (normalisation, crop) -> top-5 per photo
    for crop in CROPS:
        images = photo_batch(PHOTOS, fraction=crop)
        for norm, (mean, std) in NORMALISATIONS.items():
            ranked[norm, crop] = top5(model.predict((images - mean) / std, verbose=0))
    lite = next(iter(NORMALISATIONS))
    print("| photo (source) | top-5, (x-127)/128, full square crop | accepted? |")
    print("|---|---|---|")
    for photo, top in zip(PHOTOS, ranked[lite, 1.0], strict=True):
        names = ", ".join(f"{name} {p:.3f}" for name, p in top)
        verdict = "yes" if holds(photo, top) else "NO"
        print(f"| {photo.name} ({photo.source}) | {names} | {verdict} |")
    print("\n| normalisation | crop | top-1 = lite's | mean top-1 p | accepted |")
    print("|---|---|---|---|---|")
    for (norm, crop), tops in ranked.items():
        same = sum(a[0][0] == b[0][0] for a, b in zip(tops, ranked[lite, crop], strict=True))
        mean_p = np.mean([t[0][1] for t in tops])
        ok = sum(holds(p, t) for p, t in zip(PHOTOS, tops, strict=True))
        n = len(PHOTOS)
        print(f"| {norm} | {crop} | {same}/{n} | {mean_p:.3f} | {ok}/{n} |")
    print(f"\n{time.time() - start:.1f} s wall, {time.process_time() - cpu:.1f} s CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
