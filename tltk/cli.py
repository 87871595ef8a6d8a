"""`tltk` command line: parse, call the library, print. No logic lives here.

An expected failure (a tltk error: recipe, data, weights, network, model files; a missing file or
package) prints one line (a recipe error: one line per key) and exits with 2; `--verbose` adds
its traceback. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import dis
import sys
import traceback


def cmd_train(args: argparse.Namespace) -> int:
    from tltk.trainer import train

    train(args.recipe, overrides=args.set, run_dir=args.run_dir, resume=not args.new)
    return 0


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


def cmd_check(args: argparse.Namespace) -> int:
    from tltk.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.set)  # schema errors come before TensorFlow loads
    _tensorflow(args)  # the backbone registry needs it
    from tltk.check import check_recipe

    check_recipe(recipe)
    print(recipe.to_yaml(), end="")
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


def cmd_predict(args: argparse.Namespace) -> int:
    from tltk import predict as pr
    from tltk.errors import PredictError

    if args.text or args.text_file:
        texts = list(args.text or [])
        if args.text_file:
            with open(args.text_file, encoding="utf-8", errors="replace") as f:
                texts += [line.rstrip("\n") for line in f if line.strip()]
            if not texts:
                raise PredictError(f"{args.text_file}: no texts to predict (every line is blank)")
        results = pr.predict_texts(args.model_dir, texts, top_k=args.top_k)
    else:
        if not args.inputs:
            raise PredictError("give image files or folders, --text or --text-file")
        results = pr.predict_images(args.model_dir, args.inputs, top_k=args.top_k)
    pr.write_predictions(results, args.out)
    return 0


def cmd_backbones(args: argparse.Namespace) -> int:
    from tltk.backbones import list_backbones

    rows = list_backbones(with_params=not args.no_params)
    print(f"{'name':22} {'family':16} {'input':>5} {'params':>12}  groups")
    for r in rows:
        params = f"{r['params']:,}" if "params" in r else "-"
        size = r.get("input_size", "-")  # a text backbone has no image size
        groups = " ".join(r.get("groups", []))
        print(f"{r['name']:22} {r['family']:16} {size:>5} {params:>12}  {groups}")
    print("\nAlso accepted: any KerasHub preset (built-in name, hf://, kaggle://, local folder).")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from tltk.data.offline import prepare

    prepare(args.name, args.root, per_class=args.per_class)
    return 0


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

    _add_run_commands(command)
    _add_model_commands(command)
    return p


def _with_set(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe key, e.g. --set train.batch_size=64 (repeatable)",
    )


def _add_run_commands(command) -> None:
    """train, tune, check, evaluate, export: commands on a recipe or a run."""
    sp = command("train", help="train a recipe (resumes an unfinished run of the same recipe)")
    sp.add_argument("recipe")
    _with_set(sp)
    sp.add_argument("--run-dir", help="use or resume this run folder")
    sp.add_argument("--new", action="store_true", help="start a new run even if one can be resumed")
    sp.set_defaults(func=cmd_train, tensorflow=True)

    sp = command("tune", help="search the recipe's `tune:` space (resumes an unfinished search)")
    sp.add_argument("recipe")
    _with_set(sp)
    sp.add_argument("--search-dir", help="use or resume this search folder")
    sp.add_argument(
        "--train-best", action="store_true", help="then train and export the best recipe"
    )
    sp.set_defaults(func=cmd_tune, tensorflow=True)

    sp = command("auto", help="pick a recipe for DATA, search it within --budget, train, export")
    sp.add_argument("data", help="a folder of class folders (images) or a CSV/TSV/JSONL of texts")
    sp.add_argument("--budget", default="20m", help="wall-clock budget: 600, 90s, 20m, 1.5h")
    _with_set(sp)
    sp.set_defaults(func=cmd_auto, tensorflow=True)

    sp = command("check", help="validate a recipe and print it fully resolved")
    sp.add_argument("recipe")
    _with_set(sp)
    sp.set_defaults(func=cmd_check)

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


def _add_model_commands(command) -> None:
    """predict, backbones, data: commands on an export, the registry, datasets."""
    sp = command("predict", help="top-k labels from an exported SavedModel")
    sp.add_argument(
        "model_dir", help="saved_models/NAME (newest version) or saved_models/NAME/VERSION"
    )
    sp.add_argument("inputs", nargs="*", help="image files or folders")
    sp.add_argument("--text", action="append", help="a text to classify (repeatable)")
    sp.add_argument("--text-file", help="a file with one text per line")
    sp.add_argument("--top-k", type=int, default=3)
    sp.add_argument("--out", help="write .csv or .json instead of printing")
    sp.set_defaults(func=cmd_predict, tensorflow=True)

    sp = command("backbones", help="list registered backbones")
    sp.add_argument(
        "--no-params", action="store_true", help="skip building each to count parameters"
    )
    sp.set_defaults(func=cmd_backbones, tensorflow=True)

    sp = command("data", help="write an offline dataset (fashion_mnist, digits) as class folders")
    sp.add_argument("name", choices=["fashion_mnist", "digits"])
    sp.add_argument("root")
    sp.add_argument("--per-class", type=int, help="keep this many images per class and split")
    sp.set_defaults(func=cmd_data, tensorflow=True)


def main(argv: list[str] | None = None) -> int:
    from tltk.quiet import verbose_from_env

    args = build_parser().parse_args(argv)
    args.verbose = args.verbose or verbose_from_env()
    try:
        if getattr(args, "tensorflow", False):
            _tensorflow(args)
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


def _tensorflow(args: argparse.Namespace) -> None:
    """Import TensorFlow now, without its C++ start-up lines unless --verbose."""
    from tltk.quiet import import_tensorflow_quietly

    if not args.verbose:
        import_tensorflow_quietly()


def expected_failure(error: Exception) -> str | None:
    """The message of an expected failure; None for a bug (it keeps its traceback).

    Expected: a TltkError anywhere; a ValueError or RuntimeError from a `raise` in tltk's own
    code (its messages are written for users: data, backbone and phase errors, an unreachable
    tfds host); any OSError (missing file, permission, disk full, network); a package that is
    not installed.
    """
    from tltk.errors import TltkError

    if isinstance(error, (TltkError, OSError)):
        return str(error)
    if isinstance(error, ModuleNotFoundError) and not (error.name or "tltk").startswith("tltk"):
        return f"{error}: a package this needs is not installed in this environment"
    if isinstance(error, (ValueError, RuntimeError)) and _raised_by_tltk(error):
        return str(error)
    return None


_RAISE = dis.opmap["RAISE_VARARGS"]


def _raised_by_tltk(error: BaseException) -> bool:
    """True when the innermost frame is tltk code stopped at a `raise` statement. A ValueError
    that float() or a dependency raises inside tltk is a bug, not a message for users."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    module = tb.tb_frame.f_globals.get("__name__", "")
    in_tltk = module == "tltk" or module.startswith("tltk.")
    return in_tltk and tb.tb_frame.f_code.co_code[tb.tb_lasti] == _RAISE


if __name__ == "__main__":
    sys.exit(main())
