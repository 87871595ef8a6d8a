"""Every augmentation runs through a real tf.data map on 4 images of 32x32."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tltk.augment import BatchAugment, build_augment, resolve_layer
from tltk.recipe import AugmentConfig, AugmentLayer

S, K = 32, 4
IMAGES = np.random.default_rng(0).uniform(0, 255, (4, S, S, 3)).astype("float32")
LABELS = np.eye(K, dtype="float32")[[0, 1, 2, 3]]


def first_batch(augment) -> tuple[np.ndarray, np.ndarray]:
    ds = tf.data.Dataset.from_tensor_slices((IMAGES, LABELS)).batch(4).map(augment)
    images, labels = next(iter(ds))
    return images.numpy(), labels.numpy()


def check_images(images: np.ndarray) -> None:
    assert images.shape == IMAGES.shape and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 255.0
    assert not np.allclose(images, IMAGES)


def test_nothing_configured_gives_none():
    assert build_augment(AugmentConfig(), seed=0, image_size=S) is None  # auto, unresolved
    assert build_augment(AugmentConfig(policy="none"), seed=0, image_size=S) is None


def test_shift_rotates_and_shifts_but_never_mirrors():
    augment = build_augment(AugmentConfig(policy="shift"), seed=1, image_size=S)
    assert repr(augment) == "BatchAugment(RandomRotation, RandomTranslation)"
    light = build_augment(AugmentConfig(policy="light"), seed=1, image_size=S)
    assert "RandomFlip" in repr(light)


@pytest.mark.parametrize("policy", ["shift", "light", "medium", "heavy", "randaugment"])
def test_policy_runs_in_tf_data(policy):
    augment = build_augment(AugmentConfig(policy=policy), seed=1, image_size=S)
    assert isinstance(augment, BatchAugment)
    images, labels = first_batch(augment)
    check_images(images)
    np.testing.assert_array_equal(labels, LABELS)


def test_mixup_gives_soft_labels_summing_to_one():
    images, labels = first_batch(build_augment(AugmentConfig(mixup=1.0), seed=3, image_size=S))
    check_images(images)
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-5)
    assert (labels.max(axis=1) < 0.999).any()  # some rows really are mixed


def test_mixup_keeps_regression_targets_flat():
    targets = np.array([0.0, 1.0, 2.0, 3.0], dtype="float32")
    augment = build_augment(AugmentConfig(mixup=1.0), seed=3, image_size=S)
    ds = tf.data.Dataset.from_tensor_slices((IMAGES, targets)).batch(4).map(augment)
    _, mixed = next(iter(ds))
    assert mixed.shape == (4,) and 0.0 <= mixed.numpy().min() <= mixed.numpy().max() <= 3.0


def test_mixup_and_cutmix_one_per_batch():
    augment = build_augment(AugmentConfig(mixup=0.4, cutmix=1.0), seed=0, image_size=S)
    assert len(augment.mixers) == 2
    ds = tf.data.Dataset.from_tensor_slices((IMAGES, LABELS)).repeat(6).batch(4).map(augment)
    changed = []
    for images, labels in ds:
        assert images.shape == IMAGES.shape and images.dtype == tf.float32
        np.testing.assert_allclose(labels.numpy().sum(axis=1), 1.0, atol=1e-5)
        changed += list((~np.isclose(images.numpy(), IMAGES)).reshape(4, -1).mean(axis=1))
    # MixUp changes every pixel of a mixed image, CutMix only a rectangle: both occur.
    assert max(changed) == 1.0 and any(0.0 < c < 0.99 for c in changed)


def test_same_seed_same_first_batch():
    cfg = AugmentConfig(policy="medium", mixup=0.2)
    a = first_batch(build_augment(cfg, seed=7, image_size=S))
    b = first_batch(build_augment(cfg, seed=7, image_size=S))
    c = first_batch(build_augment(cfg, seed=8, image_size=S))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.allclose(a[0], c[0])


def test_explicit_keras_layer_gets_value_range_and_seed():
    cfg = AugmentConfig(layers=[AugmentLayer(name="RandomContrast", args={"factor": 0.5})])
    augment = build_augment(cfg, seed=0, image_size=S)
    (layer,) = augment.layers
    assert tuple(layer.value_range) == (0, 255) and layer.seed == 100
    check_images(first_batch(augment)[0])


@pytest.mark.parametrize("name", ["keras_cv.RandomCutout", "keras_cv.layers.RandomCutout"])
def test_keras_cv_layer_by_name(name):
    args = {"height_factor": 0.5, "width_factor": 0.5}
    cfg = AugmentConfig(layers=[AugmentLayer(name=name, args=args)])
    images, _ = first_batch(build_augment(cfg, seed=0, image_size=S))
    check_images(images)
    assert (images == 0).any()  # the cut-out patches are filled with 0


def test_unknown_name_names_key_path_and_closest():
    cfg = AugmentConfig(layers=[AugmentLayer(name="RandomFlip"), AugmentLayer(name="RandomZom")])
    with pytest.raises(ValueError, match=r"augment\.layers\[1\]\.name.*RandomZoom"):
        build_augment(cfg, seed=0, image_size=S)
    with pytest.raises(ValueError, match=r"keras_cv\.RandomCutout"):
        resolve_layer("keras_cv.RandomCutot")
    with pytest.raises(ValueError, match="not an image augmentation layer"):
        resolve_layer("Dense")


def test_bad_args_and_shape_change_are_located_errors():
    bad = AugmentConfig(layers=[AugmentLayer(name="RandomRotation", args={"factr": 0.1})])
    with pytest.raises(ValueError, match=r"augment\.layers\[0\]: RandomRotation"):
        build_augment(bad, seed=0, image_size=S)
    resize = AugmentConfig(layers=[AugmentLayer(name="Resizing", args={"height": 8, "width": 8})])
    with pytest.raises(ValueError, match="changes the image shape"):
        build_augment(resize, seed=0, image_size=S)
    with pytest.raises(ValueError, match=r"augment\.cutmix"):
        build_augment(AugmentConfig(cutmix=2.0), seed=0, image_size=S)


def test_augmix_runs_but_warns_it_is_not_seeded():
    cfg = AugmentConfig(layers=[AugmentLayer(name="AugMix")])
    with pytest.warns(UserWarning, match="AugMix"):
        augment = build_augment(cfg, seed=0, image_size=S)
    check_images(first_batch(augment)[0])
