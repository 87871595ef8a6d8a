"""`tltk` command line: parse, call the library, print. No logic lives here.

One module per family of commands, each adding its sub-commands to the parser: runs.py (train,
check, lr-find, evaluate, export), search.py (tune, auto), continual.py (continue), models.py
(predict, backbones), data.py (data, data shard).

An expected failure (a tltk error: recipe, data, weights, network, model files; a missing file or
package) prints one line (a recipe error: one line per key) and exits with 2; `--verbose` adds
its traceback. Any other exception is a bug and keeps its traceback (failures.py).
"""

from __future__ import annotations

import argparse
import sys
import traceback

from tltk.cli.continual import add_continue_command
from tltk.cli.data import add_data_commands
from tltk.cli.failures import expected_failure
from tltk.cli.models import add_model_commands
from tltk.cli.options import import_tensorflow
from tltk.cli.runs import add_recipe_commands, add_train_command
from tltk.cli.search import add_search_commands

__all__ = ["build_parser", "expected_failure", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tltk", description="Transfer-learning recipes for Keras 3.")
    verbose = {
        "action": "store_true",
        "help": "show TensorFlow's start-up log and the traceback of an error (or TLTK_VERBOSE=1)",
    }
    p.add_argument("-v", "--verbose", **verbose)
    # Also after the command (`tltk train r.yaml -v`); SUPPRESS keeps a flag given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", default=argparse.SUPPRESS, **verbose)
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **kwargs)

    # In the order `tltk -h` lists them.
    add_train_command(command)
    add_search_commands(command)
    add_recipe_commands(command)
    add_continue_command(command)
    add_model_commands(command)
    add_data_commands(command)
    return p


def main(argv: list[str] | None = None) -> int:
    from tltk.quiet import verbose_from_env

    args = build_parser().parse_args(argv)
    args.verbose = args.verbose or verbose_from_env()
    try:
        if getattr(args, "tensorflow", False):
            import_tensorflow(args)
        return args.func(args)
    except KeyboardInterrupt:
        print(f"tltk {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        message = expected_failure(e)
        if message is None:
            raise
        if args.verbose:
            traceback.print_exc()
        print(f"tltk {args.command}: error: {message}", file=sys.stderr)
        return 2
