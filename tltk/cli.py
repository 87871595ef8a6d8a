"""`tltk` command line: parse, call the library, print. No logic lives here."""

from __future__ import annotations

import argparse
import os
import sys


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def cmd_train(args: argparse.Namespace) -> int:
    from tltk.trainer import train

    train(args.recipe, overrides=args.set, run_dir=args.run_dir, resume=not args.new)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from tltk.recipe import load_recipe

    print(load_recipe(args.recipe, args.set).to_yaml(), end="")
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

    if args.text or args.text_file:
        texts = list(args.text or [])
        if args.text_file:
            with open(args.text_file, encoding="utf-8", errors="replace") as f:
                texts += [line.rstrip("\n") for line in f if line.strip()]
        results = pr.predict_texts(args.model_dir, texts, top_k=args.top_k)
    else:
        if not args.inputs:
            raise SystemExit("tltk predict: give image files/folders, --text or --text-file")
        results = pr.predict_images(args.model_dir, args.inputs, top_k=args.top_k)
    pr.write_predictions(results, args.out)
    return 0


def cmd_backbones(args: argparse.Namespace) -> int:
    from tltk.backbones import list_backbones

    rows = list_backbones(with_params=not args.no_params)
    print(f"{'name':22} {'family':16} {'input':>5} {'params':>12}  groups")
    for r in rows:
        params = f"{r['params']:,}" if "params" in r else "-"
        groups = " ".join(r.get("groups", []))
        print(f"{r['name']:22} {r['family']:16} {r['input_size']:>5} {params:>12}  {groups}")
    print("\nAlso accepted: any KerasHub preset (built-in name, hf://, kaggle://, local folder).")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from tltk.data.offline import prepare

    prepare(args.name, args.root, per_class=args.per_class)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tltk", description="Transfer-learning recipes for Keras 3.")
    sub = p.add_subparsers(dest="command", required=True)

    def with_set(sp):
        sp.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a recipe key, e.g. --set train.batch_size=64 (repeatable)",
        )

    sp = sub.add_parser(
        "train", help="train a recipe (resumes an unfinished run of the same recipe)"
    )
    sp.add_argument("recipe")
    with_set(sp)
    sp.add_argument("--run-dir", help="use or resume this run folder")
    sp.add_argument("--new", action="store_true", help="start a new run even if one can be resumed")
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("check", help="validate a recipe and print it fully resolved")
    sp.add_argument("recipe")
    with_set(sp)
    sp.set_defaults(func=cmd_check)

    sp = sub.add_parser("evaluate", help="re-evaluate a run on a split or on a folder of data")
    sp.add_argument("run")
    sp.add_argument("--split", help="train, val or test (default: the recipe's)")
    sp.add_argument("--data", help="a folder (or manifest) laid out like the training data")
    sp.set_defaults(func=cmd_evaluate)

    sp = sub.add_parser("export", help="export a run as a SavedModel (TF Serving layout)")
    sp.add_argument("run")
    sp.add_argument("--name")
    sp.add_argument("--version", type=int)
    sp.add_argument("--dir", help="export root (default: the recipe's, saved_models)")
    sp.set_defaults(func=cmd_export)

    sp = sub.add_parser("predict", help="top-k labels from an exported SavedModel")
    sp.add_argument(
        "model_dir", help="saved_models/NAME (newest version) or saved_models/NAME/VERSION"
    )
    sp.add_argument("inputs", nargs="*", help="image files or folders")
    sp.add_argument("--text", action="append", help="a text to classify (repeatable)")
    sp.add_argument("--text-file", help="a file with one text per line")
    sp.add_argument("--top-k", type=int, default=3)
    sp.add_argument("--out", help="write .csv or .json instead of printing")
    sp.set_defaults(func=cmd_predict)

    sp = sub.add_parser("backbones", help="list registered backbones")
    sp.add_argument(
        "--no-params", action="store_true", help="skip building each to count parameters"
    )
    sp.set_defaults(func=cmd_backbones)

    sp = sub.add_parser(
        "data", help="write an offline dataset (fashion_mnist, digits) as class folders"
    )
    sp.add_argument("name", choices=["fashion_mnist", "digits"])
    sp.add_argument("root")
    sp.add_argument("--per-class", type=int, help="keep this many images per class and split")
    sp.set_defaults(func=cmd_data)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_tensorflow()
    from tltk.runs import RunLocked, TrainingDiverged

    try:
        return args.func(args)
    # Recipe, backbone, data and phase errors are ValueErrors whose text names the key and fix.
    except (
        ValueError,
        FileNotFoundError,
        FileExistsError,
        ConnectionError,
        RunLocked,
        TrainingDiverged,
    ) as e:
        print(f"tltk {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
