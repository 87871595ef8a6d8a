"""`tltk tune` and `tltk auto`: hyper-parameter search (tltk/tuning/)."""

from __future__ import annotations

import argparse

from tltk.cli.options import with_set


def cmd_tune(args: argparse.Namespace) -> int:
    from tltk.tuning.api import tune

    result = tune(
        args.recipe, overrides=args.set, search_dir=args.search_dir, train_best=args.train_best
    )
    print(result.best_recipe_path)
    return 0


def cmd_auto(args: argparse.Namespace) -> int:
    from tltk.tuning.auto import auto

    _, result = auto(args.data, args.budget, overrides=args.set)
    print(result.trained.export_path if result.trained else result.best_recipe_path)
    return 0


def add_search_commands(command) -> None:
    sp = command("tune", help="search the recipe's `tune:` space (resumes an unfinished search)")
    sp.add_argument("recipe")
    with_set(sp)
    sp.add_argument("--search-dir", help="use or resume this search folder")
    sp.add_argument(
        "--train-best", action="store_true", help="then train and export the best recipe"
    )
    sp.set_defaults(func=cmd_tune, tensorflow=True)

    sp = command("auto", help="pick a recipe for DATA, search it within --budget, train, export")
    sp.add_argument("data", help="a folder of class folders (images) or a CSV/TSV/JSONL of texts")
    sp.add_argument("--budget", default="20m", help="wall-clock budget: 600, 90s, 20m, 1.5h")
    with_set(sp)
    sp.set_defaults(func=cmd_auto, tensorflow=True)
