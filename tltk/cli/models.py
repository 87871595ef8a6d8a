"""`tltk predict` and `tltk backbones`: an exported model's predictions, the registry."""

from __future__ import annotations

import argparse


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


def add_model_commands(command) -> None:
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
