"""`tltk data NAME ROOT` (an offline dataset as class folders) and `tltk data shard`."""

from __future__ import annotations

import argparse

from tltk.cli.options import verbose_flag, with_set


def cmd_data(args: argparse.Namespace) -> int:
    from tltk.data.offline import prepare

    prepare(args.name, args.root, per_class=args.per_class)
    return 0


def cmd_shard(args: argparse.Namespace) -> int:
    from tltk.data.shards import shard_recipe, write_shards

    recipe = shard_recipe(args.source, modality=args.modality, overrides=args.set)
    sizes = {"shard_examples": args.shard_examples, "shard_mb": args.shard_mb}
    write_shards(recipe, args.out, **{k: v for k, v in sizes.items() if v is not None})
    return 0


def add_data_commands(command) -> None:
    data = command(
        "data", help="write an offline dataset as class folders, or any data set as shards"
    ).add_subparsers(dest="data_command", required=True)
    for name in ("fashion_mnist", "digits"):
        sp = data.add_parser(name, help=f"write {name} as class folders under ROOT")
        verbose_flag(sp)
        sp.add_argument("root")
        sp.add_argument("--per-class", type=int, help="keep this many images per class and split")
        sp.set_defaults(func=cmd_data, tensorflow=True, name=name)
    _add_shard_command(data)


def _add_shard_command(data) -> None:
    sp = data.add_parser(
        "shard",
        help="check and split a data source once and write it as TFRecord shards + manifest",
        description="SOURCE: a recipe (.yaml; its data section, modality and seed), a folder "
        "of class folders, a CSV image manifest, a text file (--modality text) or tfds:NAME. "
        "Train on OUT with data: {source: tfrecord, path: OUT}.",
    )
    verbose_flag(sp)
    sp.add_argument("source")
    sp.add_argument("out", help="the new shard folder (never replaced)")
    sp.add_argument("--modality", default="image", choices=["image", "text"])
    # Defaults live in tltk.data.shards (importing it here would load TensorFlow).
    sp.add_argument("--shard-examples", type=int, help="records per shard at most (10,000)")
    sp.add_argument("--shard-mb", type=float, help="MB per shard at most (100)")
    with_set(sp)
    sp.set_defaults(func=cmd_shard, tensorflow=True)
