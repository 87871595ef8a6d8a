"""What several `tltk` commands share: the `--set` and `-v` options, TensorFlow's quiet import."""

from __future__ import annotations

import argparse


def with_set(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe key, e.g. --set train.batch_size=64 (repeatable)",
    )


def verbose_flag(sp: argparse.ArgumentParser) -> None:
    """-v after a sub-command's sub-command too (`tltk data shard A B -v`)."""
    sp.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
        help="show TensorFlow's start-up log and the traceback of an error",
    )  # fmt: skip


def import_tensorflow(args: argparse.Namespace) -> None:
    """Import TensorFlow now, without its C++ start-up lines unless --verbose."""
    from tltk.quiet import import_tensorflow_quietly

    if not args.verbose:
        import_tensorflow_quietly()
