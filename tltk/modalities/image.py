"""Images: class folders, CSV manifests or tfds -> an image backbone, decoded and resized the
same way in tf.data and in the SavedModel.

The preprocessor decodes an encoded image (JPEG/PNG/BMP/GIF/WebP; gray and RGBA become RGB)
and resizes it to the model's square input, float32 in 0..255 (`tltk.data.decode_image`). The
backbone's normalisation (rescaling, mean/std) is the first layer of the model itself, so the
exported model takes raw pixels and every family's own convention stays with its weights.

Detection and segmentation reuse this modality as it is: the same inputs (an encoded image,
decoded and resized here), backbones, augmentation policy and serving signatures. What differs
is the head type (tltk/heads/: label kind "boxes" or "mask", its outputs and metrics). Boxes in
relative (0..1) coordinates and masks resized with their image stay aligned through `decode`;
a resize that keeps the aspect ratio (letterboxing) or a geometric augmentation would have to
move the labels with the pixels, which means a preprocessor and augmentation that see the label
too: a subclass of `ImagePreprocessor`, not a new modality.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import tensorflow as tf

from tltk.data.decode import decode_image, resize_image
from tltk.modalities.base import Endpoint, Modality, Preprocessor, label_flags

if TYPE_CHECKING:
    from tltk.data.pipeline import BatchFn


class ImagePreprocessor(Preprocessor):
    """Encoded images -> float32 [S, S, 3] in 0..255, S = `image_size` (the model's input).

    Example:
        >>> png = tf.io.encode_png(tf.zeros([40, 50, 3], tf.uint8))
        >>> ImagePreprocessor(32)(tf.stack([png])).shape
        TensorShape([1, 32, 32, 3])
    """

    kind = "image"
    example_kinds: ClassVar[tuple[str, ...]] = ("path", "bytes")

    def __init__(self, image_size: int):
        self.image_size = int(image_size)

    @property
    def example_nbytes(self) -> int:
        return self.image_size * self.image_size * 3 * 4

    def decode(self, encoded: tf.Tensor) -> tf.Tensor:
        return decode_image(encoded, self.image_size)

    def __call__(self, encoded: tf.Tensor) -> tf.Tensor:
        pixels = tf.TensorSpec([self.image_size, self.image_size, 3], tf.float32)
        return tf.map_fn(self.decode, encoded, fn_output_signature=pixels)

    def endpoints(self, model) -> dict[str, Endpoint]:
        size = self.image_size
        return {
            "serving_default": Endpoint(
                lambda encoded: model(self(encoded), training=False),
                tf.TensorSpec([None], tf.string, name="image_bytes"),
                "string [N]: encoded JPEG/PNG/BMP/GIF images (gray and RGBA become RGB, a GIF's "
                f"first frame), decoded and resized to {size}x{size} as in training",
            ),
            "serve_images": Endpoint(
                lambda images: model(resize_image(images, size), training=False),
                tf.TensorSpec([None, None, None, 3], tf.float32, name="images"),
                f"float32 [N, H, W, 3]: RGB pixels in 0-255, any H and W (resized to {size})",
            ),
        }

    def export_meta(self) -> dict:
        return {"image_size": self.image_size}


class ImageModality(Modality):
    name = "image"

    def load_data(self, cfg, *, seed, label_kind, report_path=None, min_classes=2):
        from tltk.data import load_image_data

        return load_image_data(
            cfg, report_path=report_path, seed=seed, min_classes=min_classes,
            **label_flags(label_kind),
        )  # fmt: skip

    def build_backbone(self, cfg, train):
        from tltk.backbones import build_image_backbone

        return build_image_backbone(cfg)

    def restore_backbone(self, cfg, run_dir):
        # The recipe names the whole backbone; the run's model weights replace its own.
        return self.build_backbone(cfg.model_copy(update={"weights": None}), None)

    def preprocessor(self, backbone) -> ImagePreprocessor:
        return ImagePreprocessor(backbone.image_size)

    def augment(self, cfg, *, seed, backbone) -> BatchFn | None:
        from tltk.augment import build_augment

        return build_augment(cfg, seed=seed, image_size=backbone.image_size)

    def save_run_assets(self, recipe, backbone, run_dir: Path) -> None:
        """backbone.weights.h5 (`export.save_backbone`): a later recipe transfers from it with
        `backbone.weights: RUN`."""
        if recipe.export.save_backbone:
            from tltk.io import save_weights_atomic

            save_weights_atomic(backbone.model, Path(run_dir) / "backbone.weights.h5")

    def serving_examples(self, split, n: int) -> list[bytes]:
        examples = split.raw_examples(n)
        if split.kind == "path":
            return [Path(str(item)).read_bytes() for item in examples]
        return [bytes(item) for item in examples]
