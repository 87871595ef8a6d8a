"""Training throughput on one GPU: float32 vs mixed precision vs mixed precision + XLA, fed by
synthetic tensors and by real files through tltk's own input pipeline, for an image fine-tune
(EfficientNetV2-B0 at 224 px) and a text fine-tune (BERT-base, 128 tokens).

    python benchmarks/bench_gpu.py                  # full sizes, for a GPU (a few minutes)
    python benchmarks/bench_gpu.py --smoke          # tiny sizes: runs on a CPU in seconds
    python benchmarks/bench_gpu.py --profile prof/  # + a TensorBoard profile of each timed run
    python benchmarks/bench_gpu.py --input-only     # the input pipelines alone (CPU-bound)

What is timed: `model.fit` on the tltk model (backbone + head, its normalisation inside), every
backbone group trainable with BatchNorm frozen (tltk's fine-tune phase), Adam, after `--warmup`
steps (tracing, XLA compilation, autotuning); throughput is the images (or sequences) of the
timed steps over the time between the first and the last of them. Sources:
- synthetic: one batch of random pixels (of real token ids) repeated from memory: the model
  alone;
- real: tltk's `build_pipeline` on JPEG files written from real photos (the sample photos
  scikit-learn and matplotlib ship, cropped, scaled to 256-480 px and JPEG-encoded), decoded,
  resized and batched every epoch (no cache, as for a data set larger than memory); for text,
  Debian package descriptions (data/debian_sections) through the same pipeline and tltk's
  tokenizer mapping. real/synthetic near 1 means the input keeps up; well below 1, the input
  is the bottleneck. `input alone` is the pipeline iterated without a model.
The mixed variant is `train.precision: auto`'s choice on a GPU (mixed_float16; mixed_float16 on
a CPU too under --smoke), the XLA variant adds `jit_compile=True`. Prints one table per task;
`--json PATH` keeps the numbers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

VARIANTS = {"float32": ("float32", False), "mixed": (None, False), "mixed+xla": (None, True)}
FULL = {"image_size": 224, "image_batch": 256, "files": 2048, "seq": 128, "text_batch": 64}
SMOKE = {"image_size": 32, "image_batch": 8, "files": 24, "seq": 16, "text_batch": 4}
BERT_BASE = {"num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12}
BERT_TINY = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2}


def write_jpegs(folder: Path, count: int, seed: int = 0) -> list[tuple[str, int]]:
    """`count` JPEG files cut from real photos; (path, label = which photo) for each."""
    import matplotlib.cbook
    import numpy as np
    import sklearn.datasets
    from PIL import Image

    photos = [Image.fromarray(a) for a in sklearn.datasets.load_sample_images().images]
    photos.append(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        label = i % len(photos)
        photo = photos[label]
        w, h = photo.size
        scale = rng.uniform(0.5, 1.0)
        cw, ch = int(w * scale), int(h * scale)
        x, y = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
        crop = photo.crop((x, y, x + cw, y + ch))
        short = int(rng.integers(256, 481))
        crop = crop.resize((short * cw // min(cw, ch), short * ch // min(cw, ch)))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        path = folder / f"{i:05d}.jpg"
        crop.save(path, quality=90)
        out.append((str(path), label))
    return out


def bert_folder(folder: Path, vocab_from: Path, size: dict) -> Path:
    """A Hugging Face-layout BERT config of `size` (no weights) with `vocab_from`'s vocab.txt."""
    vocab = vocab_from / "vocab.txt"
    if not vocab.is_file():
        raise SystemExit(f"{vocab}: missing; run scripts/make_text_data.py or pass --vocab")
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "model_type": "bert",
        "vocab_size": len(vocab.read_text().splitlines()),
        "intermediate_size": 4 * size["hidden_size"],
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        **size,
    }
    (folder / "config.json").write_text(json.dumps(config))
    shutil.copy(vocab, folder / "vocab.txt")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    return folder


class StepClock:
    """Times the steps of one `fit` (perf_counter at each batch end)."""

    def __new__(cls):
        import keras

        class Clock(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.stamps = []

            def on_train_batch_end(self, batch, logs=None):
                self.stamps.append(time.perf_counter())

        return Clock()


def per_second(model, ds, batch: int, warmup: int, steps: int, profile: Path | None) -> float:
    """Examples per second of `steps` timed training steps after `warmup` steps."""
    import tensorflow as tf

    model.fit(ds, steps_per_epoch=warmup, epochs=1, verbose=0)
    clock = StepClock()
    if profile is not None:
        tf.profiler.experimental.start(str(profile))
    model.fit(ds, steps_per_epoch=steps + 1, epochs=1, verbose=0, callbacks=[clock])
    if profile is not None:
        tf.profiler.experimental.stop()
    return steps * batch / (clock.stamps[-1] - clock.stamps[0])


def input_alone(ds, batch: int, steps: int) -> tuple[float, float]:
    """(examples per second, examples per CPU-second of this process's threads) of the pipeline
    alone, after a few batches to fill its buffers. The second says how many cores a rate
    needs, whatever else shares the machine."""
    it = iter(ds)
    for _ in range(3):
        next(it)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        next(it)
    n = steps * batch
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu)


def input_stages(files, size: int, batch: int, steps: int) -> dict[str, tuple[float, float]]:
    """Where the image input's time goes: the JPEG files read, then decoded, then resized to
    `size` (tltk's `decode_image`), each stage alone over the same files, parallel (AUTOTUNE)
    and batched: (img/s, img per CPU-s) per stage."""
    import tensorflow as tf

    from tltk.data.decode import decode_image

    def decoded_shape(path):  # the decode runs (its shape needs it); nothing is batched
        return tf.shape(tf.io.decode_image(tf.io.read_file(path), 3, expand_animations=False))

    paths = tf.data.Dataset.from_tensor_slices([p for p, _ in files]).repeat()
    stages = {
        "read": lambda path: tf.strings.length(tf.io.read_file(path)),
        "read+decode": decoded_shape,
        "read+decode+resize": lambda path: decode_image(tf.io.read_file(path), size),
    }
    out = {}
    for name, fn in stages.items():
        ds = paths.map(fn, num_parallel_calls=tf.data.AUTOTUNE).batch(batch)
        out[name] = input_alone(ds.prefetch(tf.data.AUTOTUNE), batch, steps)
    return out


def image_model(precision: str, size: int, backbone: str, classes: int):
    """The tltk model (backbone + head) under the `precision` dtype policy."""
    import keras

    from tltk.backbones import build_backbone
    from tltk.model import build_model
    from tltk.recipe import BackboneConfig, HeadConfig

    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(precision)
    bb = build_backbone(BackboneConfig(name=backbone, weights=None, image_size=size))
    return build_model(bb, HeadConfig(dropout=0.0), classes)


def text_model(precision: str, folder: Path, seq: int, classes: int):
    import keras

    from tltk.backbones import build_backbone
    from tltk.model import build_model
    from tltk.recipe import BackboneConfig, HeadConfig

    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(precision)
    cfg = BackboneConfig(name=str(folder), weights="none", sequence_length=seq)
    return build_model(build_backbone(cfg, modality="text"), HeadConfig(dropout=0.0), classes)


def compile_fine_tune(task, jit: bool, learning_rate: float) -> None:
    """tltk's fine-tune phase: every backbone group trainable, BatchNorm frozen, Adam."""
    from tltk import phases as ph
    from tltk.recipe import PhaseConfig

    phase = PhaseConfig(train="all", learning_rate=learning_rate)
    ph.set_trainable(task.groups, ph.trainable_groups("all", task.backbone_groups), "frozen")
    optimizer = ph.make_optimizer(phase, steps_per_epoch=1000)
    task.model.compile(
        optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"], jit_compile=jit
    )


def image_sources(task, files, size: int, batch: int, classes: int):
    import numpy as np
    import tensorflow as tf

    from tltk.data import Split, build_pipeline
    from tltk.modalities import get_modality

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    y = np.eye(classes, dtype="float32")[rng.integers(0, classes, batch)]
    synthetic = tf.data.Dataset.from_tensors((x, y)).repeat().prefetch(tf.data.AUTOTUNE)
    paths, labels = zip(*files, strict=True)
    split = Split(np.array(paths, dtype=object), np.array(labels), kind="path")
    real = build_pipeline(
        split, num_classes=classes, preprocessor=get_modality("image").preprocessor(task.backbone),
        batch_size=batch, training=True, seed=0, cache="none", remainder="drop",
    )  # fmt: skip
    return synthetic, real


def text_sources(task, texts, labels, batch: int, classes: int):
    import numpy as np
    import tensorflow as tf

    from tltk.data import Split, build_pipeline
    from tltk.modalities import get_modality

    split = Split(np.array(texts, dtype=object), np.array(labels), kind="text")
    real = build_pipeline(  # the texts, then tltk's tokenizer on each batch
        split, num_classes=classes, preprocessor=get_modality("text").preprocessor(task.backbone),
        batch_size=batch, training=True, seed=0, cache="none", remainder="drop",
    )  # fmt: skip
    # One batch of real token ids kept in memory: the same shapes and dtypes as the real
    # stream's (so the same traced step runs), without the pipeline's work.
    synthetic = real.take(1).cache().repeat().prefetch(tf.data.AUTOTUNE)
    return synthetic, real


def mixed_policy(smoke: bool) -> str:
    import tensorflow as tf

    from tltk.hardware import gpu_compute_capabilities, resolve_precision

    kind = "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
    chosen = resolve_precision("auto", kind, gpu_compute_capabilities())
    return chosen if chosen != "float32" or not smoke else "mixed_float16"


def run_task(name: str, build, sources, batch: int, args, unit: str, lr: float) -> dict:
    """Every variant on both sources; returns {variant: {source: rate}} and prints a table."""
    mixed = mixed_policy(args.smoke)
    results: dict = {}
    if args.input_only:
        rate, per_cpu = input_alone(sources(build("float32"))[1], batch, args.steps)
        results.update({"input alone": rate, "input per CPU-second": per_cpu})
        print(f"\n{name}: input pipeline alone {rate:,.0f} {unit}/s, {per_cpu:,.0f} per CPU-s")
        return results
    built: dict = {}  # one model per dtype policy; the XLA variant recompiles the mixed one
    for variant in args.variants:
        precision, jit = VARIANTS[variant]
        precision = precision or mixed
        if precision not in built:
            built = {precision: build(precision)}
        task = built[precision]
        compile_fine_tune(task, jit, lr)
        synthetic, real = sources(task)
        if "input alone" not in results:
            rate, per_cpu = input_alone(real, batch, args.steps)
            results.update({"input alone": rate, "input per CPU-second": per_cpu})
        row = {}
        for source, ds in (("synthetic", synthetic), ("real", real)):
            profile = args.profile / f"{name}-{variant}-{source}" if args.profile else None
            row[source] = per_second(task.model, ds, batch, args.warmup, args.steps, profile)
        row["real/synthetic"] = row["real"] / row["synthetic"]
        row["precision"], row["jit_compile"] = precision, bool(task.model.jit_compile)
        results[variant] = row
    print(
        f"\n{name} ({unit}/s); input pipeline alone: {results['input alone']:,.0f} {unit}/s, "
        f"{results['input per CPU-second']:,.0f} per CPU-s"
    )
    print(f"  {'variant':<12} {'precision':<15} {'synthetic':>10} {'real':>10} {'real/syn':>9}")
    for variant in args.variants:
        r = results[variant]
        print(
            f"  {variant:<12} {r['precision']:<15} {r['synthetic']:>10,.0f} {r['real']:>10,.0f} "
            f"{r['real/synthetic']:>9.2f}"
        )
    return results


def device_line() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return f"TensorFlow {tf.__version__}; no GPU: CPU only"
    details = tf.config.experimental.get_device_details(gpus[0])
    return (
        f"TensorFlow {tf.__version__}; {len(gpus)} GPU(s): {details.get('device_name')}, "
        f"compute capability {details.get('compute_capability')}"
    )


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes, for a CPU")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 50; smoke 3)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps (default 10; smoke 1)")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    p.add_argument("--tasks", default="image,text")
    p.add_argument("--image-backbone", help="default efficientnet_v2_b0 (smoke: resnet8)")
    p.add_argument("--image-batch", type=int)
    p.add_argument("--text-batch", type=int)
    p.add_argument("--vocab", type=Path, default=Path("models/all-MiniLM-L6-v2"))
    p.add_argument("--texts", type=Path, default=Path("data/debian_sections/texts.csv"))
    p.add_argument("--files", type=int, help="JPEG files to write (default 2048; smoke 24)")
    p.add_argument("--image-size", type=int)
    p.add_argument("--input-only", action="store_true", help="time the input pipelines only")
    p.add_argument("--profile", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    sizes = dict(SMOKE if args.smoke else FULL)
    given = ("image_batch", "text_batch", "files", "image_size")
    sizes.update({k: getattr(args, k) for k in given if getattr(args, k)})
    args.steps = args.steps or (3 if args.smoke else 50)
    args.warmup = args.warmup or (1 if args.smoke else 10)
    args.variants = args.variants.split(",")
    backbone = args.image_backbone or ("resnet8" if args.smoke else "efficientnet_v2_b0")
    print(device_line())
    out: dict = {"device": device_line(), "sizes": sizes, "steps": args.steps}
    import keras

    policy = keras.mixed_precision.global_policy().name
    try:
        _run(args, sizes, backbone, out)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


def _run(args, sizes: dict, backbone: str, out: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "image" in args.tasks:
            files = write_jpegs(tmp, sizes["files"])
            size, batch = sizes["image_size"], sizes["image_batch"]
            if args.input_only:
                out["image stages"] = input_stages(files, size, batch, args.steps)
                for stage, (rate, per_cpu) in out["image stages"].items():
                    print(f"  {stage:<20} {rate:>8,.0f} img/s {per_cpu:>8,.0f} per CPU-s")
            out["image"] = run_task(
                f"image: {backbone} at {size} px, batch {batch}, {len(files)} JPEG files",
                lambda precision: image_model(precision, size, backbone, 3),
                lambda task: image_sources(task, files, size, batch, 3),
                batch, args, "img", 1e-4,
            )  # fmt: skip
        if "text" in args.tasks:
            import csv

            if not args.texts.is_file():
                raise SystemExit(f"{args.texts}: missing; run scripts/make_text_data.py")
            with open(args.texts, newline="") as f:
                rows = list(csv.DictReader(f))
            names = sorted({r["label"] for r in rows})
            texts, labels = [r["text"] for r in rows], [names.index(r["label"]) for r in rows]
            seq, batch = sizes["seq"], sizes["text_batch"]
            folder = bert_folder(tmp / "bert", args.vocab, BERT_TINY if args.smoke else BERT_BASE)
            size = BERT_TINY if args.smoke else BERT_BASE
            out["text"] = run_task(
                f"text: BERT {size['num_hidden_layers']} x {size['hidden_size']}, {seq} tokens, "
                f"batch {batch}, {len(texts)} texts",
                lambda precision: text_model(precision, folder, seq, len(names)),
                lambda task: text_sources(task, texts, labels, batch, len(names)),
                batch, args, "seq", 2e-5,
            )  # fmt: skip


if __name__ == "__main__":
    main()
