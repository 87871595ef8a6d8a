"""The tf.data pipeline: shapes, dtypes, label encodings, order, cache, determinism."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from helpers import make_image_folder
from PIL import Image

from tltk.data import Split, build_pipeline, class_weights
from tltk.data.passes import should_cache
from tltk.modalities.image import ImagePreprocessor

PIXELS_8 = ImagePreprocessor(8)


def _split(tmp_path, counts=None) -> Split:
    root = make_image_folder(tmp_path / "images", counts or {"a": 5, "b": 3, "c": 2})
    paths = sorted(str(p) for p in root.glob("*/*.png"))
    labels = np.array([["a", "b", "c"].index(p.split("/")[-2]) for p in paths])
    return Split(np.array(paths, dtype=object), labels, "path", paths)


def _all(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds], strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def test_shapes_dtypes_one_hot_and_order(tmp_path):
    split = _split(tmp_path)
    ds = build_pipeline(
        split, num_classes=3, preprocessor=PIXELS_8, batch_size=4, training=False, seed=0
    )
    batches = [(x, y) for x, y in ds]
    assert [int(x.shape[0]) for x, _ in batches] == [4, 4, 2]  # no remainder dropped
    x, y = batches[0]
    assert x.dtype == tf.float32 and x.shape[1:] == (8, 8, 3) and y.dtype == tf.float32
    images, labels = _all(ds)
    assert 0 <= images.min() and images.max() <= 255 and images.max() > 1  # 0..255, not 0..1
    np.testing.assert_array_equal(labels, np.eye(3)[split.labels])  # one-hot, split's order
    first = np.asarray(Image.open(split.examples[0]).resize((8, 8), Image.BILINEAR), np.float32)
    assert np.abs(images[0] - first).mean() < 12  # the right file, roughly the right pixels


def _epochs(split, seed, cache, n_epochs=3, start_batch=0, remainder="keep", batch_size=5):
    """The example order of `n_epochs` passes of the training stream (pixels identify them)."""
    ds = build_pipeline(
        split, num_classes=2, preprocessor=PIXELS_8, batch_size=batch_size, training=True,
        seed=seed, cache=cache, remainder=remainder, start_batch=start_batch,
    )  # fmt: skip
    per_pass = (len(split) // batch_size) if remainder == "drop" else -(-len(split) // batch_size)
    batches = [x.numpy().reshape(len(x), -1).sum(1) for x, _ in ds.take(n_epochs * per_pass)]
    flat = [batches[i : i + per_pass] for i in range(0, len(batches), per_pass)]
    return [np.concatenate(epoch).round(1).tolist() for epoch in flat]


def test_training_is_shuffled_each_epoch_and_deterministic(tmp_path):
    split = _split(tmp_path, {"a": 10, "b": 10})
    for cache in ("memory", "none"):
        first = _epochs(split, 3, cache)
        assert first == _epochs(split, 3, cache)  # same seed, same order, epoch by epoch
        assert first[0] != first[1] != first[2]  # reshuffled each epoch
        assert sorted(first[0]) == sorted(first[1])  # every example once a pass
        assert len(set(first[0])) == len(split)
        # Epoch E's batches depend on E alone: a stream started at epoch 1 (a resumed run)
        # replays epochs 1 and 2 of the uninterrupted stream exactly.
        assert _epochs(split, 3, cache, n_epochs=2, start_batch=4) == first[1:]
    assert _epochs(split, 3, "memory") != _epochs(split, 4, "memory")


def test_an_uncached_split_held_in_memory_is_shuffled_whole_each_pass():
    """100,000 examples sorted by class (a folder's order), not cached: every batch mixes
    the classes. Permuted in windows of 50,000 (as before), a batch held 1-5 of the 10."""
    n, classes = 100_000, 10
    png = io.BytesIO()
    Image.new("L", (4, 4), 9).save(png, "PNG")
    examples = np.empty(n, dtype=object)
    examples[:] = [png.getvalue()] * n
    split = Split(examples, np.arange(n) // (n // classes), "bytes")
    ds = build_pipeline(
        split, num_classes=classes, preprocessor=PIXELS_8, batch_size=64, training=True,
        seed=0, cache="none",
    )  # fmt: skip
    per_batch = [np.unique(y.numpy().argmax(1)).size for _, y in ds.take(20)]
    assert min(per_batch) >= 8, per_batch


def test_dropped_remainder_differs_each_epoch(tmp_path):
    """Under several replicas training drops the last partial batch: 20 examples in batches of
    6 leave 2 out of each epoch, and not the same 2."""
    split = _split(tmp_path, {"a": 10, "b": 10})
    epochs = _epochs(split, 0, "memory", n_epochs=3, remainder="drop", batch_size=6)
    assert [len(e) for e in epochs] == [18, 18, 18]
    all_examples = set(_epochs(split, 0, "memory", n_epochs=1)[0])
    left_out = [frozenset(all_examples - set(e)) for e in epochs]
    assert all(len(s) == 2 for s in left_out) and len(set(left_out)) > 1


def test_evaluation_pads_the_last_batch_with_blanks_at_the_end(tmp_path):
    split = _split(tmp_path)  # 10 examples
    kw = dict(num_classes=3, preprocessor=PIXELS_8, batch_size=4, training=False, seed=0)
    plain = _all(build_pipeline(split, **kw))
    batches = list(build_pipeline(split, remainder="pad", **kw))
    assert [tuple(x.shape) for x, _ in batches] == [(4, 8, 8, 3)] * 3  # static, whole batches
    padded = np.concatenate([x.numpy() for x, _ in batches])
    np.testing.assert_array_equal(padded[:10], plain[0])
    assert not padded[10:].any()  # two blank images after the split's ten


def test_augment_runs_per_batch_after_cache(tmp_path):
    split = _split(tmp_path)
    calls = []

    def augment(images, labels):
        calls.append(images.shape.as_list())  # traced once, with the batch shape
        return images * 0.0 + 1.0, labels

    ds = build_pipeline(
        split,
        num_classes=3,
        preprocessor=PIXELS_8,
        batch_size=4,
        training=True,
        seed=0,
        augment=augment,
        cache="memory",
    )
    images, _ = _all(ds.take(3))
    assert calls == [[None, 8, 8, 3]] and np.all(images == 1.0)
    images, _ = _all(ds.take(3))  # the cache holds decoded, un-augmented images
    assert np.all(images == 1.0)


def test_multilabel_regression_bytes_and_text(tmp_path):
    split = _split(tmp_path)
    multi_hot = np.eye(3, dtype=np.float32)[split.labels]
    multi_hot[0, 2] = 1.0
    ml = Split(split.examples, multi_hot, "path")
    _, y = _all(
        build_pipeline(
            ml,
            num_classes=3,
            preprocessor=PIXELS_8,
            batch_size=4,
            training=False,
            seed=0,
            head_type="multilabel",
        )
    )
    np.testing.assert_array_equal(y, multi_hot)

    reg = Split(split.examples, np.linspace(0, 1, len(split)), "path")
    _, y = _all(
        build_pipeline(
            reg,
            num_classes=1,
            preprocessor=PIXELS_8,
            batch_size=4,
            training=False,
            seed=0,
            head_type="regression",
        )
    )
    assert y.dtype == np.float32 and y.shape == (len(split),)

    encoded = []
    for value in (10, 250):
        buffer = io.BytesIO()
        Image.new("RGB", (12, 12), (value,) * 3).save(buffer, "PNG")
        encoded.append(buffer.getvalue())
    as_bytes = Split(np.array(encoded, dtype=object), np.array([0, 1]), "bytes")
    x, y = _all(
        build_pipeline(
            as_bytes, num_classes=2, preprocessor=PIXELS_8, batch_size=2, training=False, seed=0
        )
    )
    assert x.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(x[:, 0, 0, 0], [10, 250], atol=1e-3)

    import keras

    from tltk.modalities.text import TextPreprocessor

    texts = Split(np.array(["good", "bad", "meh"], dtype=object), np.array([0, 1, 1]), "text")
    tokenizer = keras.layers.TextVectorization(vocabulary=["good", "bad"])
    ds = build_pipeline(
        texts, num_classes=2, preprocessor=TextPreprocessor(tokenizer), batch_size=3,
        training=False, seed=0, cache="memory",
    )  # fmt: skip
    x, y = next(iter(ds))
    assert x.numpy().tolist() == [[2], [3], [1]]  # tokenized per batch: "meh" is unknown (1)
    assert y.shape == (3, 2)
    with pytest.raises(
        ValueError, match="kind 'text', but the image preprocessor reads path, bytes"
    ):
        build_pipeline(texts, num_classes=2, preprocessor=PIXELS_8, batch_size=3, training=False,
                       seed=0)  # fmt: skip


def test_cache_auto_threshold():
    assert should_cache(1000, ImagePreprocessor(32).example_nbytes)  # 12 MB
    assert not should_cache(100_000, ImagePreprocessor(224).example_nbytes)  # 60 GB
    assert not should_cache(10, None)  # texts: never
    with pytest.raises(ValueError, match="cache"):
        build_pipeline(
            Split(np.array(["x"]), np.array([0])),
            num_classes=2,
            preprocessor=PIXELS_8,
            batch_size=1,
            training=False,
            seed=0,
            cache="disk",
        )


def test_class_weights_balanced():
    weights = class_weights(np.array([0, 0, 0, 1]), 3)
    assert weights == {0: pytest.approx(4 / 6), 1: pytest.approx(2.0), 2: 1.0}
    assert class_weights(np.eye(2)[[0, 1, 1, 1]], 2) == {0: 2.0, 1: pytest.approx(4 / 6)}


def test_training_stream_works_under_a_global_seed_of_zero(tmp_path):
    """`seed: 0` in a recipe sets TensorFlow's global seed to 0; the stream must not depend on
    TensorFlow's seed derivation (which then fails on tensor seeds)."""
    import keras

    split = _split(tmp_path, {"a": 10, "b": 10})
    keras.utils.set_random_seed(0)
    try:
        for cache in ("memory", "none"):
            epochs = _epochs(split, 0, cache)
            assert len(epochs) == 3 and sorted(epochs[0]) == sorted(epochs[1])
    finally:
        keras.utils.set_random_seed(42)


@pytest.mark.parametrize("cache", ["memory", "none"])
@pytest.mark.parametrize("remainder", ["keep", "drop"])
def test_feature_stream_replays_the_split_stream_batch_for_batch(tmp_path, cache, remainder):
    """A split's cached features (here: each example's pixel sum, so a row names its example)
    stream in the very batches of the split itself, from any start batch, memory or memmap."""
    from tltk.data.passes import stream_order
    from tltk.data.pipeline import build_feature_pipeline

    split = _split(tmp_path, {"a": 9, "b": 8})
    kw = dict(num_classes=2, batch_size=5, seed=3, remainder=remainder)
    images = build_pipeline(split, preprocessor=PIXELS_8, training=False, **kw)
    sums = np.concatenate([x.numpy().reshape(len(x), -1).sum(1) for x, _ in images])
    features = np.stack([sums, -sums], axis=1).astype(np.float32)
    on_disk = np.lib.format.open_memmap(tmp_path / "f.npy", "w+", np.float32, features.shape)
    on_disk[:] = features
    order = stream_order(len(split), PIXELS_8.example_nbytes, cache, 5)
    assert order.cached == (cache == "memory")
    for start_batch in (0, 5):
        ds = build_pipeline(
            split, preprocessor=PIXELS_8, training=True, cache=cache, start_batch=start_batch,
            **kw,
        )  # fmt: skip
        expected = [(x.numpy().reshape(len(x), -1).sum(1), y.numpy()) for x, y in ds.take(9)]
        for rows in (features, np.load(tmp_path / "f.npy", mmap_mode="r")):
            got = build_feature_pipeline(
                rows, split.labels, training=True, order=order, start_batch=start_batch, **kw
            )
            for (x, y), (want_x, want_y) in zip(got.take(9), expected, strict=True):
                np.testing.assert_allclose(x.numpy()[:, 0], want_x, rtol=1e-6)
                np.testing.assert_array_equal(y.numpy(), want_y)
    evaluation = build_feature_pipeline(
        features, split.labels, training=False, order=order, **{**kw, "remainder": "pad"}
    )
    shapes = [tuple(x.shape) for x, _ in evaluation]
    assert shapes == [(5, 2)] * 4  # 17 rows, the last batch padded to a whole one
