"""`tltk continue`: a finished run, further trained on new data (tltk/continual/)."""

from __future__ import annotations

import argparse

from tltk.cli.options import with_set


def cmd_continue(args: argparse.Namespace) -> int:
    from tltk.continual.continue_run import continue_run

    continue_run(
        args.run, args.data, recipe=args.recipe, overrides=args.set, run_dir=args.run_dir,
        resume=not args.new,
    )  # fmt: skip
    return 0


def add_continue_command(command) -> None:
    sp = command(
        "continue",
        help="continue a finished run on new data: new classes grow its head, its test split "
        "measures forgetting",
    )
    sp.add_argument("run", help="the finished run folder, e.g. runs/NAME/latest")
    sp.add_argument("--data", help="the new data (replaces data.path of the run's recipe)")
    sp.add_argument("--recipe", help="a recipe to use instead of the run's own")
    with_set(sp)
    sp.add_argument("--run-dir", help="use or resume this run folder")
    sp.add_argument("--new", action="store_true", help="start a new run even if one can be resumed")
    sp.set_defaults(func=cmd_continue, tensorflow=True)
