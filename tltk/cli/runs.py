"""`tltk train`, `check`, `lr-find`, `evaluate`, `export`: commands on a recipe or a run."""

from __future__ import annotations

import argparse

from tltk.cli.options import import_tensorflow, with_set


def cmd_train(args: argparse.Namespace) -> int:
    from tltk.trainer import train

    train(args.recipe, overrides=args.set, run_dir=args.run_dir, resume=not args.new)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from tltk.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.set)  # schema errors come before TensorFlow loads
    import_tensorflow(args)  # the backbone registry needs it
    from tltk.check import check_recipe

    check_recipe(recipe)
    print(recipe.to_yaml(), end="")
    return 0


def cmd_lr_find(args: argparse.Namespace) -> int:
    from tltk.api import lr_find

    result = lr_find(
        args.recipe, phase=args.phase, overrides=args.set, steps=args.steps, out=args.out
    )
    stopped = ", stopped: the loss exploded" if result.stopped_early else ""
    print(
        f"phases.{args.phase} {result.extra['phase']}, from {result.started_from}: suggested "
        f"learning_rate {result.suggestion:.3g} (the longest descent of the smoothed loss; "
        f"its minimum at {result.minimum:.3g}, steepest descent at {result.steepest:.3g}; "
        f"{len(result.losses)} steps{stopped})"
    )
    print(f"plot: {result.plot}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tltk.api import evaluate_run
    from tltk.evaluate import format_summary

    metrics = evaluate_run(args.run, split=args.split, data_path=args.data)
    print(format_summary(metrics))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from tltk.api import export_run

    path = export_run(args.run, name=args.name, version=args.version, export_dir=args.dir)
    print(path)
    return 0


def add_train_command(command) -> None:
    sp = command("train", help="train a recipe (resumes an unfinished run of the same recipe)")
    sp.add_argument("recipe")
    with_set(sp)
    sp.add_argument("--run-dir", help="use or resume this run folder")
    sp.add_argument("--new", action="store_true", help="start a new run even if one can be resumed")
    sp.set_defaults(func=cmd_train, tensorflow=True)


def add_recipe_commands(command) -> None:
    """check, lr-find, evaluate, export."""
    sp = command("check", help="validate a recipe and print it fully resolved")
    sp.add_argument("recipe")
    with_set(sp)
    sp.set_defaults(func=cmd_check)

    sp = command("lr-find", help="the learning-rate range test of a phase: a plot and a rate")
    sp.add_argument("recipe")
    sp.add_argument("--phase", type=int, default=0, help="the phase's index, from 0 (default 0)")
    sp.add_argument("--steps", type=int, help="batches (default 3 epochs' worth, 50..200)")
    sp.add_argument("--out", help="the plot (PNG; a .json of the curve goes beside it)")
    with_set(sp)
    sp.set_defaults(func=cmd_lr_find, tensorflow=True)

    sp = command("evaluate", help="re-evaluate a run on a split or on a folder of data")
    sp.add_argument("run")
    sp.add_argument("--split", help="train, val or test (default: the recipe's)")
    sp.add_argument("--data", help="a folder (or manifest) laid out like the training data")
    sp.set_defaults(func=cmd_evaluate, tensorflow=True)

    sp = command("export", help="export a run as a SavedModel (TF Serving layout)")
    sp.add_argument("run")
    sp.add_argument("--name")
    sp.add_argument("--version", type=int)
    sp.add_argument("--dir", help="export root (default: the recipe's, saved_models)")
    sp.set_defaults(func=cmd_export, tensorflow=True)
