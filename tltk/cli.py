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


def cmd_continue(args: argparse.Namespace) -> int:
    from tltk.continual.continue_run import continue_run

    continue_run(
        args.run, args.data, recipe=args.recipe, overrides=args.set, run_dir=args.run_dir,
        resume=not args.new,
    )  # fmt: skip
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


def cmd_shard(args: argparse.Namespace) -> int:
    from tltk.data.shards import shard_recipe, write_shards

    recipe = shard_recipe(args.source, modality=args.modality, overrides=args.set)
    sizes = {"shard_examples": args.shard_examples, "shard_mb": args.shard_mb}
    write_shards(recipe, args.out, **{k: v for k, v in sizes.items() if v is not None})
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
    _add_continue_command(command)
    _add_model_commands(command)
    return p


def _verbose_flag(sp: argparse.ArgumentParser) -> None:
    """-v after a sub-command's sub-command too (`tltk data shard A B -v`)."""
    sp.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
        help="show TensorFlow's start-up log and the traceback of an error",
    )  # fmt: skip


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

    sp = command("lr-find", help="the learning-rate range test of a phase: a plot and a rate")
    sp.add_argument("recipe")
    sp.add_argument("--phase", type=int, default=0, help="the phase's index, from 0 (default 0)")
    sp.add_argument("--steps", type=int, help="batches (default 3 epochs' worth, 50..200)")
    sp.add_argument("--out", help="the plot (PNG; a .json of the curve goes beside it)")
    _with_set(sp)
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


def _add_continue_command(command) -> None:
    """continue: a finished run, further trained on new data."""
    sp = command(
        "continue",
        help="continue a finished run on new data: new classes grow its head, its test split "
        "measures forgetting",
    )
    sp.add_argument("run", help="the finished run folder, e.g. runs/NAME/latest")
    sp.add_argument("--data", help="the new data (replaces data.path of the run's recipe)")
    sp.add_argument("--recipe", help="a recipe to use instead of the run's own")
    _with_set(sp)
    sp.add_argument("--run-dir", help="use or resume this run folder")
    sp.add_argument("--new", action="store_true", help="start a new run even if one can be resumed")
    sp.set_defaults(func=cmd_continue, tensorflow=True)


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

    data = command(
        "data", help="write an offline dataset as class folders, or any data set as shards"
    ).add_subparsers(dest="data_command", required=True)
    for name in ("fashion_mnist", "digits"):
        sp = data.add_parser(name, help=f"write {name} as class folders under ROOT")
        _verbose_flag(sp)
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
    _verbose_flag(sp)
    sp.add_argument("source")
    sp.add_argument("out", help="the new shard folder (never replaced)")
    sp.add_argument("--modality", default="image", choices=["image", "text"])
    # Defaults live in tltk.data.shards (importing it here would load TensorFlow).
    sp.add_argument("--shard-examples", type=int, help="records per shard at most (10,000)")
    sp.add_argument("--shard-mb", type=float, help="MB per shard at most (100)")
    _with_set(sp)
    sp.set_defaults(func=cmd_shard, tensorflow=True)


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
